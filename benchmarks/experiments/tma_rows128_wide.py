"""Experiment (not part of the package): compress of rows padded to 256 (tq4, tq2 at D=256 and 192) on the
TMA loop with blocks of 128 rows and 2 stages (one row buffer: 64 KB of rows beside the 128 KB rotation)
against the shipped 64 rows and 3 stages, 8 warps each, one program an SM.

Why: at 64 rows a block the 8 warps split each slot's columns, so each warpgroup's products are
64x64x16 HGMMAs, both operands from shared memory: 4 KB read a 64x64x16 step, which at 128 bytes a clock
is as long as the step's math, so the products wait on shared memory whenever anything else reads it
(the norm reads the rows too). At 128 rows each warpgroup takes its own 64 rows and all of a slot's
columns: 64x128x16 steps, a quarter fewer shared-memory bytes a row. Compiled for sm_90 on the CPU: 237
registers, no spills, 213,000 bytes of shared memory (3 stages do not fit).

The kernel is the generated module's, launched directly at each form (grid: one program an SM); bytes and
norms are compared with the shipped kernel's (which runs through the quantizer at its tuned config).

Usage (CUDA machine of compute capability 9, repo root):
PYTHONPATH=$PWD python3 benchmarks/experiments/tma_rows128_wide.py
"""
import torch

import kernelgen
from kernelgen import bench

# (rows a block, stages)
FORMS = [(64, 3), (64, 2), (128, 2)]


def main():
    from triton.tools.tensor_descriptor import TensorDescriptor

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    n = 1 << 20
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for spec, d in (("tq4", 256), ("tq2", 256), ("tq4", 192), ("tq2", 192)):
        q = kernelgen.quantizer(spec, d, device="cuda")
        kernel = q._kernels["compress"]
        fn = kernel.fn
        while type(fn).__name__ != "JITFunction":
            fn = fn.fn
        slots = q._compress_rotation[torch.float16].contiguous()
        x = torch.randn(n, d, device="cuda", dtype=torch.float16)
        shipped = q.compress(x)
        torch.cuda.synchronize()
        calls = {"shipped": lambda q=q, x=x, shipped=shipped: q.compress(x, out=shipped)}
        for bm, stages in FORMS:
            packed = torch.full((n, q.packed_dim), 0xA5, device="cuda", dtype=torch.uint8)
            norms = torch.full((n, 1), float("nan"), device="cuda")
            desc = TensorDescriptor(x, [n, d], [d, 1], [bm, kernel.tma_box_columns])
            extra = {"SLOT_SPLIT": 1} if "SLOT_SPLIT" in fn.arg_names else {}

            def call(x=x, slots=slots, packed=packed, norms=norms, bm=bm, stages=stages, desc=desc, extra=extra, fn=fn):
                fn[(sms,)](x, slots, packed, norms, n, n, BLOCK_ROWS=bm, PRECISION="fp16", INLINE_PTX=True,
                           ROW_BLOCKS=1, TMA_STAGES=stages, RAW_PRODUCT=True, x_desc=desc, num_warps=8,
                           num_stages=stages, **extra)
            label = f"B{bm} w8 s{stages}"
            try:
                call()
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001
                print(f"{spec} D{d} {label}: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
                continue
            calls[label] = call
            print(f"{spec} D{d} {label}: bytes equal shipped {torch.equal(packed, shipped[0])}, norms equal "
                  f"{torch.equal(norms, shipped[1])}", flush=True)
        nbytes = bench.op_bytes("compress", d, q.packed_dim, n, 2)
        times = {label: [] for label in calls}
        for _ in range(3):
            for label, call in calls.items():
                times[label].append(bench.graph_time_us([call], rounds=1))
        for label, ts in times.items():
            print(f"{spec} D{d} 1M compress {label:12s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
