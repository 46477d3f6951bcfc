"""Experiment (not part of the package): from which row count the warp-specialized compress
(registry.WS_COMPRESS_FROM) beats the Triton kernel, for every module that has one (every spec at D=256),
fp16 rows (bf16 with DTYPE=bfloat16).

Both run through the quantizer as the bench times it (a CUDA graph, the median of replays): the Gluon kernel
with WS_COMPRESS_FROM set to 1, the Triton kernel with it past every bucket (at its config from the committed
table), three rounds. The codes of each are compared with the fp32 PyTorch path, and the bytes of the two
with each other.

Usage (CUDA machine of compute capability 9, repo root):
PYTHONPATH=$PWD python3 benchmarks/experiments/ws_compress_sizes.py [SPEC ...] (default: tq4 tq2, the run of
h100-ws_compress_sizes.txt; -tq3.txt: tq3, after its kernel was added; -bf16.txt: all three, bf16 rows,
after the kernels took them; -bf16-once.txt: the same once they read a bf16 block once); ROWS="..." sets
the row counts
"""
import os
import sys

import torch

import kernelgen
from kernelgen import bench, registry, torch_path

DTYPE = getattr(torch, os.environ.get("DTYPE", "float16"))
ROWS = tuple(int(r) for r in os.environ.get("ROWS", "2048 16384 32768 65536 262144 1048576").split())


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for spec in sys.argv[1:] or ["tq4", "tq2"]:
        q = kernelgen.quantizer(spec, 256, device="cuda")
        for n in ROWS:
            x = torch.randn(n, 256, device="cuda", dtype=DTYPE)
            packed = torch.empty(n, q.packed_dim, device="cuda", dtype=torch.uint8)
            norms = torch.empty(n, 1, device="cuda")
            fp32_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
            times, outs = {}, {}
            for form, first in (("triton", 1 << 40), ("gluon ws", 1)):
                registry.WS_COMPRESS_FROM = first
                q.compress(x, out=(packed, norms))
                torch.cuda.synchronize()
                outs[form] = (packed.clone(), norms.clone())
                times[form] = [bench.graph_time_us([lambda: q.compress(x, out=(packed, norms))], rounds=1)
                               for _ in range(3)]
            nbytes = bench.op_bytes("compress", 256, q.packed_dim, n, 2)
            agree = {form: bench.code_agreement(p, fp32_packed, q.layout) for form, (p, _) in outs.items()}
            same = (outs["triton"][0] == outs["gluon ws"][0]).float().mean().item()
            norm_rel = ((outs["triton"][1] - outs["gluon ws"][1]).abs() / outs["triton"][1].clamp_min(1e-30)).max().item()
            print(f"{spec} D256 {str(DTYPE)[6:]} rows {n:>8}: " + ", ".join(
                f"{form} {' / '.join(f'{t:6.1f}' for t in ts)} us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)"
                for form, ts in times.items())
                + f"; codes = fp32 path {agree['triton']:.5f} / {agree['gluon ws']:.5f}, bytes equal {same:.5f},"
                  f" norms max rel {norm_rel:.1e}", flush=True)
    registry.WS_COMPRESS_FROM = 1 << 16


if __name__ == "__main__":
    main()
