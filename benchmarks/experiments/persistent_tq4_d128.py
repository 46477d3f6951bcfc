"""Experiment (not part of the package): tq4 at D=128, fp16, 1M rows -- the generated one-pass kernels
against persistent variants that load the rotation slots once per program and loop over row blocks.
Prints one line per kernel/config: median µs (triton do_bench) and fraction of a d2d copy measured here.
Usage (CUDA machine, repo root): python3 benchmarks/experiments/persistent_tq4_d128.py
"""
import sys

import torch
import triton
import triton.language as tl
from triton.testing import do_bench

import kernelgen
from kernelgen import torch_path

D, G = 128, 64
mod = kernelgen.quantizer("tq4", D)._variant.module
_bucketize, _centroid = mod._bucketize, mod._centroid


@triton.jit
def compress_persistent(x_ptr, slots_ptr, packed_ptr, norms_ptr, n_rows, n_blocks,
                        BLOCK_ROWS: tl.constexpr, RAW: tl.constexpr, STAGES: tl.constexpr):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    k = tl.arange(0, 128)[:, None]
    n = tl.arange(0, 64)[None, :]
    w0 = tl.load(slots_ptr + k * 64 + n)
    w1 = tl.load(slots_ptr + 128 * 64 + k * 64 + n)
    dims = tl.arange(0, 128)
    groups = tl.arange(0, 64)
    for blk in tl.range(pid, n_blocks, nprog, num_stages=STAGES):
        rows = blk * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        xh = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], mask=row_ok[:, None], other=0.0)
        x = xh.to(tl.float32)
        norm = tl.sqrt(tl.sum(x * x, axis=1))
        inv = 1.0 / (norm + 1e-10)
        if RAW:  # fp16 data straight into the product, scale after
            y0 = tl.dot(xh, w0) * inv[:, None]
            y1 = tl.dot(xh, w1) * inv[:, None]
        else:
            xn = (x * inv[:, None]).to(tl.float16)
            y0 = tl.dot(xn, w0)
            y1 = tl.dot(xn, w1)
        tl.store(norms_ptr + rows, norm, mask=row_ok)
        word = (_bucketize(y0) << 4) | _bucketize(y1)
        tl.store(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], word.to(tl.uint8),
                 mask=row_ok[:, None])


@triton.jit
def decompress_persistent(packed_ptr, norms_ptr, slots_ptr, out_ptr, n_rows, n_blocks,
                          BLOCK_ROWS: tl.constexpr, STAGES: tl.constexpr):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    n = tl.arange(0, 64)[:, None]
    k = tl.arange(0, 128)[None, :]
    wt0 = tl.load(slots_ptr + k * 64 + n)  # (64 groups, 128 dims): slot 0 transposed
    wt1 = tl.load(slots_ptr + 128 * 64 + k * 64 + n)
    groups = tl.arange(0, 64)
    dims = tl.arange(0, 128)
    for blk in tl.range(pid, n_blocks, nprog, num_stages=STAGES):
        rows = blk * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        word = tl.load(packed_ptr + rows[:, None].to(tl.int64) * 64 + groups[None, :], mask=row_ok[:, None], other=0).to(tl.int32)
        norm = tl.load(norms_ptr + rows, mask=row_ok, other=0.0)
        v0 = _centroid((word >> 4) & 15).to(tl.float16)
        v1 = _centroid(word & 15).to(tl.float16)
        x = tl.dot(v0, wt0)
        x = tl.dot(v1, wt1, acc=x)
        tl.store(out_ptr + rows[:, None].to(tl.int64) * 128 + dims[None, :], (x * norm[:, None]).to(tl.float16),
                 mask=row_ok[:, None])


