"""Experiment (not part of the package): host time of a decompress call that takes the warp-specialized kernel
(registry.WS_DECOMPRESS_FROM), against the Triton kernel's, at 65,536 and 1M rows: calls back to back with
one synchronization at the end (eager), against the same call's device time in a CUDA graph. Where the eager
time a call exceeds the graph time, the host bounds eager calls.

Usage (CUDA machine of compute capability 9, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/ws_host_time.py
"""
import time

import torch

import kernelgen
from kernelgen import bench, registry


def main():
    print(f"device {torch.cuda.get_device_name()}", flush=True)
    for spec, d in (("tq4", 256), ("tq3", 256)):
        q = kernelgen.quantizer(spec, d, device="cuda")
        for n in (65536, 1 << 20):
            x = torch.randn(n, d, device="cuda", dtype=torch.float16)
            packed, norms = q.compress(x)
            out = torch.empty(n, d, device="cuda", dtype=torch.float16)
            for label, first in (("triton", 1 << 40), ("gluon ws", 1 << 16)):
                registry.WS_DECOMPRESS_FROM = first
                call = lambda: q.decompress(packed, norms, out=out)  # noqa: E731
                for _ in range(20):
                    call()
                torch.cuda.synchronize()
                calls = 200 if n < (1 << 20) else 50
                start = time.perf_counter()
                for _ in range(calls):
                    call()
                host = (time.perf_counter() - start) / calls * 1e6
                torch.cuda.synchronize()
                eager = (time.perf_counter() - start) / calls * 1e6
                graph = bench.graph_time_us([call])
                print(f"{spec} D{d} rows {n:>8} {label:9s}: host {host:6.1f} us a call, eager {eager:6.1f}, "
                      f"graph {graph:6.1f}", flush=True)
    registry.WS_DECOMPRESS_FROM = 1 << 16


if __name__ == "__main__":
    main()
