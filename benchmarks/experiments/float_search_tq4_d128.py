"""Experiment (not part of the package): the compress search in float arithmetic. The codebook is
symmetric, so the search runs on |y| over the positive boundaries; each decided bit is a 0/1 float, the
next threshold a multilinear form of the bits above it (FFMA), the code mirrored by the sign in float,
and two codes combined into the byte before one float->int conversion.
MODE 0: binary search, float; 1: the same with the code made in int; 2: count of 7 compares in float.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/float_search_tq4_d128.py
"""
import torch
import triton
import triton.language as tl
from triton.testing import do_bench

import kernelgen

q = kernelgen.quantizer("tq4", 128)
P = [float(b) for b in q._variant.module.BOUNDARIES[8:]]


@triton.jit
def _code(y, MODE: tl.constexpr, p1: tl.constexpr, p2: tl.constexpr, p3: tl.constexpr, p4: tl.constexpr,
          p5: tl.constexpr, p6: tl.constexpr, p7: tl.constexpr):
    a = tl.abs(y)
    if MODE == 2:
        m = (a >= p1).to(tl.float32) + (a >= p2).to(tl.float32) + (a >= p3).to(tl.float32) + \
            (a >= p4).to(tl.float32) + (a >= p5).to(tl.float32) + (a >= p6).to(tl.float32) + (a >= p7).to(tl.float32)
    else:
        f2 = (a >= p4).to(tl.float32)
        f1 = (a >= p2 + f2 * (p6 - p2)).to(tl.float32)
        f0 = (a >= (p1 + f2 * (p5 - p1)) + f1 * ((p3 - p1) + f2 * ((p7 - p5) - (p3 - p1)))).to(tl.float32)
        m = f2 * 4.0 + f1 * 2.0 + f0
    if MODE == 1:
        mi = m.to(tl.int32)
        return tl.where(y >= 0.0, 8 + mi, 7 - mi).to(tl.float32)
    s = (y >= 0.0).to(tl.float32)
    return (7.0 - m) + s * (2.0 * m + 1.0)


@triton.jit
def compress(x_ptr, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, MODE: tl.constexpr,
             p1: tl.constexpr, p2: tl.constexpr, p3: tl.constexpr, p4: tl.constexpr,
             p5: tl.constexpr, p6: tl.constexpr, p7: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    k = tl.arange(0, 128)[:, None]
    n = tl.arange(0, 64)[None, :]
    dims = tl.arange(0, 128)
    groups = tl.arange(0, 64)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], mask=row_ok[:, None], other=0.0).to(tl.float32)
    norm = tl.sqrt(tl.sum(x * x, axis=1))
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    xn = (x * (1.0 / (norm + 1e-10))[:, None]).to(tl.float16)
    y0 = tl.dot(xn, tl.load(slots_ptr + k * 64 + n))
    y1 = tl.dot(xn, tl.load(slots_ptr + 128 * 64 + k * 64 + n))
    word = _code(y0, MODE, p1, p2, p3, p4, p5, p6, p7) * 16.0 + _code(y1, MODE, p1, p2, p3, p4, p5, p6, p7)
    tl.store(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], word.to(tl.int32).to(tl.uint8), mask=row_ok[:, None])


def main():
    torch.manual_seed(0)
    rows = 1 << 20
    slots = q._slots[torch.float16]
    x = torch.randn(rows, 128, device="cuda", dtype=torch.float16)
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    nbytes = rows * (128 * 2 + 64 + 4)
    ref_p, ref_n = q.compress(x)
    us = do_bench(lambda: q.compress(x, out=(ref_p, ref_n)), warmup=10, rep=100) * 1e3
    print(f"generated compress (default config): {us:7.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%", flush=True)
    p = torch.empty_like(ref_p)
    n_ = torch.empty_like(ref_n)
    pk = dict(zip(("p1", "p2", "p3", "p4", "p5", "p6", "p7"), P))
    for mode in (0, 1, 2):
        for blk, w in ((64, 4), (64, 8), (128, 4), (128, 8), (32, 4), (256, 8)):
            fn = lambda: compress[(rows // blk,)](x, slots, p, n_, rows, BLOCK_ROWS=blk, MODE=mode, num_warps=w, **pk)
            p.fill_(0xAA)
            fn()
            same = (p == ref_p).float().mean().item()
            us = do_bench(fn, warmup=10, rep=100) * 1e3
            print(f"compress float search mode {mode} B{blk} w{w}: {us:7.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}% bytes equal {same:.6f}", flush=True)


main()
