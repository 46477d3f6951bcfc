"""Experiment (not part of the package): compress at D=128, fp16, 1M rows, for tq4, tq3 and tq2.
What the generated kernels do: normalize the row in fp32, round it to fp16, one tl.dot a rotation slot
(2 slots of 64 columns for tq4, 4 of 32 for tq2, 8 of 16 for tq3), the code search on each slot's
product, the group word as a weighted sum of the slots' codes. Forms tried here:
  slots  NORM  one product a slot, as generated (slots loaded in the loop over slots);
  coord  NORM  one 128-column product in coordinate order (the plain rotation, transposed), the search
               on all 128 columns, and the group words by a second product: codes (exact small integers
               in bf16) times a 0/1 pack matrix scaled by powers of two (bf16 holds 2^21 exactly), fp32
               accumulation, exact below 2^24;
NORM: 0 = normalize the row before the product (as generated); 1 = the raw fp16 row into the product,
the product scaled by 1/norm; 2 = the raw row, and the search compares |y| against thresholds scaled by
the row's norm (no scaling of the product at all).
TMA: 1 = the row tile read by a bulk tensor copy (a host-side tensor descriptor) instead of tl.load.
Each form is checked against the fp32 PyTorch path (share of equal codes) and timed (triton do_bench
median) against a device-to-device copy measured in the same run.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/compress_forms_d128.py
  --check: a small run under TRITON_INTERPRET=1 (CPU), codes against the PyTorch path, no timing.
"""
import os
import sys

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

import kernelgen
from kernelgen import torch_path

D = 128


def _positive_boundaries(spec):
    q = kernelgen.quantizer(spec, D, device="cpu")
    b = q.boundaries.tolist()
    return b[len(b) // 2:]  # the positive half (the codebook is symmetric; the middle boundary is 0)


P4 = _positive_boundaries("tq4")  # 8 values: 0, then 7 positive
P3 = _positive_boundaries("tq3")
P2 = _positive_boundaries("tq2")
T4 = [tl.constexpr(v) for v in P4]
T3 = [tl.constexpr(v) for v in P3]
T2 = [tl.constexpr(v) for v in P2]
T4_1, T4_2, T4_3, T4_4, T4_5, T4_6, T4_7 = T4[1:]
T3_1, T3_2, T3_3 = T3[1:]
T2_1 = T2[1]


@triton.jit
def _m(a, s, BITS: tl.constexpr):
    """m = number of positive boundaries <= a (binary search; thresholds times s, s = 1 or the norm)."""
    if BITS == 4:
        h2 = a >= T4_4 * s
        m2 = h2.to(tl.float32)
        m1 = (a >= tl.where(h2, T4_6 * s, T4_2 * s)).to(tl.float32)
        t0 = tl.where(h2, tl.where(m1 > 0, T4_7 * s, T4_5 * s), tl.where(m1 > 0, T4_3 * s, T4_1 * s))
        m0 = (a >= t0).to(tl.float32)
        m = m2 * 4.0 + m1 * 2.0 + m0
    elif BITS == 3:
        h1 = a >= T3_2 * s
        m1 = h1.to(tl.float32)
        m0 = (a >= tl.where(h1, T3_3 * s, T3_1 * s)).to(tl.float32)
        m = m1 * 2.0 + m0
    else:
        m = (a >= T2_1 * s).to(tl.float32)
    return m


@triton.jit
def _code(y, s, BITS: tl.constexpr):
    m = _m(tl.abs(y), s, BITS)
    half: tl.constexpr = 1 << (BITS - 1)
    up = (y >= 0.0).to(tl.float32)
    return (half - 1.0 - m) + up * (2.0 * m + 1.0)


@triton.jit
def _row(x_ptr, x_desc, rows, row_ok, NORM: tl.constexpr, TMA: tl.constexpr):
    """The row tile for the product, its norm, and the scale s the search uses."""
    c = tl.arange(0, 128)
    if TMA:  # a bulk tensor copy of the tile (rows past the end read as zeros)
        xh = x_desc.load([tl.program_id(0) * rows.shape[0], 0])
    else:
        xh = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + c[None, :], mask=row_ok[:, None], other=0.0)
    x = xh.to(tl.float32)
    norm = tl.sqrt(tl.sum(x * x, axis=1))
    inv = 1.0 / (norm + 1e-10)
    if NORM == 0:
        xp = (x * inv[:, None]).to(tl.float16)
    else:
        xp = xh
    return xp, norm, inv


@triton.jit
def _scaled(y, norm, inv, NORM: tl.constexpr):
    """(y for the search, s for the thresholds)"""
    if NORM == 1:
        y = y * inv[:, None]
    if NORM == 2:
        s = (norm + 1e-10)[:, None]
    else:
        s = 1.0
    return y, s


@triton.jit
def _store(packed_ptr, rows, row_ok, word, S: tl.constexpr, BYTES: tl.constexpr):
    groups = tl.arange(0, S)
    out = packed_ptr + rows[:, None].to(tl.int64) * (S * BYTES) + groups[None, :] * BYTES
    for t in tl.static_range(BYTES):
        tl.store(out + t, ((word >> (8 * (BYTES - 1 - t))) & 0xFF).to(tl.uint8), mask=row_ok[:, None])


