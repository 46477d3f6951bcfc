"""Experiment (not part of the package): why `kernelgen bench` times tq4 D=128 1M-row compress at 145-148 µs
while experiments timing the same kernel and config the same way (bench.graph_time_us) got 139-141 µs
(row_blocks_dims.py). Hypothesis: what runs before the timing. bench_variant computes the fp32 PyTorch
reference codes (a large fp32 matmul and search) just before timing compress; an experiment times right
after the copy measurement. Here, in one process: the kernel timed directly, then after that PyTorch
reference, then after 1, 5 and 20 s idle, then through bench.bench_variant itself, each with the SM clock
and power draw nvidia-smi reports right after.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/timing_state.py
"""
import subprocess
import time

import torch

ROWS = 1 << 20


def smi() -> str:
    out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,clocks.mem,power.draw,temperature.gpu",
                          "--format=csv,noheader"], capture_output=True, text=True)
    return out.stdout.strip()


def main():
    import kernelgen
    from kernelgen import bench, torch_path

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s; {smi()}", flush=True)
    q = kernelgen.quantizer("tq4", 128, device="cuda")
    x = torch.randn(ROWS, 128, device="cuda", dtype=torch.float16)
    packed = torch.empty(ROWS, q.packed_dim, dtype=torch.uint8, device="cuda")
    norms = torch.empty(ROWS, 1, device="cuda")
    nbytes = bench.op_bytes("compress", 128, q.packed_dim, ROWS, 2)

    def timed(label):
        us = bench.graph_time_us([lambda: q.compress(x, out=(packed, norms))])
        print(f"{label:34s} {us:7.1f} us ({nbytes / us / 1e3 / copy_gbps * 100:5.1f}%)  {smi()}", flush=True)

    timed("first")
    timed("again")
    torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
    torch.cuda.synchronize()
    timed("right after the PyTorch reference")
    for _ in range(3):
        torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
    torch.cuda.synchronize()
    timed("after three PyTorch references")
    for pause in (1, 5, 20):
        time.sleep(pause)
        timed(f"after {pause} s idle")
    for round_ in range(2):
        results = bench.bench_variant("tq4", 128, ROWS, torch.float16, impls=("kernelgen",))
        r = next(r for r in results if r.op == "compress")
        print(f"{'bench_variant round ' + str(round_):34s} {r.us:7.1f} us ({100 * r.fraction(copy_gbps):5.1f}%)  "
              f"{smi()}", flush=True)
    timed("direct, at the end")


if __name__ == "__main__":
    main()
