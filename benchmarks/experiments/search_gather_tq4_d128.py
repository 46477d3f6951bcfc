"""Experiment (not part of the package): tq4 at D=128, fp16, 1M rows, on an H100.
Static SASS counts (triton's ptxas, sm_90, compiled on a CPU machine) showed compress issuing about 27
instructions an element, most in the code search, and decompress storing each gathered centroid to
shared memory with its own 2-byte store (the wgmma A operand). Forms tried here:
compress (`compress`, SEARCH x RAW):
  SEARCH 0: the generated search (code = 7 - m + up * (2m + 1));
  SEARCH 1-3: the search returns copysign(m + 0.5, y) = code - 7.5 (one bit operation for the sign),
    the +0.5 folded into the last level's select; 1: tl.where on the top bit for the last threshold,
    2: weighted selects, 3: no predicates (the last threshold from multiply-adds of 0/1 floats);
  RAW 1: the fp16 row goes into the products as it is, the products scaled by 1/norm after
    (instead of normalizing the row in fp32 and rounding it to fp16).
decompress (`dec` = the generated form; `dec_pairs`):
  FORM 0: each packed byte gathers both its codes' fp16 centroids at once from a 256-entry int32
    table, joined into coordinate order (B x 128), one product with the plain rotation (K = 128);
  FORM 1: two gathers from the 16-entry fp16 table, joined into coordinate order, one product.
Checked against the shipped kernels (same bytes / max abs difference) and the fp32 path (share of equal
codes); timed with triton do_bench (median) against a device-to-device copy in the same run.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/search_gather_tq4_d128.py
"""
import torch
import triton
import triton.language as tl
from triton.testing import do_bench

import kernelgen
from kernelgen import torch_path

HEAD_DIM = tl.constexpr(128)
DIM_PAD = tl.constexpr(128)
SLOT_PAD = tl.constexpr(64)
PACKED_DIM = tl.constexpr(64)
NORM_EPS = tl.constexpr(1e-10)


@triton.jit
def _code0(y):  # shipped
    a = tl.abs(y)
    h2 = a >= 0.09228016436100006
    m2 = h2.to(tl.float32)
    h1 = a >= 0.0440780371427536 + m2 * 0.10843555629253387
    m1 = h1.to(tl.float32)
    h0 = a >= tl.where(h2, 0.12001235783100128 + m1 * 0.07439687848091125, 0.021810460835695267 + m1 * 0.045521724969148636)
    m0 = h0.to(tl.float32)
    m = m2 * 4.0 + m1 * 2.0 + m0
    up = (y >= 0.0).to(tl.float32)
    return (7.0 - m) + up * (2.0 * m + 1.0)


@triton.jit
def _signed(y, SEARCH: tl.constexpr):
    """copysign(m + 0.5, y) = code - 7.5"""
    a = tl.abs(y)
    if SEARCH == 1:  # bools to float, where on h2 for the last level, +0.5 in the last bit's values
        h2 = a >= 0.09228016436100006
        m2 = h2.to(tl.float32)
        m1 = (a >= 0.0440780371427536 + m2 * 0.10843555629253387).to(tl.float32)
        t0 = tl.where(h2, 0.12001235783100128 + m1 * 0.07439687848091125, 0.021810460835695267 + m1 * 0.045521724969148636)
        m0 = tl.where(a >= t0, 1.5, 0.5)
        m = m2 * 4.0 + (m1 * 2.0 + m0)
    elif SEARCH == 2:  # weighted values straight from the compares
        h2 = a >= 0.09228016436100006
        w2 = tl.where(h2, 4.0, 0.0)
        w1 = tl.where(a >= 0.0440780371427536 + w2 * 0.027108889073133469, 2.0, 0.0)
        t0 = tl.where(h2, 0.12001235783100128 + w1 * 0.037198439240455627, 0.021810460835695267 + w1 * 0.022760862484574318)
        m = w2 + w1 + tl.where(a >= t0, 1.5, 0.5)
    else:  # 3: no predicates: selects as multiply-adds of 0/1 floats
        m2 = (a >= 0.09228016436100006).to(tl.float32)
        m1 = (a >= 0.0440780371427536 + m2 * 0.10843555629253387).to(tl.float32)
        c = 0.021810460835695267 + m2 * (0.12001235783100128 - 0.021810460835695267)
        d = 0.045521724969148636 + m2 * (0.07439687848091125 - 0.045521724969148636)
        m0 = (a >= c + m1 * d).to(tl.float32)
        m = m2 * 4.0 + (m1 * 2.0 + (m0 + 0.5))
    return (m.to(tl.int32, bitcast=True) | (y.to(tl.int32, bitcast=True) & -2147483648)).to(tl.float32, bitcast=True)


