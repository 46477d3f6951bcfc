"""Experiment (not part of the package): tq4 at D=128, fp16, 1M rows.
(1) Centroids by a gather from a small table (L1-resident) instead of the 15-select tree, in
    decompress_rotated and decompress; a 256-entry byte table giving both centroids of a byte at once.
(2) Several row blocks a program in a loop of constant length (the rotation loaded once a program,
    the loop software-pipelined with num_stages), for compress and decompress.
Each variant is checked against the shipped kernel's output, then timed (triton do_bench median) against
a device-to-device copy measured in the same run.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/gather_loop_tq4_d128.py
"""
import torch
import triton
import triton.language as tl
from triton.testing import do_bench

import kernelgen

D, G = 128, 64
q = kernelgen.quantizer("tq4", D)
mod = q._variant.module
_code, _centroid = mod._code, mod._centroid


@triton.jit
def rotated(packed_ptr, norms_ptr, table_ptr, out_ptr, n_rows, BLOCK_ROWS: tl.constexpr, MODE: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    groups = tl.arange(0, 64)
    word = tl.load(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], mask=row_ok[:, None], other=0).to(tl.int32)
    norm = tl.load(norms_ptr + rows, mask=row_ok, other=0.0)[:, None]
    if MODE == 0:  # the select tree (as shipped)
        values = tl.join(_centroid((word >> 4) & 15), _centroid(word & 15)).reshape(BLOCK_ROWS, 128)
    elif MODE == 1:  # 16-entry gather per code
        values = tl.join(tl.load(table_ptr + ((word >> 4) & 15)), tl.load(table_ptr + (word & 15))).reshape(BLOCK_ROWS, 128)
    else:  # 256-entry byte table of (even, odd) centroid pairs
        pair = tl.arange(0, 2)[None, None, :]
        values = tl.load(table_ptr + word[:, :, None] * 2 + pair).reshape(BLOCK_ROWS, 128)
    cols = tl.arange(0, 128)
    tl.store(out_ptr + rows[:, None].to(tl.int64) * 128 + cols[None, :], (values * norm).to(tl.float16), mask=row_ok[:, None])


@triton.jit
def decompress(packed_ptr, norms_ptr, slots_ptr, table_ptr, out_ptr, n_rows,
               BLOCK_ROWS: tl.constexpr, MODE: tl.constexpr, ITERS: tl.constexpr, STAGES: tl.constexpr):
    n = tl.arange(0, 64)[:, None]
    kk = tl.arange(0, 128)[None, :]
    wt0 = tl.load(slots_ptr + kk * 64 + n)  # (64 groups, 128 dims): slot 0 transposed, once a program
    wt1 = tl.load(slots_ptr + 128 * 64 + kk * 64 + n)
    groups = tl.arange(0, 64)
    dims = tl.arange(0, 128)
    for i in tl.range(0, ITERS, num_stages=STAGES):
        rows = (tl.program_id(0) * ITERS + i) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        word = tl.load(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], mask=row_ok[:, None], other=0).to(tl.int32)
        norm = tl.load(norms_ptr + rows, mask=row_ok, other=0.0)[:, None]
        if MODE == 0:
            v0 = _centroid((word >> 4) & 15).to(tl.float16)
            v1 = _centroid(word & 15).to(tl.float16)
        elif MODE == 1:  # fp32 table
            v0 = tl.load(table_ptr + ((word >> 4) & 15)).to(tl.float16)
            v1 = tl.load(table_ptr + (word & 15)).to(tl.float16)
        else:  # fp16 table
            v0 = tl.load(table_ptr + ((word >> 4) & 15))
            v1 = tl.load(table_ptr + (word & 15))
        x = tl.dot(v0, wt0)
        x = tl.dot(v1, wt1, acc=x)
        tl.store(out_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], (x * norm).to(tl.float16), mask=row_ok[:, None])


