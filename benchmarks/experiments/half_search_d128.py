"""Experiment (not part of the package): compress at D=128, 1M rows, on an H100, with the code search
on packed fp16 pairs (inline PTX, two values an instruction: set.ge/fma.rn on f16x2) against the
generated kernels (fp32 search, one value an instruction), same configs, same run.
The rotated values are rounded to fp16 before the search; the fp16 thresholds are the ones whose
rounding boundary lies closest to each fp32 boundary (half_search_asm.py, checked there by emulation).
tq4 / tq2: one product a slot (as generated), the byte formed in fp16 (1024 + byte, its low 8 bits);
tq3: one coordinate-order product (as generated), the signed codes widened to fp32 for the word sum.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/half_search_d128.py
"""
import importlib.util
import os
import sys

import torch
import triton
import triton.language as tl
from triton.testing import do_bench

import kernelgen
from kernelgen import torch_path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from half_search_asm import group_asm, search_only_asm  # noqa: E402


@triton.jit
def slot_half(x_ptr, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr,
              G: tl.constexpr, SLOT: tl.constexpr, ASM: tl.constexpr, RAW: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    k = tl.arange(0, 128)[:, None]
    n = tl.arange(0, SLOT)[None, :]
    w = slots_ptr + k * SLOT + n
    w0 = tl.load(w)
    w1 = tl.load(w + 128 * SLOT)
    if G == 4:
        w2 = tl.load(w + 2 * 128 * SLOT)
        w3 = tl.load(w + 3 * 128 * SLOT)
    dims = tl.arange(0, 128)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], mask=row_ok[:, None], other=0.0)
    xf = x.to(tl.float32)
    norm = tl.sqrt(tl.sum(xf * xf, axis=1))
    inv = (1.0 / (norm + 1e-10))[:, None]
    if RAW:
        xh = x
    else:
        xh = (xf * inv).to(tl.float16)
    y0 = tl.dot(xh, w0)
    y1 = tl.dot(xh, w1)
    if RAW:
        y0 = y0 * inv
        y1 = y1 * inv
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    if G == 2:
        word = tl.inline_asm_elementwise(ASM, "=r,r,r", [y0.to(tl.float16), y1.to(tl.float16)],
                                         dtype=tl.int16, is_pure=True, pack=2)
    else:
        y2 = tl.dot(xh, w2)
        y3 = tl.dot(xh, w3)
        if RAW:
            y2 = y2 * inv
            y3 = y3 * inv
        word = tl.inline_asm_elementwise(ASM, "=r,r,r,r,r", [y0.to(tl.float16), y1.to(tl.float16),
                                                             y2.to(tl.float16), y3.to(tl.float16)],
                                         dtype=tl.int16, is_pure=True, pack=2)
    groups = tl.arange(0, SLOT)
    out = packed_ptr + rows[:, None].to(tl.int64) * SLOT + groups[None, :]
    tl.store(out, word.to(tl.uint8), mask=row_ok[:, None])


@triton.jit
def coord_half_tq3(x_ptr, rt_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, ASM: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    c = tl.arange(0, 128)
    rt = tl.load(rt_ptr + c[:, None] * 128 + c[None, :])
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + c[None, :], mask=row_ok[:, None], other=0.0)
    xf = x.to(tl.float32)
    norm = tl.sqrt(tl.sum(xf * xf, axis=1))
    y = tl.dot((xf * (1.0 / (norm + 1e-10))[:, None]).to(tl.float16), rt)
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    s = tl.inline_asm_elementwise(ASM, "=r,r", [y.to(tl.float16)], dtype=tl.float16, is_pure=True, pack=2)
    colw = (1 << (3 * (7 - c % 8))).to(tl.float32)
    word = (tl.sum(tl.reshape(s.to(tl.float32) * colw[None, :], (BLOCK_ROWS, 16, 8)), axis=2) + 8388607.5).to(tl.int32)
    groups = tl.arange(0, 16)
    out = packed_ptr + rows[:, None].to(tl.int64) * 48 + groups[None, :] * 3
    for t in tl.static_range(3):
        tl.store(out + t, ((word >> (8 * (2 - t))) & 0xFF).to(tl.uint8), mask=row_ok[:, None])


