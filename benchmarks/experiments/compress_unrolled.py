"""Experiment (not part of the package): the generated one-step compress (commit f07aab7: fp16 search,
ROW_BLOCKS row blocks a program in a `range` loop, 16-bit rows read a block ahead) against the same
module with the row-block loop unrolled (`tl.static_range`: no loop-carried row tile, whose fp16
halves the loop shuffles with PRMT), and the loop form capped at 128 registers (maxnreg), at D=128,
1M fp16 rows, the shipped H100 configs (tq4/tq2 B64 w4, tq3 B32 w4), 4 and 8 row blocks.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/compress_unrolled.py
"""
import importlib.util
import os
import sys
import tempfile

import torch
from triton.testing import do_bench

import kernelgen
from kernelgen import registry, tuning

LOOP = "    for i in range(ROW_BLOCKS):\n"


def unrolled_module(spec):
    path = registry.load_variant(spec, 128).module.__file__
    with open(path) as handle:
        source = handle.read()
    assert source.count(LOOP) == 1
    out = os.path.join(tempfile.mkdtemp(), f"unrolled_{spec}_d128.py")
    with open(out, "w") as handle:
        handle.write(source.replace(LOOP, "    for i in tl.static_range(ROW_BLOCKS):\n"))
    spec_ = importlib.util.spec_from_file_location(f"unrolled_{spec}", out)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[f"unrolled_{spec}"] = module
    spec_.loader.exec_module(module)
    return module


def main():
    torch.manual_seed(0)
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    del big, big2
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    rows = 1 << 20
    for spec, block in (("tq4", 64), ("tq2", 64), ("tq3", 32)):
        q = kernelgen.quantizer(spec, 128)
        kernel = q._kernels["compress"]
        unrolled = getattr(unrolled_module(spec), f"{spec}_d128_compress").fn
        for dt in (torch.float16, torch.bfloat16):
            x = torch.randn(rows, 128, dtype=dt, device="cuda")
            packed = torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda")
            norms = torch.empty(rows, 1, device="cuda")
            args = q._kernel_args("compress", dt, (x,), (packed, norms))
            bucket = registry.row_bucket(rows)
            nbytes = rows * (128 * 2 + q.packed_dim + 4)
            ref = None
            for form in ("loop", "unrolled", "loop maxnreg 128"):
                for blocks in (4, 8):
                    meta = dict(kernel.meta(tuning.LaunchConfig(block, 4, 1), str(dt)[6:], bucket), ROW_BLOCKS=blocks)
                    if form == "loop maxnreg 128":
                        meta["maxnreg"] = 128
                    fn = unrolled if form == "unrolled" else kernel.fn
                    grid = (-(-rows // (block * blocks)), 1)

                    def run():
                        fn[grid](*args, rows, bucket, **meta)
                    try:
                        packed.fill_(0xA5)
                        run()
                        if ref is None:
                            ref = packed.clone()
                        same = torch.equal(packed, ref)
                        us = do_bench(run, warmup=10, rep=100) * 1e3
                        print(f"{spec} {str(dt)[6:]:9s} {form:17s} B{block} w4 ROW_BLOCKS {blocks}: {us:7.1f} us "
                              f"{nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  same bytes {same}", flush=True)
                    except Exception as e:
                        print(f"{spec} {form} ROW_BLOCKS {blocks} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)


if __name__ == "__main__":
    main()
