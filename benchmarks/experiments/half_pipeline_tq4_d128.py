"""Experiment (not part of the package): tq4 compress at D=128, 1M rows, fp16, on an H100: the packed-fp16
search (three multiply-adds a level-0 threshold, rows normalized first; half_forms_tq4_d128.py's best)
with ROW_BLOCKS row blocks a program and the next block's row loaded before the current block's work:
by Triton's loop pipelining (tl.range with num_stages) or by hand (a register prefetch); and a
persistent grid (a few programs an SM striding over the row blocks, pipelined).
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/half_pipeline_tq4_d128.py
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
def _block(x, w0, w1, rows, row_ok, packed_ptr, norms_ptr, ASM: tl.constexpr):
    n = tl.arange(0, 64)[None, :]
    xf = x.to(tl.float32)
    norm = tl.sqrt(tl.sum(xf * xf, axis=1))
    xh = (xf * (1.0 / (norm + 1e-10))[:, None]).to(tl.float16)
    y0 = tl.dot(xh, w0)
    y1 = tl.dot(xh, w1)
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    word = tl.inline_asm_elementwise(ASM, "=r,r,r", [y0.to(tl.float16), y1.to(tl.float16)],
                                     dtype=tl.int16, is_pure=True, pack=2)
    tl.store(packed_ptr + rows[:, None].to(tl.int64) * 64 + n, word.to(tl.uint8), mask=row_ok[:, None])


@triton.jit
def pipelined(x_ptr, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, ROW_BLOCKS: tl.constexpr,
              STAGES: tl.constexpr, ASM: tl.constexpr):
    k = tl.arange(0, 128)[:, None]
    n = tl.arange(0, 64)[None, :]
    w0 = tl.load(slots_ptr + k * 64 + n)
    w1 = tl.load(slots_ptr + 128 * 64 + k * 64 + n)
    dims = tl.arange(0, 128)
    for blk in tl.range(ROW_BLOCKS, num_stages=STAGES):
        rows = (tl.program_id(0) * ROW_BLOCKS + blk) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], mask=row_ok[:, None], other=0.0)
        _block(x, w0, w1, rows, row_ok, packed_ptr, norms_ptr, ASM)


@triton.jit
def prefetched(x_ptr, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, ROW_BLOCKS: tl.constexpr,
               ASM: tl.constexpr):
    k = tl.arange(0, 128)[:, None]
    n = tl.arange(0, 64)[None, :]
    dims = tl.arange(0, 128)
    rows = tl.program_id(0) * ROW_BLOCKS * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], mask=(rows < n_rows)[:, None], other=0.0)
    w0 = tl.load(slots_ptr + k * 64 + n)
    w1 = tl.load(slots_ptr + 128 * 64 + k * 64 + n)
    for blk in range(ROW_BLOCKS):
        nxt = rows + BLOCK_ROWS
        x_next = tl.load(x_ptr + nxt[:, None].to(tl.int64) * 128 + dims[None, :],
                         mask=((nxt < n_rows) & (blk + 1 < ROW_BLOCKS))[:, None], other=0.0)
        _block(x, w0, w1, rows, rows < n_rows, packed_ptr, norms_ptr, ASM)
        x = x_next
        rows = nxt


@triton.jit
def persistent(x_ptr, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, STAGES: tl.constexpr,
               ASM: tl.constexpr):
    k = tl.arange(0, 128)[:, None]
    n = tl.arange(0, 64)[None, :]
    w0 = tl.load(slots_ptr + k * 64 + n)
    w1 = tl.load(slots_ptr + 128 * 64 + k * 64 + n)
    dims = tl.arange(0, 128)
    tiles = tl.cdiv(n_rows, BLOCK_ROWS)
    for tile in tl.range(tl.program_id(0), tiles, tl.num_programs(0), num_stages=STAGES):
        rows = tile * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], mask=row_ok[:, None], other=0.0)
        _block(x, w0, w1, rows, row_ok, packed_ptr, norms_ptr, ASM)


def main():
    torch.manual_seed(0)
    rows = 1 << 20
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    del big, big2
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print(f"device {torch.cuda.get_device_name()}; {sms} SMs; copy {copy_gbps:.0f} GB/s", flush=True)
    q = kernelgen.quantizer("tq4", 128)
    v = q._variant
    b = v.boundaries.numpy()
    slots = v.slots("fp16").cuda()
    asm = group_asm(b[8:], 4, 2, 127.5, adjust=True)[0]
    nbytes = rows * (128 * 2 + 64 + 4)
    x = torch.randn(rows, 128, device="cuda", dtype=torch.float16)
    ref_codes = torch_path.compress_rows(x, q.rotation.cuda(), q.boundaries.cuda(), q.layout)[0]
    p, n = torch.empty(rows, 64, dtype=torch.uint8, device="cuda"), torch.empty(rows, device="cuda")
    ref_n = torch.linalg.vector_norm(x.float(), dim=1)
    runs = []
    for rb in (1, 2, 4, 8):
        for stages in (1, 2, 3):
            runs.append((f"pipelined rb{rb} s{stages}", rows // (64 * rb),
                         lambda rb=rb, stages=stages, g=None: dict(kernel=pipelined, ROW_BLOCKS=rb, STAGES=stages, num_stages=stages)))
    for rb in (2, 4, 8):
        runs.append((f"prefetched rb{rb}", rows // (64 * rb), lambda rb=rb: dict(kernel=prefetched, ROW_BLOCKS=rb, num_stages=1)))
    for per_sm in (3, 4, 6, 8):
        for stages in (1, 2, 3):
            runs.append((f"persistent {per_sm}/SM s{stages}", sms * per_sm,
                         lambda stages=stages: dict(kernel=persistent, STAGES=stages, num_stages=stages)))
    for label, grid, make in runs:
        args = make()
        kernel = args.pop("kernel")

        def run():
            kernel[(grid,)](x, slots, p, n, rows, BLOCK_ROWS=64, ASM=asm, num_warps=4, **args)
        try:
            p.fill_(0xAA)
            n.fill_(float("nan"))
            run()
            a = (torch_path.unpack_codes(p, q.layout) == torch_path.unpack_codes(ref_codes, q.layout)).double().mean().item()
            norm_err = ((n - ref_n).abs() / ref_n).max().item()
            us = do_bench(run, warmup=10, rep=100) * 1e3
            print(f"{label:24s} {us:7.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  agreement {a:.5f}  "
                  f"norm rel err {norm_err:.1e}", flush=True)
        except Exception as e:
            print(f"{label} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)


if __name__ == "__main__":
    main()
