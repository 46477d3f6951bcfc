"""Experiment (not part of the package): tq3 decompress (D=64, 96, 128, fp16 products) with its centroids
made by pair position instead of by byte group.

Why: the shipped kernel gathers one int32 word of two fp16 centroids a pair of codes from the pair table
(CENTROID_PAIRS), four a 3-byte group, then joins the eight centroids of each group into coordinate
order (three nested tl.join and a reshape). Triton cannot carry the product's operand layout back through
that join: its TTGIR stores the tile to shared memory in a column-major layout, one fp16 a store (304 STS
in the D=128 kernel at four row blocks, against 80 for tq4, whose one join it carries back), and reads it
back with ldmatrix. Here each of the row's 4 x groups pairs takes its table index from the row's bytes
directly (pair p is bits [6p, 6p + 6): two byte loads and a shift), so the centroids come as one gather a
pair and a single join of the low and high halves, as tq4's do; the TTGIR then has no shared-memory tile
for the operand (CPU compile for sm_90: STS 80, shared memory 40 KB against 48 KB).

The patched module is the checkout's generated one with the decompress product's centroid call replaced
(fp16 products only, as timed here); launched through the registry's metas at the shipped config and at
B64/B128 x w4/w8; 1M and 65,536 fp16 rows, three rounds, timed as `kernelgen bench` times; outputs
against the shipped kernel's.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tq3_pair_positions.py
"""
import importlib.util
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

import kernelgen
from kernelgen import bench, registry, tuning

PAIR_POSITIONS = '''

@triton.jit
def _pair_position_centroids(packed_ptr, centroids_ptr, rows, row_ok, first_group, WIDTH: tl.constexpr):
    """The fp16 centroids of byte groups [first_group, first_group + WIDTH) of each row in coordinate
    order, (rows, 8 * WIDTH), by pair position: pair p (codes 2p and 2p + 1) is bits [6p, 6p + 6) of the
    row's MSB-first bit stream, the pair table's index; one gather a pair, its low half code 2p."""
    p = first_group * 4 + tl.arange(0, WIDTH * 4)
    bit = 6 * p
    byte = bit >> 3
    src = packed_ptr + rows[:, None].to(tl.int64) * PACKED_DIM + byte[None, :]
    b0 = tl.load(src, mask=row_ok[:, None], other=0).to(tl.int32)
    b1 = tl.load(src + 1, mask=row_ok[:, None] & (byte + 1 < PACKED_DIM)[None, :], other=0).to(tl.int32)
    index = (((b0 << 8) | b1) >> (10 - (bit & 7))[None, :]) & 63
    pair = tl.load(centroids_ptr + index)
    return tl.join(_half(pair, False), _half(pair, True)).reshape(rows.shape[0], WIDTH * 8)
'''
CALL = re.compile(r'_coordinate_centroids\(packed_ptr, centroids_ptr, rows, row_ok, ([^,]+), ([^,]+), (?:True|False), '
                  r'PRECISION == "fp16"\)')


def patched_module(module, folder: Path):
    """The generated module with its decompress product taking the centroids by pair position."""
    source = Path(module.__file__).read_text()
    source, calls = CALL.subn(r"_pair_position_centroids(packed_ptr, centroids_ptr, rows, row_ok, \1, \2)", source)
    assert calls, "no decompress centroid call found"
    anchor = "\n\n@triton.autotune(configs=CONFIGS, key=TUNE_KEY)\n@triton.jit(do_not_specialize=[\"n_rows\", \"ROW_BUCKET\"])\ndef tq3"
    at = source.index(anchor, source.index("def _half("))
    source = source[:at] + PAIR_POSITIONS + source[at:]
    path = folder / (Path(module.__file__).stem + "_pairs.py")
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    patched = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(patched)
    return patched


def main(head_dims):
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    start = time.time()
    folder = Path(tempfile.mkdtemp())
    for head_dim in head_dims:
        q = kernelgen.quantizer("tq3", head_dim, device="cuda")
        kernel = q._kernels["decompress"]
        patched = getattr(patched_module(kernel.variant.module, folder), f"tq3_d{head_dim}_decompress").fn
        for rows in (1 << 20, 1 << 16):
            bucket = registry.row_bucket(rows)
            nbytes = bench.op_bytes("decompress", head_dim, q.packed_dim, rows, 2)
            sets = bench.input_sets(nbytes)
            packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
            norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
            outs = [torch.empty(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            for i in range(sets):
                q.compress(torch.randn(rows, head_dim, device="cuda", dtype=torch.float16), out=(packed[i], norms[i]))
            args = [q._kernel_args("decompress", torch.float16, (packed[i], norms[i]), (outs[i],)) for i in range(sets)]
            shipped = kernel.config(rows, "float16", q.device, args[0])
            reference = q.decompress(packed[0], norms[0])
            calls = {f"shipped B{shipped.block_rows} w{shipped.num_warps}":
                     [lambda a=a: kernel.run(shipped, rows, bucket, "float16", a) for a in args]}
            for block_rows, warps in ((shipped.block_rows, shipped.num_warps), (64, 4), (64, 8), (128, 8)):
                meta = kernel.meta(tuning.LaunchConfig(block_rows, warps, 1), "float16", bucket)
                label = f"pairs B{block_rows} w{warps}"
                if label in calls:
                    continue
                grid = kernel.grid(rows, meta)
                outs[0].fill_(float("nan"))
                patched[grid](*args[0], rows, bucket, **meta)
                torch.cuda.synchronize()
                print(f"tq3 D{head_dim} {rows} rows {label}: output equal to shipped {torch.equal(outs[0], reference)}",
                      flush=True)
                calls[label] = [lambda a=a, grid=grid, meta=meta: patched[grid](*a, rows, bucket, **meta) for a in args]
            times = {label: [] for label in calls}
            for _ in range(3):
                for label, call in calls.items():
                    times[label].append(bench.graph_time_us(call, rounds=1))
            for label, ts in times.items():
                print(f"tq3 D{head_dim} {rows:>8} decompress {label:16s} " + " / ".join(f"{t:6.1f}" for t in ts)
                      + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)  [{time.time() - start:.0f} s]",
                      flush=True)


if __name__ == "__main__":
    main([int(d) for d in sys.argv[1:]] or [128, 96, 64])
