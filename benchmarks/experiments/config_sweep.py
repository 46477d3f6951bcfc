"""Experiment (not part of the package): launch configs outside the specs' search space and the registry's
row-block rule, at 1M fp16 rows. The specs tune BLOCK_ROWS in {32, 64, 128} and num_warps in {4, 8}; the
registry fixes ROW_BLOCKS by row bucket (compress 8, decompress 4 at 2^20 rows). Here: 2 warps (below a
warpgroup, so Triton's tl.dot takes mma.sync instead of wgmma; fewer registers a program, more programs an
SM), and 16 compress / 8 decompress row blocks. Each kernel is the checkout's generated one, launched with
the registry's metas but the config and ROW_BLOCKS overridden; the first line of each case is the
registry's own choice (the shipped H100 table: run without KERNELGEN_AUTOTUNE=0). Timed as
`kernelgen bench` times, fp16, against the same run's copy; each output checked against the shipped
config's (compress: codes equal; decompress: max difference).
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/config_sweep.py
"""
import time

import torch

import kernelgen
from kernelgen import bench, registry

SMALL = [(32, 2), (64, 2), (32, 4), (64, 4), (64, 8), (128, 8)]
CASES = [  # spec, head dim, op, (BLOCK_ROWS, num_warps) list (None: the shipped one), ROW_BLOCKS list
    ("tq4", 128, "compress", SMALL, (8, 16)),
    ("tq3", 128, "compress", SMALL, (8, 16)),
    ("tq3", 128, "decompress", SMALL, (4, 8)),
    ("tq4", 96, "compress", [(32, 2), (64, 2), (64, 4)], (8, 16)),
    ("tq4", 256, "compress", None, (8, 16)),
    ("tq3", 256, "compress", None, (8, 16)),
    ("tq2", 256, "compress", None, (8, 16)),
    ("tq4", 256, "decompress", None, (4, 8)),
]
ROWS = 1 << 20


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    start = time.time()
    for spec, head_dim, op, configs, blocks in CASES:
        q = kernelgen.quantizer(spec, head_dim, device="cuda")
        bucket = registry.row_bucket(ROWS)
        nbytes = bench.op_bytes(op, head_dim, q.packed_dim, ROWS, 2)
        sets = bench.input_sets(nbytes)
        xs = [torch.randn(ROWS, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
        packed = [torch.empty(ROWS, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
        norms = [torch.empty(ROWS, 1, device="cuda") for _ in range(sets)]
        outs = [torch.empty(ROWS, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
        for i in range(sets):
            q.compress(xs[i], out=(packed[i], norms[i]))
        io = [((xs[i],), (packed[i], norms[i])) if op == "compress" else ((packed[i], norms[i]), (outs[i],))
              for i in range(sets)]
        args = [q._kernel_args(op, torch.float16, *io[i]) for i in range(sets)]
        kernel = q._kernels[op]
        shipped = kernel.config(ROWS, "float16", q.device, args[0])
        base = kernel.meta(shipped, "float16", bucket)
        target = packed[0] if op == "compress" else outs[0]
        trials = [("shipped", base)]
        for block_rows, warps in (configs or [(shipped.block_rows, shipped.num_warps)]):
            for n in blocks:
                meta = dict(base, BLOCK_ROWS=block_rows, num_warps=warps, ROW_BLOCKS=n)
                if meta != base:
                    trials.append((f"B{block_rows} w{warps} x{n}", meta))
        reference = None
        for label, meta in trials:
            grid = kernel.grid(ROWS, meta)
            target.fill_(0xA5) if op == "compress" else target.fill_(float("nan"))
            try:
                us = bench.graph_time_us([lambda a=a, meta=meta: kernel.fn[grid](*a, ROWS, bucket, **meta)
                                          for a in args])
            except Exception as exc:  # out of resources
                print(f"{spec} D{head_dim} {op} {label}: {type(exc).__name__}", flush=True)
                continue
            result = target.clone()
            if reference is None:
                reference, check = result, f"B{meta['BLOCK_ROWS']} w{meta['num_warps']} x{meta.get('ROW_BLOCKS')}"
            elif op == "compress":
                check = "same" if torch.equal(result, reference) else \
                    f"codes agree {bench.code_agreement(result, reference, q.layout):.5f}"
            else:
                check = f"max diff {(result.float() - reference.float()).abs().max().item():.2e}"
            print(f"{spec} D{head_dim} {op} {label:12s} {us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%"
                  f"  {check}  [{time.time() - start:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