@triton.jit
def perm_half_tq3(x_ptr, rp_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, ASM: tl.constexpr):
    """Columns permuted so a thread's accumulator columns (2q + 8j + e: the same in mma and wgmma
    layouts) hold whole groups: column 32J + 8jj + 2q + e is code 2jj + e of group 4J + q."""
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    c = tl.arange(0, 128)
    rp = tl.load(rp_ptr + c[:, None] * 128 + c[None, :])
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + c[None, :], mask=row_ok[:, None], other=0.0)
    xf = x.to(tl.float32)
    norm = tl.sqrt(tl.sum(xf * xf, axis=1))
    y = tl.dot((xf * (1.0 / (norm + 1e-10))[:, None]).to(tl.float16), rp)
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    s = tl.inline_asm_elementwise(ASM, "=r,r", [y.to(tl.float16)], dtype=tl.float16, is_pure=True, pack=2)
    code_index = 2 * ((c // 8) % 4) + c % 2
    colw = (1 << (3 * (7 - code_index))).to(tl.float32)
    t = tl.reshape(s.to(tl.float32) * colw[None, :], (BLOCK_ROWS, 4, 4, 4, 2))
    word = (tl.sum(tl.sum(t, axis=4), axis=2) + 8388607.5).to(tl.int32)  # (B, 4[J], 4[q]) = group 4J + q
    word = tl.reshape(word, (BLOCK_ROWS, 16))
    groups = tl.arange(0, 16)
    out = packed_ptr + rows[:, None].to(tl.int64) * 48 + groups[None, :] * 3
    for t in tl.static_range(3):
        tl.store(out + t, ((word >> (8 * (2 - t))) & 0xFF).to(tl.uint8), mask=row_ok[:, None])


def tq3_permutation():
    """perm[c'] = the coordinate column c' of perm_half_tq3 holds."""
    c = torch.arange(128)
    J, jj, q, e = c // 32, (c // 8) % 4, (c // 2) % 4, c % 2
    return 8 * (4 * J + q) + 2 * jj + e


def main():
    torch.manual_seed(0)
    rows = 1 << 20
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    del big, big2
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    configs = ((64, 4), (128, 8), (64, 8), (32, 4))
    for spec in ("tq4", "tq2", "tq3"):
        q = kernelgen.quantizer(spec, 128)
        v = q._variant
        bits = q.bits
        b = v.boundaries.numpy()
        g = 8 // bits if bits != 3 else 8
        nbytes = rows * (128 * 2 + q.packed_dim + 4)
        for dt in ((torch.float16, torch.bfloat16) if bits == 4 else (torch.float16,)):
            x = torch.randn(rows, 128, device="cuda", dtype=dt)
            ref_codes = torch_path.compress_rows(x, q.rotation.cuda(), q.boundaries.cuda(), q.layout)[0]
            shipped_p, _ = q.compress(x)
            p, n = torch.empty_like(shipped_p), torch.empty(rows, device="cuda")

            def agree(packed):
                return (torch_path.unpack_codes(packed, q.layout) == torch_path.unpack_codes(ref_codes, q.layout)).double().mean().item()

            print(f"{spec} {str(dt)[6:]}: shipped compress agreement {agree(shipped_p):.5f}", flush=True)
            forms = []
            for blk, warps in configs:
                forms.append(("generated", blk, warps))
                forms.append(("half", blk, warps))
                if bits == 3:
                    forms.append(("permuted", blk, warps))
            for form, blk, warps in forms:
                if form == "generated":
                    kern = v.kernel("compress").fn
                    operand = v.compress_rotation("fp16").cuda()

                    def run():
                        kern[(rows // blk,)](x, operand, p, n, rows, rows, BLOCK_ROWS=blk, PRECISION="fp16",
                                             num_warps=warps, num_stages=1)
                elif form == "permuted":
                    asm = search_only_asm(b[(len(b) + 1) // 2:], bits)
                    rp = q.rotation.to("cuda", torch.float16)[tq3_permutation().cuda()].T.contiguous()

                    def run():
                        perm_half_tq3[(rows // blk,)](x, rp, p, n, rows, BLOCK_ROWS=blk, ASM=asm,
                                                      num_warps=warps, num_stages=1)
                elif bits == 3:
                    asm = search_only_asm(b[(len(b) + 1) // 2:], bits)
                    rt = q.rotation.to("cuda", torch.float16).T.contiguous()

                    def run():
                        coord_half_tq3[(rows // blk,)](x, rt, p, n, rows, BLOCK_ROWS=blk, ASM=asm,
                                                       num_warps=warps, num_stages=1)
                else:
                    asm, _ = group_asm(b[(len(b) + 1) // 2:], bits, g, offset=(2 ** bits - 1) / 2 * sum(2.0 ** (bits * j) for j in range(g)), adjust=False)
                    slots = v.slots("fp16").cuda()

                    def run():
                        slot_half[(rows // blk,)](x, slots, p, n, rows, BLOCK_ROWS=blk, G=g, SLOT=128 // g, ASM=asm,
                                                  RAW=(dt == torch.float16 and bits == 4), num_warps=warps, num_stages=1)
                try:
                    p.fill_(0xAA)
                    run()
                    a = agree(p)
                    same = (p == shipped_p).double().mean().item()
                    us = do_bench(run, warmup=10, rep=100) * 1e3
                    print(f"{spec} {str(dt)[6:]:9s} {form:9s} B{blk:<3d} w{warps}  {us:7.1f} us "
                          f"{nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  agreement {a:.5f}  bytes as shipped {same:.5f}",
                          flush=True)
                except Exception as e:
                    print(f"{spec} {form} B{blk} w{warps} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)


if __name__ == "__main__":
    main()