@triton.jit
def rotated_gather(packed_ptr, norms_ptr, out_ptr, n_rows, n_blocks, BLOCK_ROWS: tl.constexpr, STAGES: tl.constexpr):
    """Column c reads byte c // 2 (twice per byte, from L1) and picks its nibble: no join/reshape."""
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    cols = tl.arange(0, 128)
    shift = (1 - (cols % 2)) * 4
    for blk in tl.range(pid, n_blocks, nprog, num_stages=STAGES):
        rows = blk * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        byte = tl.load(packed_ptr + rows[:, None].to(tl.int64) * 64 + (cols // 2)[None, :], mask=row_ok[:, None], other=0).to(tl.int32)
        norm = tl.load(norms_ptr + rows, mask=row_ok, other=0.0)
        v = _centroid((byte >> shift[None, :]) & 15)
        tl.store(out_ptr + rows[:, None].to(tl.int64) * 128 + cols[None, :], (v * norm[:, None]).to(tl.float16),
                 mask=row_ok[:, None])


def main():
    torch.manual_seed(0)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    rows = 1 << 20
    q = kernelgen.quantizer("tq4", D)
    slots = q._slots[torch.float16]
    x = torch.randn(rows, D, device="cuda", dtype=torch.float16)
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    print(f"device {torch.cuda.get_device_name()} SMs {sms}; copy {copy_gbps:.0f} GB/s", flush=True)
    ref_p, ref_n = q.compress(x)
    comp_bytes = rows * (D * 2 + 64 + 4)
    dec_bytes = rows * (D * 2 + 64 + 4)

    def report(name, fn, nbytes):
        us = do_bench(fn, warmup=10, rep=100) * 1e3
        print(f"{name:60s} {us:9.1f} us  {nbytes / us / 1e3 / copy_gbps * 100:5.1f}% of copy", flush=True)
        return us

    kc = q._kernels["compress"]
    for c in kc.configs:
        cfg = kernelgen.tuning.LaunchConfig(c.kwargs["BLOCK_ROWS"], c.num_warps, c.num_stages)
        args = (x, slots, ref_p, ref_n)
        report(f"generated compress B{cfg.block_rows} w{cfg.num_warps}", lambda: kc.run(cfg, rows, 1 << 20, "float16", args), comp_bytes)
    p = torch.empty_like(ref_p); nr = torch.empty_like(ref_n)
    for raw in (0, 1):
        for B in (64, 128):
            for w in (4, 8):
                for st in (1, 2, 3):
                    for per_sm in (1, 2, 4):
                        nb = triton.cdiv(rows, B)
                        grid = (min(nb, sms * per_sm),)
                        p.fill_(0xAA)
                        try:
                            fn = lambda: compress_persistent[grid](x, slots, p, nr, rows, nb, BLOCK_ROWS=B, RAW=raw, STAGES=st, num_warps=w)
                            fn()
                            agree = (torch_path.unpack_codes(p, q.layout) == torch_path.unpack_codes(ref_p, q.layout)).float().mean().item()
                            report(f"persistent compress raw{raw} B{B} w{w} st{st} x{per_sm}/SM agree {agree:.5f}", fn, comp_bytes)
                        except Exception as e:  # noqa: BLE001
                            print(f"persistent compress raw{raw} B{B} w{w} st{st} x{per_sm}: {type(e).__name__} {str(e)[:200]}", flush=True)
    ref_y = q.decompress(ref_p, ref_n, dtype=torch.float16)
    kd = q._kernels["decompress"]
    y = torch.empty_like(ref_y)
    for c in kd.configs:
        cfg = kernelgen.tuning.LaunchConfig(c.kwargs["BLOCK_ROWS"], c.num_warps, c.num_stages)
        args = (ref_p, ref_n, slots, y)
        report(f"generated decompress B{cfg.block_rows} w{cfg.num_warps}", lambda: kd.run(cfg, rows, 1 << 20, "float16", args), dec_bytes)
    for B in (64, 128):
        for w in (4, 8):
            for st in (1, 2, 3):
                for per_sm in (1, 2, 4):
                    nb = triton.cdiv(rows, B)
                    grid = (min(nb, sms * per_sm),)
                    y.fill_(float("nan"))
                    try:
                        fn = lambda: decompress_persistent[grid](ref_p, ref_n, slots, y, rows, nb, BLOCK_ROWS=B, STAGES=st, num_warps=w)
                        fn()
                        err = (y.float() - ref_y.float()).abs().max().item()
                        report(f"persistent decompress B{B} w{w} st{st} x{per_sm}/SM err {err:.1e}", fn, dec_bytes)
                    except Exception as e:  # noqa: BLE001
                        print(f"persistent decompress B{B} w{w} st{st} x{per_sm}: {type(e).__name__} {str(e)[:200]}", flush=True)
    ref_r = q.decompress(ref_p, ref_n, dtype=torch.float16, rotated=True)
    kr = q._kernels["decompress_rotated"]
    for c in kr.configs:
        cfg = kernelgen.tuning.LaunchConfig(c.kwargs["BLOCK_ROWS"], c.num_warps, c.num_stages)
        args = (ref_p, ref_n, y)
        report(f"generated rotated B{cfg.block_rows} w{cfg.num_warps}", lambda: kr.run(cfg, rows, 1 << 20, "float16", args), dec_bytes)
    for B in (32, 64, 128):
        for w in (4, 8):
            for st in (1, 2, 3):
                for per_sm in (2, 4, 8):
                    nb = triton.cdiv(rows, B)
                    grid = (min(nb, sms * per_sm),)
                    y.fill_(float("nan"))
                    fn = lambda: rotated_gather[grid](ref_p, ref_n, y, rows, nb, BLOCK_ROWS=B, STAGES=st, num_warps=w)
                    fn()
                    ok = torch.equal(y, ref_r)
                    report(f"gather rotated B{B} w{w} st{st} x{per_sm}/SM equal {ok}", fn, dec_bytes)


if __name__ == "__main__":
    sys.exit(main())
