"""Experiment (not part of the package): tq4 at D=128, fp16, 1M rows, on an H100; run after the signed
search and raw fp16 rows went into the template (generated kernels of that commit as the baseline).
Forms tried:
  compress_tma TMA 1: the rotation slots read by a bulk tensor copy (a host-side tensor descriptor)
    instead of tl.load + a store to shared memory; TMA 0: tl.load, otherwise the same kernel;
  dec_joined: decompress with the codes' centroids in coordinate order (two gathers from the 16-entry
    fp16 table a packed byte, tl.join, B x 128) and one product with the plain rotation (K = 128);
    TMA 1: the rotation by a bulk tensor copy; BLOCKS: row blocks a program (the rotation loaded once).
Checked against the generated kernels (same bytes / max abs difference) and timed (triton do_bench
median) against a device-to-device copy in the same run.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tma_joined_tq4_d128.py
"""
import torch
import triton
import triton.language as tl
from triton.testing import do_bench
from triton.tools.tensor_descriptor import TensorDescriptor

import kernelgen

_gen = kernelgen.quantizer("tq4", 128, device="cpu")._variant.module
_signed_code = _gen._signed_code


@triton.jit
def compress_tma(x_ptr, w_desc, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, TMA: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    if TMA:
        w0 = w_desc.load([0, 0])
        w1 = w_desc.load([128, 0])
    else:
        k = tl.arange(0, 128)[:, None]
        n = tl.arange(0, 64)[None, :]
        w0 = tl.load(w_desc + k * 64 + n)
        w1 = tl.load(w_desc + 128 * 64 + k * 64 + n)
    dims = tl.arange(0, 128)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], mask=row_ok[:, None], other=0.0)
    xf = x.to(tl.float32)
    norm = tl.sqrt(tl.sum(xf * xf, axis=1))
    inv = (1.0 / (norm + 1e-10))[:, None]
    y0 = tl.dot(x, w0) * inv
    y1 = tl.dot(x, w1) * inv
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    word = (_signed_code(y0) * 16.0 + _signed_code(y1) + 127.5).to(tl.int32)
    groups = tl.arange(0, 64)
    tl.store(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], (word & 0xFF).to(tl.uint8), mask=row_ok[:, None])


@triton.jit
def dec_joined(packed_ptr, norms_ptr, rot, cent_ptr, out_ptr, n_rows, BLOCK_ROWS: tl.constexpr, TMA: tl.constexpr,
               BLOCKS: tl.constexpr):
    """coordinate-order A from two 16-entry gathers per byte, one product with the rotation (128 x 128),
    BLOCKS row blocks a program (the rotation loaded once)."""
    k = tl.arange(0, 128)[None, :]
    if TMA:
        r = rot.load([0, 0])
    else:
        r = tl.load(rot + tl.arange(0, 128)[:, None] * 128 + k)
    groups = tl.arange(0, 64)
    for i in tl.static_range(BLOCKS):
        rows = (tl.program_id(0) * BLOCKS + i) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        norm = tl.load(norms_ptr + rows, mask=row_ok, other=0.0)[:, None]
        byte = tl.load(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], mask=row_ok[:, None], other=0).to(tl.int32)
        a = tl.join(tl.load(cent_ptr + (byte >> 4)), tl.load(cent_ptr + (byte & 15))).reshape(BLOCK_ROWS, 128)
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
    x = torch.randn(rows, 128, device="cuda", dtype=torch.float16)
    rot = q.rotation.to("cuda", torch.float32)
    slots = torch.stack([rot[j::2].T for j in range(2)]).half().contiguous()  # (2, 128, 64): [j, k, n]
    ref_p, ref_n = q.compress(x)

    def report(name, fn, check):
        try:
            fn()
            ok = check()
            us = do_bench(fn, warmup=10, rep=100) * 1e3
            print(f"{name:36s} {us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  {ok}", flush=True)
        except Exception as e:
            print(f"{name:36s} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)

    p, nr = torch.empty_like(ref_p), torch.empty_like(ref_n)
    report("generated compress", lambda: q.compress(x, out=(p, nr)), lambda: "")
    w_desc = TensorDescriptor.from_tensor(slots.view(256, 64), [128, 64])
    for blk, warps in ((64, 4), (64, 8), (128, 8)):
        for tma in (0, 1):
            p.fill_(0)
            report(f"compress_tma TMA{tma} B{blk} w{warps}",
                   lambda: compress_tma[(rows // blk,)](x, w_desc if tma else slots, p, nr.view(-1), rows,
                                                        BLOCK_ROWS=blk, TMA=tma, num_warps=warps),
                   lambda: f"same bytes {(p == ref_p).double().mean().item():.5f}")

    out = torch.empty(rows, 128, device="cuda", dtype=torch.float16)
    ref = q.decompress(ref_p, ref_n).float()
    cent16 = q.centroids.cuda().half()
    rot16 = rot.half().contiguous()
    r_desc = TensorDescriptor.from_tensor(rot16, [128, 128])

    def out_check():
        return f"max abs diff {(out.float() - ref).abs().max().item():.1e}"

    report("generated decompress", lambda: q.decompress(ref_p, ref_n, out=out), out_check)
    for blk, warps in ((64, 4), (128, 8)):
        for tma in (0, 1):
            for blocks in (1, 2, 4, 8):
                out.fill_(float("nan"))
                report(f"dec_joined TMA{tma} x{blocks} B{blk} w{warps}",
                       lambda: dec_joined[(rows // (blk * blocks),)](
                           ref_p, ref_n, r_desc if tma else rot16, cent16, out, rows, BLOCK_ROWS=blk, TMA=tma,
                           BLOCKS=blocks, num_warps=warps), out_check)


if __name__ == "__main__":
    main()