@triton.jit
def slots_kernel(x_ptr, x_desc, w_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, NORM: tl.constexpr,
                 G: tl.constexpr, S: tl.constexpr, BITS: tl.constexpr, BYTES: tl.constexpr, TMA: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    k = tl.arange(0, 128)[:, None]
    n = tl.arange(0, S)[None, :]
    xp, norm, inv = _row(x_ptr, x_desc, rows, row_ok, NORM, TMA)
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    word = tl.zeros((BLOCK_ROWS, S), dtype=tl.float32)
    for j in tl.static_range(G):
        y = tl.dot(xp, tl.load(w_ptr + j * 128 * S + k * S + n))
        y, s = _scaled(y, norm, inv, NORM)
        word += _code(y, s, BITS) * (1 << (BITS * (G - 1 - j)))
    _store(packed_ptr, rows, row_ok, word.to(tl.int32), S, BYTES)


@triton.jit
def coord_kernel(x_ptr, x_desc, rt_ptr, pack_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr,
                 NORM: tl.constexpr, S: tl.constexpr, BITS: tl.constexpr, BYTES: tl.constexpr,
                 PACK_BF16: tl.constexpr, TMA: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    k = tl.arange(0, 128)[:, None]
    rt = tl.load(rt_ptr + k * 128 + tl.arange(0, 128)[None, :])
    pack = tl.load(pack_ptr + k * S + tl.arange(0, S)[None, :])
    xp, norm, inv = _row(x_ptr, x_desc, rows, row_ok, NORM, TMA)
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    y = tl.dot(xp, rt)
    y, s = _scaled(y, norm, inv, NORM)
    codes = _code(y, s, BITS)
    if PACK_BF16:
        word = tl.dot(codes.to(tl.bfloat16), pack).to(tl.int32)
    else:  # the interpreter's bf16 is not exact: fp32 there
        word = tl.dot(codes, pack).to(tl.int32)
    _store(packed_ptr, rows, row_ok, word, S, BYTES)


def operands(q, device):
    lay = q.layout
    g, s = lay.codes_per_group, lay.slot_pad
    rot = q.rotation.to(device=device, dtype=torch.float32)  # (D, D)
    slots = torch.zeros(g, D, s, device=device)
    for j in range(g):
        slots[j] = rot[j::g].T
    rt = rot.T.contiguous()  # y = x @ rot.T, columns in coordinate order
    pack = torch.zeros(D, s, device=device)
    for c in range(D):
        pack[c, c // g] = float(2 ** (lay.bits * (g - 1 - c % g)))
    return slots.half().contiguous(), rt.half(), pack.to(torch.float32 if device == "cpu" else torch.bfloat16)


def main(check):
    torch.manual_seed(0)
    device = "cpu" if check else "cuda"
    rows = 256 if check else 1 << 20
    if not check:
        from triton.testing import do_bench
        big = torch.empty(1 << 30, dtype=torch.uint8, device=device)
        big2 = torch.empty_like(big)
        copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
        copy_gbps = 2 * big.numel() / copy_us / 1e3
        print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    x = torch.randn(rows, D, device=device, dtype=torch.float16)
    for spec in ("tq4", "tq3", "tq2"):
        q = kernelgen.quantizer(spec, D, device=device)
        lay = q.layout
        g, s, bits, nb = lay.codes_per_group, lay.slot_pad, lay.bits, lay.bytes_per_group
        slots, rt, pack = operands(q, device)
        ref_p, _ = torch_path.compress_rows(x, q.rotation.to(device), q.boundaries.to(device), lay)
        ref_codes = torch_path.unpack_codes(ref_p, lay)
        nbytes = rows * (D * 2 + q.packed_dim + 4)
        p = torch.empty_like(ref_p)
        nr = torch.empty(rows, device=device)

        def report(name, fn):
            try:
                p.fill_(0xAA)
                fn()
                agree = (torch_path.unpack_codes(p, lay) == ref_codes).double().mean().item()
                if check:
                    print(f"{name:36s} codes equal to fp32 path {agree:.5f}", flush=True)
                    return
                us = do_bench(fn, warmup=10, rep=100) * 1e3
                print(f"{name:36s} {us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  agree {agree:.5f}",
                      flush=True)
            except Exception as e:
                print(f"{name:36s} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)

        if not check:
            report(f"{spec} shipped", lambda: q.compress(x, out=(p, nr)))
        shapes = ((64, 4),) if check else ((64, 4), (32, 4), (128, 4), (128, 8))
        for tma in ((0,) if check else (0, 1)):
            for norm in ((0, 1, 2) if not tma else (2,)):
                for blk, warps in shapes:
                    desc = TensorDescriptor.from_tensor(x, [blk, D]) if tma else None
                    report(f"{spec} slots NORM{norm} TMA{tma} B{blk} w{warps}",
                           lambda: slots_kernel[(triton.cdiv(rows, blk),)](
                               x, desc, slots, p, nr, rows, BLOCK_ROWS=blk, NORM=norm, G=g, S=s, BITS=bits,
                               BYTES=nb, TMA=tma, num_warps=warps))
                    report(f"{spec} coord NORM{norm} TMA{tma} B{blk} w{warps}",
                           lambda: coord_kernel[(triton.cdiv(rows, blk),)](
                               x, desc, rt, pack, p, nr, rows, BLOCK_ROWS=blk, NORM=norm, S=s, BITS=bits,
                               BYTES=nb, PACK_BF16=not check, TMA=tma, num_warps=warps))

if __name__ == "__main__":
    main("--check" in sys.argv)
