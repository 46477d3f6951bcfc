"""Experiment (not part of the package): tq4 compress at D=128, 1M rows, on an H100, with the packed-fp16
search of half_search_d128.py, in its forms: fp16 rows normalized first or raw (products scaled after);
the level-0 thresholds by an exact select (nearest fp16 thresholds) or three multiply-adds (one
threshold moved one fp16 step); BLOCK_ROWS 64 / 128 at 4 and 8 warps; ROW_BLOCKS row blocks a program
with the slots loaded once. Generated kernel (B64 w4) in the same run for comparison.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/half_forms_tq4_d128.py
"""
import os
import sys

import torch
import triton
import triton.language as tl
from triton.testing import do_bench

import kernelgen
from kernelgen import torch_path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from half_search_asm import group_asm  # noqa: E402


@triton.jit
def tq4_half(x_ptr, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, ROW_BLOCKS: tl.constexpr,
             ASM: tl.constexpr, RAW: tl.constexpr):
    k = tl.arange(0, 128)[:, None]
    n = tl.arange(0, 64)[None, :]
    w = slots_ptr + k * 64 + n
    w0 = tl.load(w)
    w1 = tl.load(w + 128 * 64)
    dims = tl.arange(0, 128)
    for blk in range(ROW_BLOCKS):
        rows = (tl.program_id(0) * ROW_BLOCKS + blk) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], mask=row_ok[:, None], other=0.0)
        xf = x.to(tl.float32)
        norm = tl.sqrt(tl.sum(xf * xf, axis=1))
        inv = (1.0 / (norm + 1e-10))[:, None]
        if RAW:
            y0 = tl.dot(x, w0) * inv
            y1 = tl.dot(x, w1) * inv
        else:
            xh = (xf * inv).to(tl.float16)
            y0 = tl.dot(xh, w0)
            y1 = tl.dot(xh, w1)
        tl.store(norms_ptr + rows, norm, mask=row_ok)
        word = tl.inline_asm_elementwise(ASM, "=r,r,r", [y0.to(tl.float16), y1.to(tl.float16)],
                                         dtype=tl.int16, is_pure=True, pack=2)
        out = packed_ptr + rows[:, None].to(tl.int64) * 64 + n
        tl.store(out, word.to(tl.uint8), mask=row_ok[:, None])


def main():
    torch.manual_seed(0)
    rows = 1 << 20
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    del big, big2
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    q = kernelgen.quantizer("tq4", 128)
    v = q._variant
    b = v.boundaries.numpy()
    slots = v.slots("fp16").cuda()
    asms = {"select": group_asm(b[8:], 4, 2, 127.5, adjust=False)[0],
            "fma3": group_asm(b[8:], 4, 2, 127.5, adjust=True)[0]}
    nbytes = rows * (128 * 2 + 64 + 4)
    for dt in (torch.float16, torch.bfloat16):
        x = torch.randn(rows, 128, device="cuda", dtype=dt)
        ref_codes = torch_path.compress_rows(x, q.rotation.cuda(), q.boundaries.cuda(), q.layout)[0]
        shipped_p, _ = q.compress(x)
        p, n = torch.empty_like(shipped_p), torch.empty(rows, device="cuda")
        ref_n = torch.linalg.vector_norm(x.float(), dim=1)

        def agree(packed):
            return (torch_path.unpack_codes(packed, q.layout) == torch_path.unpack_codes(ref_codes, q.layout)).double().mean().item()

        gen = v.kernel("compress").fn
        runs = [("generated", 64, 4, 1, None, None)]
        for search in ("select", "fma3"):
            for raw in ((False, True) if dt == torch.float16 else (False,)):
                for blk, warps, rb in ((64, 4, 1), (64, 4, 2), (64, 4, 4), (128, 4, 1), (128, 4, 2), (64, 8, 1), (128, 8, 1)):
                    if raw and (blk, warps, rb) not in ((64, 4, 1), (64, 4, 2), (128, 4, 1)):
                        continue
                    if search == "select" and rb > 2:
                        continue
                    runs.append(("half", blk, warps, rb, search, raw))
        for form, blk, warps, rb, search, raw in runs:
            if form == "generated":
                def run():
                    gen[(rows // blk,)](x, slots, p, n, rows, rows, BLOCK_ROWS=blk, PRECISION="fp16",
                                        num_warps=warps, num_stages=1)
                label = "generated"
            else:
                def run():
                    tq4_half[(rows // (blk * rb),)](x, slots, p, n, rows, BLOCK_ROWS=blk, ROW_BLOCKS=rb,
                                                    ASM=asms[search], RAW=raw, num_warps=warps, num_stages=1)
                label = f"{search}{'-raw' if raw else ''}"
            try:
                p.fill_(0xAA)
                n.fill_(float("nan"))
                run()
                a = agree(p)
                norm_err = ((n - ref_n).abs() / ref_n).max().item()
                us = do_bench(run, warmup=10, rep=100) * 1e3
                print(f"{str(dt)[6:]:9s} {label:12s} B{blk:<3d} w{warps} rb{rb}  {us:7.1f} us "
                      f"{nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  agreement {a:.5f}  norm rel err {norm_err:.1e}",
                      flush=True)
            except Exception as e:
                print(f"{label} B{blk} w{warps} rb{rb} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)


if __name__ == "__main__":
    main()
