"""Experiment (not part of the package): where does tq4 D=128 compress/decompress time go on the GPU?
Each MODE removes or swaps one stage; times are medians of triton do_bench over 1M fp16 rows, with the
fraction of a d2d copy measured in the same run.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/ablate_tq4_d128.py
"""
import torch
import triton
import triton.language as tl
from triton.testing import do_bench

import kernelgen

q = kernelgen.quantizer("tq4", 128)
mod = q._variant.module
_bucketize, _centroid = mod._bucketize, mod._centroid
B = mod.BOUNDARIES


@triton.jit
def _bucketize_sym(y, b1: tl.constexpr, b2: tl.constexpr, b3: tl.constexpr, b4: tl.constexpr,
                   b5: tl.constexpr, b6: tl.constexpr, b7: tl.constexpr):
    """Symmetric codebook: search |y| over the 7 positive boundaries (3 compares), then mirror."""
    a = tl.abs(y)
    h2 = a >= b4
    h1 = a >= tl.where(h2, b6, b2)
    h0 = a >= tl.where(h2, tl.where(h1, b7, b5), tl.where(h1, b3, b1))
    m = (h2.to(tl.int32) << 2) | (h1.to(tl.int32) << 1) | h0.to(tl.int32)
    return tl.where(y >= 0.0, 8 + m, 7 - m)


@triton.jit
def _bucketize_count(y, b0: tl.constexpr, b1: tl.constexpr, b2: tl.constexpr, b3: tl.constexpr,
                     b4: tl.constexpr, b5: tl.constexpr, b6: tl.constexpr):
    a = tl.abs(y)
    m = (a >= b0).to(tl.int32) + (a >= b1).to(tl.int32) + (a >= b2).to(tl.int32) + (a >= b3).to(tl.int32) \
        + (a >= b4).to(tl.int32) + (a >= b5).to(tl.int32) + (a >= b6).to(tl.int32)
    return tl.where(y >= 0.0, 8 + m, 7 - m)


@triton.jit
def compress(x_ptr, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, MODE: tl.constexpr,
             b1: tl.constexpr, b2: tl.constexpr, b3: tl.constexpr, b4: tl.constexpr,
             b5: tl.constexpr, b6: tl.constexpr, b7: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    k = tl.arange(0, 128)[:, None]
    n = tl.arange(0, 64)[None, :]
    dims = tl.arange(0, 128)
    groups = tl.arange(0, 64)
    xh = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], mask=row_ok[:, None], other=0.0)
    x = xh.to(tl.float32)
    norm = tl.sqrt(tl.sum(x * x, axis=1))
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    if MODE == 0:  # no product, no search: one byte per group from a reduction of the row
        xr = tl.reshape(x, (BLOCK_ROWS, 64, 2))
        word = (tl.sum(xr, axis=2) > 0).to(tl.int32)
    else:
        xn = (x * (1.0 / (norm + 1e-10))[:, None]).to(tl.float16)
        y0 = tl.dot(xn, tl.load(slots_ptr + k * 64 + n))
        y1 = tl.dot(xn, tl.load(slots_ptr + 128 * 64 + k * 64 + n))
        if MODE == 1:  # product, sign only
            word = ((y0 > 0).to(tl.int32) << 4) | (y1 > 0).to(tl.int32)
        elif MODE == 2:  # the generated binary search
            word = (_bucketize(y0) << 4) | _bucketize(y1)
        elif MODE == 3:  # symmetric search
            word = (_bucketize_sym(y0, b1, b2, b3, b4, b5, b6, b7) << 4) | _bucketize_sym(y1, b1, b2, b3, b4, b5, b6, b7)
        else:  # symmetric count
            word = (_bucketize_count(y0, b1, b2, b3, b4, b5, b6, b7) << 4) | _bucketize_count(y1, b1, b2, b3, b4, b5, b6, b7)
    tl.store(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], word.to(tl.uint8), mask=row_ok[:, None])


