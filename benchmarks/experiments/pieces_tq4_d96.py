"""Experiment (not part of the package): tq4 at D=96 without the padded columns. The generated kernels
run D=96 on 128-wide tiles: compress searches 64 byte groups a row where 48 exist, decompress gathers
128 centroids and computes 128 output dims where 96 exist. Here the row is cut into power-of-two pieces
instead: compress takes each slot's 48 columns as pieces of 32 and 16 (two products a slot, each piece
searched and stored on its own; the input side stays 128 wide, masked); decompress takes coordinates
and output dims as pieces of 64 and 32 (four products). Same helpers as the generated module
(_byte_groups_fp16, _coordinate_centroids, _dot), its operands, row blocks as the registry gives them.
Timed as `kernelgen bench` times, 1M and 65,536 fp16 rows, against the shipped kernels at the configs of
the shipped H100 table; bytes / outputs compared with the shipped kernels'.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/pieces_tq4_d96.py
On a CPU (TRITON_INTERPRET=1), `check` runs only the comparisons, at 300 rows.
"""
import os
import sys

import torch
import triton
import triton.language as tl

import kernelgen
from kernelgen import bench, registry

q = kernelgen.quantizer("tq4", 96, device="cuda" if torch.cuda.is_available() else "cpu")
m = q._variant.module
byte_groups_fp16 = m._byte_groups_fp16
coordinate_centroids = m._coordinate_centroids
dot = m._dot
DIM_PAD, SLOT_PAD, HEAD_DIM, PACKED_DIM = m.DIM_PAD, m.SLOT_PAD, m.HEAD_DIM, m.PACKED_DIM
NORM_EPS = m.NORM_EPS


@triton.jit
def compress_pieces(x_ptr, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr,
                    INLINE_PTX: tl.constexpr, ROW_BLOCKS: tl.constexpr):
    k = tl.arange(0, DIM_PAD)[:, None]
    na = tl.arange(0, 32)[None, :]
    nb = 32 + tl.arange(0, 16)[None, :]
    w0a = tl.load(slots_ptr + k * SLOT_PAD + na)
    w1a = tl.load(slots_ptr + DIM_PAD * SLOT_PAD + k * SLOT_PAD + na)
    w0b = tl.load(slots_ptr + k * SLOT_PAD + nb)
    w1b = tl.load(slots_ptr + DIM_PAD * SLOT_PAD + k * SLOT_PAD + nb)
    dims = tl.arange(0, DIM_PAD)
    rows = tl.program_id(0) * ROW_BLOCKS * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * HEAD_DIM + dims[None, :],
                mask=(rows < n_rows)[:, None] & (dims < HEAD_DIM)[None, :], other=0.0)
    PREFETCH: tl.constexpr = ROW_BLOCKS > 1
    for i in range(ROW_BLOCKS):
        row_ok = rows < n_rows
        next_rows = rows + BLOCK_ROWS
        next_mask = ((next_rows < n_rows) & (i + 1 < ROW_BLOCKS))[:, None] & (dims < HEAD_DIM)[None, :]
        if PREFETCH:
            x_next = tl.load(x_ptr + next_rows[:, None].to(tl.int64) * HEAD_DIM + dims[None, :], mask=next_mask,
                             other=0.0)
        xf = x.to(tl.float32)
        norm = tl.sqrt(tl.sum(xf * xf, axis=1))
        xf = xf * (1.0 / (norm + NORM_EPS))[:, None]
        y0a = dot(xf, w0a, tl.zeros((BLOCK_ROWS, 32), dtype=tl.float32), "fp16")
        y1a = dot(xf, w1a, tl.zeros((BLOCK_ROWS, 32), dtype=tl.float32), "fp16")
        y0b = dot(xf, w0b, tl.zeros((BLOCK_ROWS, 16), dtype=tl.float32), "fp16")
        y1b = dot(xf, w1b, tl.zeros((BLOCK_ROWS, 16), dtype=tl.float32), "fp16")
        tl.store(norms_ptr + rows, norm, mask=row_ok)
        out = packed_ptr + rows[:, None].to(tl.int64) * PACKED_DIM
        tl.store(out + na, (byte_groups_fp16(y0a, y1a, INLINE_PTX) & 0xFF).to(tl.uint8), mask=row_ok[:, None])
        tl.store(out + nb, (byte_groups_fp16(y0b, y1b, INLINE_PTX) & 0xFF).to(tl.uint8), mask=row_ok[:, None])
        if PREFETCH:
            x = x_next
        rows = next_rows


