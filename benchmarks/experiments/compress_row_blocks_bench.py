"""Experiment (not part of the package): the generated compress kernels (commit f07aab7) at 1M fp16 rows
with 4, 8, 16 or 32 row blocks a program, each at the config the shipped H100 table gives the 2^20
bucket, timed as `kernelgen bench` times (kernelgen.bench.graph_time_us over its rotating input sets,
against kernelgen.bench.copy_bandwidth_gbps): does the last bucket want more than 8 blocks? And tq3
(D=64, 96, 128) with its row-block loop unrolled (tl.static_range), timed the same way.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/compress_row_blocks_bench.py
"""
import importlib.util
import os
import sys
import tempfile

import torch

import kernelgen
from kernelgen import bench, registry

LOOP = "    for i in range(ROW_BLOCKS):\n"


def unrolled_kernel(spec, head_dim):
    path = registry.load_variant(spec, head_dim).module.__file__
    with open(path) as handle:
        source = handle.read()
    assert source.count(LOOP) == 1
    out = os.path.join(tempfile.mkdtemp(), f"unrolled_{spec}_d{head_dim}.py")
    with open(out, "w") as handle:
        handle.write(source.replace(LOOP, "    for i in tl.static_range(ROW_BLOCKS):\n"))
    name = f"unrolled_{spec}_d{head_dim}"
    spec_ = importlib.util.spec_from_file_location(name, out)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[name] = module
    spec_.loader.exec_module(module)
    return getattr(module, f"{spec}_d{head_dim}_compress").fn


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    rows = 1 << 20
    cases = [(s, d, "loop") for s, d in (("tq4", 128), ("tq2", 128), ("tq4", 96), ("tq4", 64))]
    cases += [("tq3", d, form) for d in (64, 96, 128) for form in ("loop", "unrolled")]
    for spec, head_dim, form in cases:
        q = kernelgen.quantizer(spec, head_dim)
        kernel = q._kernels["compress"]
        nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, rows, 2)
        sets = bench.input_sets(nbytes)
        xs = [torch.randn(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
        packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
        norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
        args = [q._kernel_args("compress", torch.float16, (xs[i],), (packed[i], norms[i])) for i in range(sets)]
        bucket = registry.row_bucket(rows)
        config = kernel.config(rows, "float16", q.device, args[0])
        ref = None
        fn = unrolled_kernel(spec, head_dim) if form == "unrolled" else kernel.fn
        for blocks in ((4, 8) if spec == "tq3" else (4, 8, 16, 32)):
            meta = dict(kernel.meta(config, "float16", bucket), ROW_BLOCKS=blocks)
            grid = (-(-rows // (meta["BLOCK_ROWS"] * blocks)), 1)
            calls = [lambda i=i: fn[grid](*args[i], rows, bucket, **meta) for i in range(sets)]
            us = bench.graph_time_us(calls)
            if ref is None:
                ref = packed[0].clone()
            same = torch.equal(packed[0], ref)
            print(f"{spec} D{head_dim} {form:8s} B{config.block_rows} w{config.num_warps} ROW_BLOCKS {blocks:2d}: {us:7.1f} us "
                  f"{nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  same bytes {same}", flush=True)


if __name__ == "__main__":
    main()
