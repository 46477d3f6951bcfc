"""Experiment (not part of the package): fp32 rows, which keep the fp32 search, before and after the
fp16-search change (commit f07aab7 also gave every one-step compress kernel its row-block loop): the
tq4 D=128 compress of commit 0213869 at its shipped H100 configs (its code is that of
search_forms_modules/signed_tq4_d128.py, whose module differs from 0213869's in one docstring only; the
runs of this script loaded 0213869's module itself) against the current generated kernel through the
API, at 8, 65,536 and 1,048,576 fp32 rows, timed as `kernelgen bench` times (graph_time_us over rotating inputs, copy in the same run); bytes compared.
With the argument `configs`, also the current kernel at several configs and 1, 4 or 8 row blocks.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/fp32_compress_before_after.py [configs]
"""
import importlib.util
import os
import sys

import torch

import kernelgen
from kernelgen import bench, registry

BEFORE = {8: (32, 8), 65536: (128, 8), 1 << 20: (128, 8)}  # (BLOCK_ROWS, num_warps) of commit 0213869's table


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("before_tq4_d128",
                                                  os.path.join(here, "search_forms_modules", "signed_tq4_d128.py"))
    before = importlib.util.module_from_spec(spec)
    sys.modules["before_tq4_d128"] = before
    spec.loader.exec_module(before)
    old = before.tq4_d128_compress.fn
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    q = kernelgen.quantizer("tq4", 128)
    slots = q._variant.slots("tf32x3").cuda()
    for rows in (8, 65536, 1 << 20):
        nbytes = bench.op_bytes("compress", 128, 64, rows, 4)
        sets = bench.input_sets(nbytes)
        xs = [torch.randn(rows, 128, device="cuda") for _ in range(sets)]
        packed = [torch.empty(rows, 64, dtype=torch.uint8, device="cuda") for _ in range(sets)]
        norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
        new_us = bench.graph_time_us([lambda i=i: q.compress(xs[i], out=(packed[i], norms[i])) for i in range(sets)])
        new_bytes = packed[0].clone()
        block, warps = BEFORE[rows]
        bucket = registry.row_bucket(rows)
        grid = (-(-rows // block),)
        old_us = bench.graph_time_us([lambda i=i: old[grid](xs[i], slots, packed[i], norms[i], rows, bucket, BLOCK_ROWS=block,
                                                            PRECISION="tf32x3", num_warps=warps, num_stages=1)
                                      for i in range(sets)])
        same = torch.equal(packed[0], new_bytes)
        print(f"fp32 {rows:8d} rows: before {old_us:7.1f} us ({nbytes / old_us / 1e3 / copy_gbps * 100:5.1f}%), "
              f"now {new_us:7.1f} us ({nbytes / new_us / 1e3 / copy_gbps * 100:5.1f}%)  same bytes {same}", flush=True)
        if rows == 8 or len(sys.argv) < 2:
            continue
        # second run (argument "configs"): the current kernel at several configs and row-block counts
        kernel = q._kernels["compress"]
        for block, warps in ((128, 8), (64, 4), (32, 8), (64, 8)):
            for blocks in (1, 4, 8):
                grid = (-(-rows // (block * blocks)), 1)
                meta = dict(BLOCK_ROWS=block, PRECISION="tf32x3", INLINE_PTX=True, ROW_BLOCKS=blocks,
                            num_warps=warps, num_stages=1)
                try:
                    us = bench.graph_time_us([lambda i=i: kernel.fn[grid](xs[i], slots, packed[i], norms[i], rows,
                                                                          bucket, **meta) for i in range(sets)])
                except Exception as exc:  # noqa: BLE001 - reported
                    print(f"    now B{block} w{warps} ROW_BLOCKS {blocks}: {type(exc).__name__}: {str(exc)[:90]}")
                    continue
                print(f"    now B{block} w{warps} ROW_BLOCKS {blocks}: {us:7.1f} us "
                      f"({nbytes / us / 1e3 / copy_gbps * 100:5.1f}%)  same bytes {torch.equal(packed[0], new_bytes)}",
                      flush=True)


if __name__ == "__main__":
    main()