@triton.jit
def compress(
    x_ptr, slots_ptr, packed_ptr, norms_ptr, n_rows,
    BLOCK_ROWS: tl.constexpr, SEARCH: tl.constexpr, RAW: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    x_rows = x_ptr + rows[:, None].to(tl.int64) * HEAD_DIM
    k = tl.arange(0, 128)[:, None]
    n = tl.arange(0, SLOT_PAD)[None, :]
    w = slots_ptr + k * SLOT_PAD + n
    w0 = tl.load(w)
    w1 = tl.load(w + 1 * DIM_PAD * SLOT_PAD)
    dims = tl.arange(0, DIM_PAD)
    xh = tl.load(x_rows + dims[None, :], mask=row_ok[:, None], other=0.0)
    x = xh.to(tl.float32)
    norm = tl.sqrt(tl.sum(x * x, axis=1))
    inv = 1.0 / (norm + NORM_EPS)
    if RAW:
        y0 = tl.dot(xh, w0) * inv[:, None]
        y1 = tl.dot(xh, w1) * inv[:, None]
    else:
        xn = (x * inv[:, None]).to(tl.float16)
        y0 = tl.dot(xn, w0)
        y1 = tl.dot(xn, w1)
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    if SEARCH == 0:
        word = (_code0(y0) * 16.0 + _code0(y1)).to(tl.int32)
    else:
        word = (_signed(y0, SEARCH) * 16.0 + _signed(y1, SEARCH) + 127.5).to(tl.int32)
    groups = tl.arange(0, SLOT_PAD)
    out = packed_ptr + rows[:, None].to(tl.int64) * PACKED_DIM + groups[None, :]
    tl.store(out, (word & 0xFF).to(tl.uint8), mask=row_ok[:, None])



@triton.jit
def _cent(centroids_ptr, code, FORM: tl.constexpr):
    if FORM == 0:
        v = tl.load(centroids_ptr + code)
    elif FORM == 1:
        v = tl.trans(tl.load(centroids_ptr + tl.trans(code)))
    else:
        table = tl.load(centroids_ptr + tl.arange(0, 16))
        v = tl.gather(tl.broadcast_to(table[None, :], (code.shape[0], 16)), code, axis=1)
    return v


@triton.jit
def dec(packed_ptr, norms_ptr, slots_ptr, centroids_ptr, out_ptr, n_rows,
        BLOCK_ROWS: tl.constexpr, FORM: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    k = tl.arange(0, 128)[None, :]
    n = tl.arange(0, SLOT_PAD)[:, None]
    w = slots_ptr + k * SLOT_PAD + n
    w0 = tl.load(w)
    w1 = tl.load(w + DIM_PAD * SLOT_PAD)
    norm = tl.load(norms_ptr + rows, mask=row_ok, other=0.0)[:, None]
    groups = tl.arange(0, SLOT_PAD)
    word = tl.load(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], mask=row_ok[:, None], other=0).to(tl.int32)
    v0 = _cent(centroids_ptr, (word >> 4) & 15, FORM)
    v1 = _cent(centroids_ptr, word & 15, FORM)
    x = tl.dot(v0, w0)
    x = tl.dot(v1, w1, x)
    tl.store(out_ptr + rows[:, None].to(tl.int64) * 128 + k, (x * norm).to(tl.float16), mask=row_ok[:, None])


@triton.jit
def dec_pairs(packed_ptr, norms_ptr, rot_ptr, pairs_ptr, out_ptr, n_rows,
              BLOCK_ROWS: tl.constexpr, FORM: tl.constexpr):
    """A in coordinate order: each packed byte gathers its two fp16 centroids at once from a
    256-entry table of int32 (first code's centroid in the high half)."""
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    k = tl.arange(0, 128)[None, :]
    c = tl.arange(0, 128)[:, None]
    r = tl.load(rot_ptr + c * 128 + k)
    norm = tl.load(norms_ptr + rows, mask=row_ok, other=0.0)[:, None]
    groups = tl.arange(0, SLOT_PAD)
    byte = tl.load(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], mask=row_ok[:, None], other=0).to(tl.int32)
    if FORM == 0:
        pair = tl.load(pairs_ptr + byte)
        hi = (pair >> 16).to(tl.int16).to(tl.float16, bitcast=True)
        lo = pair.to(tl.int16).to(tl.float16, bitcast=True)
        a = tl.join(hi, lo).reshape(BLOCK_ROWS, 128)
    else:  # two gathers from the 16-entry fp16 table (pairs_ptr), joined in coordinate order
        a = tl.join(tl.load(pairs_ptr + (byte >> 4)), tl.load(pairs_ptr + (byte & 15))).reshape(BLOCK_ROWS, 128)
    x = tl.dot(a, r)
    tl.store(out_ptr + rows[:, None].to(tl.int64) * 128 + k, (x * norm).to(tl.float16), mask=row_ok[:, None])


