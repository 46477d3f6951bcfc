"""Experiment (not part of the package): why does `kernelgen bench` time tq4 D=128 compress at 1M fp16
rows about 6% slower in the tq4-d128 command (rows 8, 2,048, 65,536 and 1M; kernelgen, baseline and
PyTorch) than in the dims command of the same device call (h100-raw-product.md: 139.9 against 133.1 µs
and 140.3 against 131.7 µs)? One process runs the 1M-row compress of bench.bench_variant after each
command's sequence of variants, and alone, three times in turn; each line is the 1M-row compress result.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/bench_order.py
"""
import torch

from kernelgen import bench

M = 1 << 20
SEQUENCES = {
    # the tq4-d128 command: every row count of tq4 D=128 fp16, all three implementations
    "d128 command": [("tq4", 128, rows, ("kernelgen", "baseline", "torch")) for rows in (8, 2048, 65536, M)],
    # the dims command: 8 rows and 1M of each head dim before, kernelgen and baseline
    "dims command": [("tq4", d, rows, ("kernelgen", "baseline")) for d in (64, 96) for rows in (8, M)]
                    + [("tq4", 128, rows, ("kernelgen", "baseline")) for rows in (8, M)],
    "alone": [("tq4", 128, M, ("kernelgen",))],
    "alone with torch": [("tq4", 128, M, ("kernelgen", "baseline", "torch"))],
}


def main():
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for round_ in range(3):
        for label, steps in SEQUENCES.items():
            results = []
            for spec, head_dim, rows, impls in steps:
                results = bench.bench_variant(spec, head_dim, rows, torch.float16, impls=impls)
            r = next(r for r in results if r.op == "compress" and r.impl == "kernelgen")
            print(f"round {round_} {label:17s} tq4 D=128 1M compress {r.us:6.1f} us "
                  f"({r.fraction(copy_gbps) * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