@triton.jit
def decompress_pieces(packed_ptr, norms_ptr, rotation_ptr, centroids_ptr, out_ptr, n_rows,
                      BLOCK_ROWS: tl.constexpr, ROW_BLOCKS: tl.constexpr):
    ca = tl.arange(0, 64)[:, None]  # coordinates 0-63 and 64-95: rows of the rotation
    cb = 64 + tl.arange(0, 32)[:, None]
    ka = tl.arange(0, 64)[None, :]  # output dims 0-63 and 64-95
    kb = 64 + tl.arange(0, 32)[None, :]
    r_aa = tl.load(rotation_ptr + ca * DIM_PAD + ka)
    r_ba = tl.load(rotation_ptr + cb * DIM_PAD + ka)
    r_ab = tl.load(rotation_ptr + ca * DIM_PAD + kb)
    r_bb = tl.load(rotation_ptr + cb * DIM_PAD + kb)
    for i in tl.static_range(ROW_BLOCKS):
        rows = (tl.program_id(0) * ROW_BLOCKS + i) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        norm = tl.load(norms_ptr + rows, mask=row_ok, other=0.0)[:, None]
        out_rows = out_ptr + rows[:, None].to(tl.int64) * HEAD_DIM
        a = coordinate_centroids(packed_ptr, centroids_ptr, rows, row_ok, 0, 32)  # coordinates 0-63
        b = coordinate_centroids(packed_ptr, centroids_ptr, rows, row_ok, 32, 16)  # coordinates 64-95
        xa = dot(b, r_ba, dot(a, r_aa, tl.zeros((BLOCK_ROWS, 64), dtype=tl.float32), "fp16"), "fp16")
        xb = dot(b, r_bb, dot(a, r_ab, tl.zeros((BLOCK_ROWS, 32), dtype=tl.float32), "fp16"), "fp16")
        tl.store(out_rows + ka, (xa * norm).to(out_ptr.dtype.element_ty), mask=row_ok[:, None])
        tl.store(out_rows + kb, (xb * norm).to(out_ptr.dtype.element_ty), mask=row_ok[:, None])


def main(check_only=False):
    torch.manual_seed(0)
    device = q.device
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    copy_gbps = None if check_only else bench.copy_bandwidth_gbps()
    if copy_gbps:
        print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for rows in ((300,) if check_only else (1 << 20, 1 << 16)):
        bucket = registry.row_bucket(rows)
        nbytes = bench.op_bytes("compress", 96, q.packed_dim, rows, 2)
        sets = 1 if check_only else bench.input_sets(nbytes)
        xs = [torch.randn(rows, 96, device=device, dtype=torch.float16) for _ in range(sets)]
        packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device=device) for _ in range(sets)]
        norms = [torch.empty(rows, 1, device=device) for _ in range(sets)]
        outs = [torch.empty(rows, 96, device=device, dtype=torch.float16) for _ in range(sets)]
        for op in ("compress", "decompress"):
            io = [((xs[i],), (packed[i], norms[i])) if op == "compress" else ((packed[i], norms[i]), (outs[i],))
                  for i in range(sets)]
            args = [q._kernel_args(op, torch.float16, *io[i]) for i in range(sets)]
            kernel = q._kernels[op]
            for a in args:  # the shipped kernel's outputs (compress: also decompress's inputs)
                kernel.launch(rows, "float16", q.device, *a)
            shipped = (packed[0] if op == "compress" else outs[0]).clone()
            if not check_only:
                config = kernel.config(rows, "float16", q.device, args[0])
                meta = kernel.meta(config, "float16", bucket)
                us = bench.graph_time_us([lambda a=a: kernel.fn[kernel.grid(rows, meta)](*a, rows, bucket, **meta)
                                          for a in args])
                print(f"tq4 D96 {rows:>7} {op:10s} shipped B{config.block_rows} w{config.num_warps} "
                      f"rb{meta.get('ROW_BLOCKS', 1)}: {us:7.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%",
                      flush=True)
            blocks = registry.row_blocks(op, bucket, "float16")
            configs = [(64, 4), (32, 4)] if check_only else [(64, 4), (64, 8), (128, 4), (128, 8), (32, 4)]
            for block_rows, warps in configs:
                grid = (-(-rows // (block_rows * blocks)),)
                if op == "compress":
                    packed[0].fill_(0xA5)
                    calls = [lambda a=a: compress_pieces[grid](*a, rows, BLOCK_ROWS=block_rows,
                                                               INLINE_PTX=not interpreted, ROW_BLOCKS=blocks,
                                                               num_warps=warps, num_stages=1) for a in args]
                else:
                    outs[0].fill_(float("nan"))
                    calls = [lambda a=a: decompress_pieces[grid](*a, rows, BLOCK_ROWS=block_rows,
                                                                 ROW_BLOCKS=blocks, num_warps=warps, num_stages=1)
                             for a in args]
                try:
                    if check_only:
                        calls[0]()
                        us = float("nan")
                    else:
                        us = bench.graph_time_us(calls)
                except Exception as exc:  # out of resources
                    print(f"    pieces B{block_rows} w{warps} rb{blocks}: {type(exc).__name__}", flush=True)
                    continue
                if op == "compress":
                    check = f"bytes equal {torch.equal(packed[0], shipped)}"
                else:
                    check = f"max diff {(outs[0].float() - shipped.float()).abs().max().item():.2e}"
                frac = "" if check_only else f"{nbytes / us / 1e3 / copy_gbps * 100:5.1f}%"
                print(f"    pieces B{block_rows} w{warps} rb{blocks}: {us:7.1f} us {frac}  {check}", flush=True)


if __name__ == "__main__":
    main(check_only=sys.argv[1:] == ["check"])
