"""Experiment (not part of the package): from which row count the warp-specialized decompress
(registry.WS_DECOMPRESS_FROM) beats the Triton kernel, for every module that has one (every spec at D=192
and 256), fp16 and bf16 output.

Both run through the quantizer as the bench times it (a CUDA graph, the median of replays): the Gluon kernel
with WS_DECOMPRESS_FROM set to 1, the Triton kernel with it past every bucket (at its config from the
committed table). Outputs of the two are compared too (max |difference| over the largest value of a row).

Usage (CUDA machine of compute capability 9, repo root):
PYTHONPATH=$PWD python3 benchmarks/experiments/ws_decompress_sizes.py [SPEC ...]   (default: tq4 tq2;
h100-ws_decompress_sizes.txt holds those, -tq3.txt tq3's, run after its kernel was added); ROWS="16384 32768
65536" sets the row counts (-32768.txt: all three specs, after tq3's kernel read words); HEAD_DIMS="128"
the head dims (-d128.txt: after D=128 got the kernel, ws_decompress_d128.py)
"""
import os
import sys

import torch

import kernelgen
from kernelgen import bench, registry

ROWS = tuple(int(r) for r in os.environ.get("ROWS", "2048 16384 65536 262144 1048576").split())
HEAD_DIMS = tuple(int(d) for d in os.environ.get("HEAD_DIMS", "256 192").split())


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    specs = sys.argv[1:] or ["tq4", "tq2"]
    for spec, d in [(s, d) for d in HEAD_DIMS for s in specs]:
        q = kernelgen.quantizer(spec, d, device="cuda")
        for dtype in (torch.float16, torch.bfloat16):
            for n in ROWS:
                x = torch.randn(n, d, device="cuda", dtype=dtype)
                packed, norms = q.compress(x)
                out = torch.empty(n, d, device="cuda", dtype=dtype)
                times, outs = {}, {}
                for form, first in (("triton", 1 << 40), ("gluon ws", 1)):
                    registry.WS_DECOMPRESS_FROM = first
                    q.decompress(packed, norms, dtype=dtype, out=out)
                    torch.cuda.synchronize()
                    outs[form] = out.clone()
                    times[form] = bench.graph_time_us([lambda: q.decompress(packed, norms, dtype=dtype, out=out)])
                nbytes = bench.op_bytes("decompress", d, q.packed_dim, n, 2)
                scale = outs["triton"].float().abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
                diff = ((outs["gluon ws"].float() - outs["triton"].float()).abs() / scale).max().item()
                print(f"{spec} D{d} {str(dtype)[6:]:8s} rows {n:>8}: triton {times['triton']:7.1f} us "
                      f"({nbytes / times['triton'] / 1e3 / copy_gbps * 100:4.1f}%), gluon ws {times['gluon ws']:7.1f} us "
                      f"({nbytes / times['gluon ws'] / 1e3 / copy_gbps * 100:4.1f}%); max diff {diff:.1e}", flush=True)
    registry.WS_DECOMPRESS_FROM = 1 << 16


if __name__ == "__main__":
    main()
