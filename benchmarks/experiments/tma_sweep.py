"""Experiment (not part of the package): the TMA compress rule's knobs (registry.TMA_COMPRESS: pipeline
stages and programs an SM) against a few configs, for tq3 D=128/96 and tq4 D=128/96 as controls, at 1M fp16
rows. The generated kernels as shipped; each combination launched through BoundKernel.run (the registry's
TMA launch) and timed as `kernelgen bench` times (bench.graph_time_us, one round each), three rounds.
Why: tq3 compress at D=128 sat 16.3% below tq4 in benchmarks/h100-tq3-tma.md, where 15% is allowed.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tma_sweep.py
"""
import itertools
import os

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402

ROWS = 1 << 20
CASES = [("tq3", 128), ("tq4", 128), ("tq3", 96), ("tq4", 96)]
STAGES = (2, 3, 4)
PER_SM = (1, 2, 3)


def main():
    import kernelgen
    from kernelgen import bench, registry, tuning

    configs = [tuning.LaunchConfig(64, 4, 1), tuning.LaunchConfig(32, 4, 1), tuning.LaunchConfig(128, 8, 1)]
    copy = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy:.0f} GB/s", flush=True)
    original = registry.TMA_COMPRESS
    torch.manual_seed(0)
    for spec, head_dim in CASES:
        q = kernelgen.quantizer(spec, head_dim, device="cuda")
        x = torch.randn(ROWS, head_dim, device="cuda", dtype=torch.float16)
        packed, norms = q.compress(x)
        reference = packed.clone()
        kernel = q._kernels["compress"]
        args = q._kernel_args("compress", torch.float16, (x,), (packed, norms))
        nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, ROWS, 2)
        for stages, config, per_sm in itertools.product(STAGES, configs, PER_SM):
            registry.TMA_COMPRESS = (original[0], stages, {128: per_sm, 64: 2 * per_sm})
            label = f"{spec} D{head_dim} s{stages} p{per_sm} B{config.block_rows} w{config.num_warps}"

            def call():
                kernel.run(config, ROWS, registry.MAX_ROW_BUCKET, "float16", args)
            try:
                packed.fill_(0)
                call()
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001
                print(f"{label}: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
                continue
            same = torch.equal(packed, reference)
            times = [bench.graph_time_us([call], rounds=1) for _ in range(3)]
            print(f"{label}: " + " / ".join(f"{t:6.1f}" for t in times)
                  + f" ({nbytes / min(times) / 1e3 / copy * 100:4.1f}%) equal {same}", flush=True)
    registry.TMA_COMPRESS = original


if __name__ == "__main__":
    main()