def main():
    torch.manual_seed(0)
    rows = 1 << 20
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    nbytes = rows * (128 * 2 + 64 + 4)
    q = kernelgen.quantizer("tq4", 128)
    lay = q.layout
    x = torch.randn(rows, 128, device="cuda", dtype=torch.float16)
    rot = q.rotation.to("cuda", torch.float32)
    slots = torch.stack([rot[j::2].T for j in range(2)]).half().contiguous()  # (2, 128, 64): [j, k, n]
    ref_p, ref_n = q.compress(x)
    ref_codes = torch_path.unpack_codes(torch_path.compress_rows(x, rot, q.boundaries.cuda(), lay)[0], lay)

    def report(name, fn, check):
        try:
            fn()
            ok = check()
            us = do_bench(fn, warmup=10, rep=100) * 1e3
            print(f"{name:36s} {us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  {ok}", flush=True)
        except Exception as e:
            print(f"{name:36s} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)

    p, nr = torch.empty_like(ref_p), torch.empty_like(ref_n)

    def codes_check():
        same = (p == ref_p).double().mean().item()
        agree = (torch_path.unpack_codes(p, lay) == ref_codes).double().mean().item()
        return f"same bytes {same:.5f} codes = fp32 path {agree:.5f}"

    report("shipped compress", lambda: q.compress(x, out=(p, nr)), codes_check)
    for blk, warps in ((64, 4), (128, 8), (128, 4)):
        for raw in (0, 1):
            for search in (0, 1, 2, 3):
                report(f"compress SEARCH{search} RAW{raw} B{blk} w{warps}",
                       lambda: compress[(rows // blk,)](x, slots, p, nr.view(-1), rows, BLOCK_ROWS=blk,
                                                        SEARCH=search, RAW=raw, num_warps=warps),
                       codes_check)

    out = torch.empty(rows, 128, device="cuda", dtype=torch.float16)
    ref = q.decompress(ref_p, ref_n).float()
    cent16 = q.centroids.cuda().half()
    bits16 = cent16.view(torch.int16).to(torch.int32) & 0xFFFF
    byte = torch.arange(256, device="cuda")
    pairs = ((bits16[byte >> 4] << 16) | bits16[byte & 15]).to(torch.int32)  # first code high
    rot16 = rot.half().contiguous()

    def out_check():
        return f"max abs diff {(out.float() - ref).abs().max().item():.1e}"

    report("shipped decompress", lambda: q.decompress(ref_p, ref_n, out=out), out_check)
    for blk, warps in ((64, 4), (128, 8), (128, 4)):
        out.fill_(float("nan"))
        report(f"dec (generated form) B{blk} w{warps}",
               lambda: dec[(rows // blk,)](ref_p, ref_n, slots, cent16, out, rows, BLOCK_ROWS=blk, FORM=0,
                                           num_warps=warps), out_check)
        for form, table in ((0, pairs), (1, cent16)):
            out.fill_(float("nan"))
            report(f"dec_pairs FORM{form} B{blk} w{warps}",
                   lambda: dec_pairs[(rows // blk,)](ref_p, ref_n, rot16, table, out, rows, BLOCK_ROWS=blk,
                                                     FORM=form, num_warps=warps), out_check)


if __name__ == "__main__":
    main()
