"""Experiment (not part of the package): compress at D=128, fp16, 1M rows, for tq4 (2 codes a byte) and
tq3 (8 codes in 3 bytes). The generated kernels run one tl.dot per slot (2 slots of 64 columns for tq4,
8 of 16 for tq3, each re-reading the row tile). Here one 128-column product instead, its codes combined
into group words by a reshape and a weighted sum:
  mode 1: columns slot-major (column j*S + n = slot j, group n), sum over the slot axis of (B, g, S);
  mode 2: columns in coordinate order (the plain rotation, column g*n + j), sum over the last axis of (B, S, g).
Each variant is checked against the shipped kernel's bytes, then timed (triton do_bench median) against
a device-to-device copy measured in the same run.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/one_product_d128.py
"""
import torch
import triton
import triton.language as tl
from triton.testing import do_bench

import kernelgen


_code4 = kernelgen.quantizer("tq4", 128, device="cpu")._variant.module._code
_code3 = kernelgen.quantizer("tq3", 128, device="cpu")._variant.module._code
_code2 = kernelgen.quantizer("tq2", 128, device="cpu")._variant.module._code


@triton.jit
def _code(y, BITS: tl.constexpr):
    if BITS == 4:
        c = _code4(y)
    elif BITS == 3:
        c = _code3(y)
    else:
        c = _code2(y)
    return c


@triton.jit
def kernel(x_ptr, w_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, MODE: tl.constexpr,
           G: tl.constexpr, S: tl.constexpr, BITS: tl.constexpr, BYTES: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    k = tl.arange(0, 128)[:, None]
    c = tl.arange(0, 128)
    w = tl.load(w_ptr + k * 128 + c[None, :])
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + c[None, :], mask=row_ok[:, None], other=0.0).to(tl.float32)
    norm = tl.sqrt(tl.sum(x * x, axis=1))
    xn = (x * (1.0 / (norm + 1e-10))[:, None]).to(tl.float16)
    y = tl.dot(xn, w)
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    if MODE == 1:
        j = c // S
    else:
        j = c % G
    colw = (1 << (BITS * (G - 1 - j))).to(tl.float32)
    codes = _code(y, BITS) * colw[None, :]
    if MODE == 1:
        word = tl.sum(tl.reshape(codes, (BLOCK_ROWS, G, S)), axis=1).to(tl.int32)
    else:
        word = tl.sum(tl.reshape(codes, (BLOCK_ROWS, S, G)), axis=2).to(tl.int32)
    groups = tl.arange(0, S)
    out = packed_ptr + rows[:, None].to(tl.int64) * (S * BYTES) + groups[None, :] * BYTES
    for t in tl.static_range(BYTES):
        tl.store(out + t, ((word >> (8 * (BYTES - 1 - t))) & 0xFF).to(tl.uint8), mask=row_ok[:, None])


def main():
    torch.manual_seed(0)
    rows = 1 << 20
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    x = torch.randn(rows, 128, device="cuda", dtype=torch.float16)
    for spec in ("tq4", "tq3", "tq2"):
        q = kernelgen.quantizer(spec, 128)
        lay = q.layout
        g, s, bits, nbytes_g = lay.codes_per_group, lay.slot_pad, lay.bits, lay.bytes_per_group
        slots = q._slots[torch.float16]  # (g, 128, S)
        w_by_mode = {1: slots.permute(1, 0, 2).reshape(128, g * s).contiguous(),
                     2: slots.permute(1, 2, 0).reshape(128, s * g).contiguous()}
        ref_p, ref_n = q.compress(x)
        nbytes = rows * (128 * 2 + q.packed_dim + 4)

        def report(name, fn, check):
            try:
                fn()
                ok = check()
                us = do_bench(fn, warmup=10, rep=100) * 1e3
                print(f"{name:40s} {us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  {ok}", flush=True)
            except Exception as e:
                print(f"{name:40s} failed: {type(e).__name__}: {str(e)[:150]}", flush=True)

        report(f"{spec} shipped compress", lambda: q.compress(x, out=(ref_p, ref_n)), lambda: "")
        p = torch.empty_like(ref_p)
        nr = torch.empty_like(ref_n)
        for mode in (1, 2):
            for blk, warps in ((64, 4), (64, 8), (128, 4), (128, 8), (32, 4)):
                p.fill_(0xAA)
                report(f"{spec} mode {mode} B{blk} w{warps}",
                       lambda: kernel[(rows // blk,)](x, w_by_mode[mode], p, nr, rows, BLOCK_ROWS=blk, MODE=mode,
                                                      G=g, S=s, BITS=bits, BYTES=nbytes_g, num_warps=warps),
                       lambda: f"same bytes {(p == ref_p).double().mean().item():.5f}")


if __name__ == "__main__":
    main()
