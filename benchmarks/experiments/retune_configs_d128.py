"""Experiment (not part of the package): after the D=128 modules changed (compress in boxes of 64 columns,
bf16_pieces_d128.py), their tables were tuned again, and the tuner picked other configs at 1M rows for some
decompress kernels whose code did not change. Are those picks noise? Each entry below is timed at its
previous and its new config, alternately, five rounds, 1M rows, as `kernelgen bench` times
(bench.graph_time_us, one round each).
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/retune_configs_d128.py
"""
import os

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402

ROWS = 1 << 20
# (spec, op, dtype, previous config, new config): the 1M-row entries of fp16 and bf16 whose config changed
CHANGED = [
    ("tq4", "decompress_rotated", "float16", (32, 8), (64, 4)),
    ("tq3", "decompress_rotated", "bfloat16", (64, 8), (32, 4)),
    ("tq2", "decompress_rotated", "bfloat16", (64, 8), (32, 4)),
    ("tq2", "decompress_rotated", "float16", (32, 4), (64, 8)),
]


def main():
    import kernelgen
    from kernelgen import bench, registry, tuning

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for spec, op, dtype, before, after in CHANGED:
        q = kernelgen.quantizer(spec, 128, device="cuda")
        dt = getattr(torch, dtype)
        packed, norms = q.compress(torch.randn(ROWS, 128, device="cuda", dtype=dt))
        kernel = q._kernels[op]
        outs, calls = {}, {}
        for label, (block, warps) in (("previous", before), ("new", after)):
            out = torch.full((ROWS, 128), float("nan"), device="cuda", dtype=dt)
            args = q._kernel_args(op, dt, (packed, norms), (out,))
            config = tuning.LaunchConfig(block, warps, 1)

            def call(config=config, args=args):
                kernel.run(config, ROWS, registry.MAX_ROW_BUCKET, dtype, args)
            call()
            torch.cuda.synchronize()
            outs[label], calls[label] = out, call
        assert torch.equal(outs["previous"], outs["new"]), "the two configs disagree"
        nbytes = bench.op_bytes(op, 128, q.packed_dim, ROWS, 2)
        times = {label: [] for label in calls}
        for _ in range(5):
            for label, call in calls.items():
                times[label].append(bench.graph_time_us([call], rounds=1))
        for label, (block, warps) in (("previous", before), ("new", after)):
            ts = times[label]
            print(f"{spec} D128 {op} {dtype} {label:8s} B{block} w{warps}: " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us (best {nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
