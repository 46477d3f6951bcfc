"""Experiment (not part of the package): the generated one-step decompress kernels (commit e1ac508) at
D=128, fp16, with 1, 2 or 4 row blocks a program (ROW_BLOCKS), at 65,536 / 262,144 / 1,048,576 rows and
the configs the shipped H100 tables give those buckets: where should the registry start looping
(registry.ROW_BLOCKS_FROM_BUCKET, then ROW_BLOCKS_MIN_BUCKET = 2^20)? Timed with triton do_bench (median) against a device-to-device copy in
the same run; outputs checked equal to the one-block kernel's.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/row_blocks_sizes.py
"""
import torch
from triton.testing import do_bench

import kernelgen
from kernelgen import registry


def main():
    torch.manual_seed(0)
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for spec in ("tq4", "tq3", "tq2"):
        q = kernelgen.quantizer(spec, 128)
        kernel = q._kernels["decompress"]
        for rows in (65536, 262144, 1 << 20):
            packed = torch.randint(0, 256, (rows, q.packed_dim), dtype=torch.uint8, device="cuda")
            norms = torch.rand(rows, device="cuda") + 0.5
            out = torch.empty(rows, 128, dtype=torch.float16, device="cuda")
            args = q._kernel_args("decompress", torch.float16, (packed, norms), (out,))
            bucket = registry.row_bucket(rows)
            config = kernel.config(rows, "float16", q.device, args)
            nbytes = rows * (128 * 2 + q.packed_dim + 4)
            ref = None
            for blocks in (1, 2, 4):
                meta = dict(kernel.meta(config, "float16", bucket), ROW_BLOCKS=blocks)
                grid = (-(-rows // (meta["BLOCK_ROWS"] * blocks)), 1)

                def run():
                    kernel.fn[grid](*args, rows, bucket, **meta)
                run()
                if ref is None:
                    ref = out.clone()
                same = torch.equal(out, ref)
                us = do_bench(run, warmup=10, rep=100) * 1e3
                print(f"{spec} {rows:8d} rows B{config.block_rows} w{config.num_warps} ROW_BLOCKS {blocks}: "
                      f"{us:7.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  same as one block {same}",
                      flush=True)


if __name__ == "__main__":
    main()