@triton.jit
def decompress(packed_ptr, norms_ptr, slots_ptr, out_ptr, n_rows, BLOCK_ROWS: tl.constexpr, MODE: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    groups = tl.arange(0, 64)
    word = tl.load(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], mask=row_ok[:, None], other=0).to(tl.int32)
    norm = tl.load(norms_ptr + rows, mask=row_ok, other=0.0)[:, None]
    if MODE == 0:  # no centroid lookup
        v0 = ((word >> 4) & 15).to(tl.float16)
        v1 = (word & 15).to(tl.float16)
    else:
        v0 = _centroid((word >> 4) & 15).to(tl.float16)
        v1 = _centroid(word & 15).to(tl.float16)
    if MODE == 2:  # norm folded into the operands
        v0 = (v0 * norm).to(tl.float16)
        v1 = (v1 * norm).to(tl.float16)
    n = tl.arange(0, 64)[:, None]
    if MODE == 3:  # one 128-wide output tile instead of two 64-wide chunks
        kk = tl.arange(0, 128)[None, :]
        x = tl.dot(v0, tl.load(slots_ptr + kk * 64 + n))
        x = tl.dot(v1, tl.load(slots_ptr + 128 * 64 + kk * 64 + n), acc=x)
        tl.store(out_ptr + rows[:, None].to(tl.int64) * 128 + kk, (x * norm).to(tl.float16), mask=row_ok[:, None])
    elif MODE == 4:  # no product: store the centroids as they are (two halves)
        kk = tl.arange(0, 64)[None, :]
        tl.store(out_ptr + rows[:, None].to(tl.int64) * 128 + kk, (v0 * norm).to(tl.float16), mask=row_ok[:, None])
        tl.store(out_ptr + rows[:, None].to(tl.int64) * 128 + 64 + kk, (v1 * norm).to(tl.float16), mask=row_ok[:, None])
    else:
        kk = tl.arange(0, 64)[None, :]
        for k0 in range(0, 128, 64):
            w = slots_ptr + (k0 + kk) * 64 + n
            x = tl.dot(v0, tl.load(w))
            x = tl.dot(v1, tl.load(w + 128 * 64), acc=x)
            if MODE != 2:
                x = x * norm
            tl.store(out_ptr + rows[:, None].to(tl.int64) * 128 + k0 + kk, x.to(tl.float16), mask=row_ok[:, None])


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
    p = torch.empty_like(ref_p)
    n_ = torch.empty_like(ref_n)
    pos = [float(b) for b in B[8:]]
    for mode in range(5):
        for blk, w in ((64, 4), (128, 4), (128, 8)):
            fn = lambda: compress[(rows // blk,)](x, slots, p, n_, rows, BLOCK_ROWS=blk, MODE=mode,
                                                  b1=pos[0], b2=pos[1], b3=pos[2], b4=pos[3], b5=pos[4], b6=pos[5], b7=pos[6], num_warps=w)
            fn()
            same = torch.equal(p, ref_p) if mode >= 2 else "-"
            us = do_bench(fn, warmup=10, rep=100) * 1e3
            print(f"compress mode {mode} B{blk} w{w}: {us:7.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}% same-as-generated {same}", flush=True)
    y = torch.empty(rows, 128, device="cuda", dtype=torch.float16)
    ref_y = q.decompress(ref_p, ref_n, dtype=torch.float16)
    for mode in range(5):
        for blk, w in ((64, 4), (128, 4), (128, 8)):
            fn = lambda: decompress[(rows // blk,)](ref_p, ref_n, slots, y, rows, BLOCK_ROWS=blk, MODE=mode, num_warps=w)
            fn()
            err = (y.float() - ref_y.float()).abs().max().item() if mode in (1, 2, 3) else float("nan")
            us = do_bench(fn, warmup=10, rep=100) * 1e3
            print(f"decompress mode {mode} B{blk} w{w}: {us:7.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}% max err vs generated {err:.1e}", flush=True)


main()
