"""Experiment (not part of the package): the shipped compress of rows padded to 256 (tq4, tq2 at D=192 and
256) by its TMA loop (registry.TMA_COMPRESS, one program an SM) against its pointer-load form (16 row
blocks a program), in one process: the same module, registry.runs_tma forced each way, at B64 w8 (the
tuned config of both forms at 2^20 fp16 rows) and B128 w8 (the pointer form's tuned config at D=192
before); 1M fp16 rows, three rounds, timed as `kernelgen bench` times (bench.graph_time_us, one round
each); codes against the fp32 path.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tma_wide_check.py
"""
import os

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402

import kernelgen  # noqa: E402
from kernelgen import bench, registry, torch_path, tuning  # noqa: E402

ROWS = 1 << 20


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    shipped_runs_tma = registry.runs_tma
    for spec in ("tq4", "tq2"):
        for head_dim in (192, 256):
            q = kernelgen.quantizer(spec, head_dim, device="cuda")
            kernel = q._kernels["compress"]
            x = torch.randn(ROWS, head_dim, device="cuda", dtype=torch.float16)
            ref_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
            nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, ROWS, 2)
            calls = {}
            for tma in (True, False):
                for block in ((64,) if tma else (64, 128)):
                    registry.runs_tma = (lambda interpreted: True) if tma else (lambda interpreted: False)
                    config = tuning.LaunchConfig(block, 8, 1)
                    meta = kernel.meta(config, "float16", registry.MAX_ROW_BUCKET)
                    assert bool(meta["TMA_STAGES"]) == tma
                    packed = torch.full((ROWS, q.packed_dim), 0xAB, dtype=torch.uint8, device="cuda")
                    norms = torch.full((ROWS, 1), float("nan"), device="cuda")
                    args = q._kernel_args("compress", torch.float16, (x,), (packed, norms))
                    label = f"{'tma' if tma else 'pointer'} B{block} w8"

                    def call(config=config, args=args, tma=tma):
                        registry.runs_tma = (lambda interpreted: True) if tma else (lambda interpreted: False)
                        kernel.run(config, ROWS, registry.MAX_ROW_BUCKET, "float16", args)
                    call()
                    torch.cuda.synchronize()
                    print(f"{spec} D{head_dim} {label}: codes = fp32 path "
                          f"{bench.code_agreement(packed, ref_packed, q.layout):.5f}", flush=True)
                    calls[label] = call
            times = {label: [] for label in calls}
            for _ in range(3):
                for label, call in calls.items():
                    times[label].append(bench.graph_time_us([call], rounds=1))
            for label, ts in times.items():
                print(f"{spec} D{head_dim} {label:14s} " + " / ".join(f"{t:6.1f}" for t in ts)
                      + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)
    registry.runs_tma = shipped_runs_tma


if __name__ == "__main__":
    main()