@triton.jit
def compress(x_ptr, slots_ptr, packed_ptr, norms_ptr, n_rows,
             BLOCK_ROWS: tl.constexpr, ITERS: tl.constexpr, STAGES: tl.constexpr, RAW: tl.constexpr):
    k = tl.arange(0, 128)[:, None]
    n = tl.arange(0, 64)[None, :]
    w0 = tl.load(slots_ptr + k * 64 + n)  # once a program
    w1 = tl.load(slots_ptr + 128 * 64 + k * 64 + n)
    dims = tl.arange(0, 128)
    groups = tl.arange(0, 64)
    for i in tl.range(0, ITERS, num_stages=STAGES):
        rows = (tl.program_id(0) * ITERS + i) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        xh = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], mask=row_ok[:, None], other=0.0)
        x = xh.to(tl.float32)
        norm = tl.sqrt(tl.sum(x * x, axis=1))
        inv = 1.0 / (norm + 1e-10)
        if RAW:  # the fp16 row straight into the products, the scale applied after
            y0 = tl.dot(xh, w0) * inv[:, None]
            y1 = tl.dot(xh, w1) * inv[:, None]
        else:
            xn = (x * inv[:, None]).to(tl.float16)
            y0 = tl.dot(xn, w0)
            y1 = tl.dot(xn, w1)
        tl.store(norms_ptr + rows, norm, mask=row_ok)
        word = (_code(y0) * 16.0 + _code(y1)).to(tl.int32)
        tl.store(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], (word & 0xFF).to(tl.uint8), mask=row_ok[:, None])


def main():
    torch.manual_seed(0)
    rows = 1 << 20
    slots = q._slots[torch.float16]
    cent = q.centroids.float().contiguous()
    cent_h = cent.half()
    codes = torch.arange(256, device="cuda")
    pairs = torch.stack([cent[codes >> 4], cent[codes & 15]], 1).contiguous()  # (256, 2): even, odd
    x = torch.randn(rows, D, device="cuda", dtype=torch.float16)
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    nbytes = rows * (D * 2 + G + 4)
    ref_p, ref_n = q.compress(x)
    ref_y = q.decompress(ref_p, ref_n)
    ref_r = q.decompress(ref_p, ref_n, rotated=True)

    def report(name, fn, check):
        try:
            fn()
            ok = check()
            us = do_bench(fn, warmup=10, rep=100) * 1e3
            print(f"{name:52s} {us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  {ok}", flush=True)
        except Exception as e:  # a config that does not compile (shared memory) is reported, not fatal
            print(f"{name:52s} failed: {type(e).__name__}: {str(e)[:120]}", flush=True)

    report("shipped compress", lambda: q.compress(x, out=(ref_p, ref_n)), lambda: "")
    report("shipped decompress", lambda: q.decompress(ref_p, ref_n, out=ref_y), lambda: "")
    report("shipped rotated", lambda: q.decompress(ref_p, ref_n, rotated=True, out=ref_r), lambda: "")
    out = torch.empty_like(ref_r)
    for mode, table in ((0, cent), (1, cent), (2, pairs)):
        for blk, w in ((64, 4), (128, 4), (128, 8), (256, 8)):
            out.fill_(float("nan"))
            report(f"rotated mode {mode} B{blk} w{w}",
                   lambda: rotated[(rows // blk,)](ref_p, ref_n, table, out, rows, BLOCK_ROWS=blk, MODE=mode, num_warps=w),
                   lambda: f"equal {torch.equal(out, ref_r)}")
    loops = ((1, 1), (2, 2), (4, 1), (4, 2), (4, 3), (8, 2), (8, 3))  # (row blocks a program, num_stages)
    for mode, table in ((0, cent), (1, cent), (2, cent_h)):
        for blk, w in ((64, 4), (128, 4)):
            for iters, st in loops:
                out.fill_(float("nan"))
                report(f"decompress mode {mode} B{blk} w{w} x{iters} st{st}",
                       lambda: decompress[(rows // blk // iters,)](ref_p, ref_n, slots, table, out, rows, BLOCK_ROWS=blk,
                                                                   MODE=mode, ITERS=iters, STAGES=st, num_warps=w),
                       lambda: f"max err {(out.float() - ref_y.float()).abs().max().item():.1e}")
    p = torch.empty_like(ref_p)
    nr = torch.empty_like(ref_n)
    for raw, blk, w in ((0, 64, 4), (0, 128, 4), (0, 128, 8), (1, 64, 4)):
        for iters, st in loops:
            p.fill_(0xAA)
            report(f"compress raw{raw} B{blk} w{w} x{iters} st{st}",
                   lambda: compress[(rows // blk // iters,)](x, slots, p, nr, rows, BLOCK_ROWS=blk, ITERS=iters,
                                                             STAGES=st, RAW=raw, num_warps=w),
                   lambda: f"same bytes {(p == ref_p).double().mean().item():.5f}")

if __name__ == "__main__":
    main()
