"""Experiment (not part of the package): the generated one-step compress kernels (fp16 search, row blocks
read one ahead) at D=128 (and tq4 at 64 and 96), fp16 rows, with 1, 2, 4 or 8 row blocks a program
(ROW_BLOCKS), at 65,536 / 262,144 / 1,048,576 rows and BLOCK_ROWS 64 and 32 at 4 warps: which row
buckets should take several blocks (registry.ROW_BLOCKS_FROM_BUCKET)? Timed with triton do_bench
(median) against a device-to-device copy in the same run; bytes checked equal to the one-block kernel's.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/compress_row_blocks.py
"""
import torch
from triton.testing import do_bench

import kernelgen
from kernelgen import registry, tuning


def main():
    torch.manual_seed(0)
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    del big, big2
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for spec, head_dim in (("tq4", 128), ("tq3", 128), ("tq2", 128), ("tq4", 64), ("tq4", 96)):
        q = kernelgen.quantizer(spec, head_dim)
        kernel = q._kernels["compress"]
        for rows in (65536, 262144, 1 << 20):
            x = torch.randn(rows, head_dim, dtype=torch.float16, device="cuda")
            packed = torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda")
            norms = torch.empty(rows, 1, device="cuda")
            args = q._kernel_args("compress", torch.float16, (x,), (packed, norms))
            bucket = registry.row_bucket(rows)
            nbytes = rows * (head_dim * 2 + q.packed_dim + 4)
            for block in (64, 32):
                ref = None
                for blocks in (1, 2, 4, 8):
                    meta = dict(kernel.meta(tuning.LaunchConfig(block, 4, 1), "float16", bucket), ROW_BLOCKS=blocks)
                    grid = (-(-rows // (block * blocks)), 1)

                    def run():
                        kernel.fn[grid](*args, rows, bucket, **meta)
                    packed.fill_(0xA5)
                    run()
                    if ref is None:
                        ref = packed.clone()
                    same = torch.equal(packed, ref)
                    us = do_bench(run, warmup=10, rep=100) * 1e3
                    print(f"{spec} D{head_dim} {rows:8d} rows B{block} w4 ROW_BLOCKS {blocks}: {us:7.1f} us "
                          f"{nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  same as one block {same}", flush=True)


if __name__ == "__main__":
    main()
