"""Stage 4: find generated variants, verify them, load their kernels, launch them.

Search order for a spec name (the first folder that has it wins):
  1. folders added with `add_kernel_path`, the latest first;
  2. the folders in $KERNELGEN_PATH (os.pathsep-separated), in order;
  3. the generated/ folder shipped with kernelgen.
Each folder holds one sub-folder per spec with a manifest.json (see manifest.py).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from . import tuning
from .layout import PackLayout, next_pow2
from .manifest import MANIFEST_NAME, Manifest, VariantEntry, constants_digest, sha256

ENV_PATH = "KERNELGEN_PATH"
MAX_ROW_BUCKET = 1 << 20
# Decompress kernels whose rows are several output steps (head dims over 128) run one step a program,
# the steps side by side on grid axis 1, up to this row bucket; above it a program takes a whole row (one
# product with fp16 operands, a loop over the steps with fp32 ones).
# Measured on an H100 (benchmarks/experiments/column_programs_d256.py): at 8 rows the split took D=256
# from 7.7 to 4.6 µs; at 1M rows it was slower for 2 and 3 bits (up to 44%). At 2,048 rows the split beat
# the one-product form (5.6 against 6.6 µs, tq4 D=256: benchmarks/experiments/wide_rows_one_step.py).
COLUMN_SPLIT_MAX_ROWS = 2048
# Compress and decompress kernels take several row blocks a program, one after the other with the
# rotation loaded once, from these row buckets on:
# op -> ((first bucket, blocks), ...), the largest first; smaller buckets take one block a program.
# The figures below are D=128; rows padded past 128 (D=192/256) take WIDE_COMPRESS_ROW_BLOCKS compress
# blocks at the largest bucket (below).
# Decompress, measured on an H100, D=128, fp16, at the shipped configs of the day
# (benchmarks/experiments/row_blocks_sizes.py): 65,536 rows, 2 blocks 15.2 µs against 16.5 with one (tq4),
# 15.6 against 16.0 (tq2), 18.3 against 18.1 (tq3), 4 blocks slower for all three; 262,144 rows, 4 blocks
# 41.8 against 45.8 (tq4), 52.1 against 53.6 (tq3), 43.1 against 46.2 (tq2); 1,048,576 rows, 4 blocks
# 145.0 against 165.7 (tq4).
# Compress (16-bit rows read a block ahead), measured on an H100, fp16, B64 w4 (B32 w4 for tq3)
# (benchmarks/experiments/compress_row_blocks.py): 65,536 rows, 4 blocks 17.1 µs against 18.9 with one
# (tq4 D=128), 15.3 against 16.4 (tq2), 22.9 against 27.1 (tq3), 15.8 against 17.7 (tq4 D=96), 11.3
# against 11.1 (tq4 D=64); 262,144 rows, 4 blocks 43.7 against 48.4 (tq4); 1,048,576 rows, 8 blocks
# 141.3 / 4 blocks 143.8 against 157.8 (tq4), 125.4 / 127.4 against 142.1 (tq2), 250.7 / 254.8 against
# 307.7 (tq3), 141.4 / 142.8 against 153.1 (tq4 D=96), 73.0 / 70.2 against 73.7 (tq4 D=64).
# Buckets 2^17 and 2^19 were not measured.
ROW_BLOCKS_FROM_BUCKET = {
    "compress": ((1 << 20, 8), (1 << 16, 4)),
    "decompress": ((1 << 18, 4), (1 << 16, 2)),
}
# Compress of rows padded past 128 (D=192, 256) at the largest row bucket: (rows padded past, blocks).
# Measured on an H100, 1M fp16 rows, shipped configs (benchmarks/experiments/row_blocks_dims.py, two rounds
# each), 16 blocks against 8: tq4 D=256 476.5 / 477.6 against 496.4 / 496.8 µs, tq3 576.8 / 575.7 against
# 595.3 / 594.4, tq2 428.8 / 429.8 against 436.2 / 437.8 (and tq4 D=192/256 2-5% faster in
# benchmarks/experiments/wide_rows_one_step.py). At D<=128 16 blocks were within 2% of 8, either way.
WIDE_COMPRESS_ROW_BLOCKS = (128, 16)
# Compress of rows padded past 128 with fp16 operands (the whole rotation in shared memory, 128 KB at 256)
# in the slot form (not tq3 at D=256, which takes one coordinate-order product: render._coordinate_compress)
# can give each row block's slot columns to SLOT_SPLIT neighbouring programs, each loading that share of
# the rotation and reading the rows itself (all but the first from L2).
# SLOT_SPLIT_RULE: (largest row bucket, bits -> programs; other bit widths 1).
# Measured on an H100, fp16, at the shipped configs (benchmarks/experiments/column_shares_wide.py; up to
# 65,536 rows the lower of two timings): 8 rows, 2 programs against 1, tq4 D=256 3.4 against 4.4 µs, D=192
# 3.4 against 4.4; tq3 D=256 5.2 against 5.8, D=192 4.6 against 6.0; 2,048 rows tq4 D=256 4.6 against 5.4,
# tq3 D=192 6.8 against 7.3. tq2 was slower with 2 (D=192 8 rows 5.5 against 4.2, 2,048 rows 6.9 against
# 5.0) and with 4 (2,048 rows 7.9-8.1); at 65,536 rows all were slower (tq4 D=256 52.2 against 37.3), and
# at 1M rows too (tq4 D=256 540.8 at best against 479.3).
SLOT_SPLIT_RULE = (COLUMN_SPLIT_MAX_ROWS, {4: 2, 3: 2})
# Compress of 16-bit rows that fit one product step (tq4, tq3 and tq2 up to D=128), and of 16-bit rows
# padded to 256 (below), from this row bucket on and on GPUs with TMA: each block's rows read by TMA in a
# persistent loop that Triton pipelines (TMA_STAGES deep), a few programs an SM: (first bucket, stages,
# (rows padded to, columns of the module's TMA box) -> (programs an SM where the product takes the fp16
# rows as TMA leaves them, see raw_product; where the rows are normalized first); a width missing from
# the table keeps the pointer loads). The figures for one box of 64, 128 and 256 columns come first below.
# Measured on an H100, 1M fp16 rows, B64 w4, three rounds each timing the shipped kernel first
# (benchmarks/experiments/tma_persistent_dims.py): tq4 D=128 137.1-141.6 µs (2 an SM) against 144.5-146.0;
# D=96 137.8-143.1 against 141.2-145.0; D=64 65.8-66.3 (4 an SM, 3 stages) against 68.6-68.9; tq2 D=128
# 122.4-123.6 against 124.3-126.5; tq2 D=64 59.7-61.1 against 63.2-63.7. 3 programs an SM at D=128/96:
# 180-187 µs. D=80 and D=112 (rows padded to 128, as D=96) take the D=128 figures; an earlier form of this
# loop read them 8-10% faster than the pointer loads (experiments/h100-tma_registry_check.txt). With the
# tables tuned for it, `kernelgen bench` put tq4 D=128 at 139.5-140.7 µs (80.3-81.1% of copy), h100-tma.md.
# tq3 (coordinate-order compress), B64 w4, three rounds each (experiments/h100-tma_registry_check-tq3.txt):
# D=128 165.3-165.5 against 171.6-173.2, D=96 158.3 against 166.9-167.4, D=64 74.0-74.4 against 78.9-79.3.
# Stages {2, 3, 4} x programs an SM {1, 2, 3} x B32 w4 / B64 w4 / B128 w8 (experiments/tma_sweep.py, tq3
# and tq4 at D=128 and 96, rows normalized before the product): 3 stages, 2 an SM, B64 w4 fastest for each
# (tq4 D=128 136.4-136.8 µs; 3 an SM 179.7-180.1: at 82 KB of shared memory a program, an SM holds 2).
# With the product on the raw fp16 rows (raw_product_compress.py: 12-15 KB less shared memory a program), 3
# an SM at D=128/96: tq4 D=128 130.3-133.1 against 134.6-140.2 µs at 2, D=96 123.8-124.0 against
# 126.0-127.3, tq2 D=128 113.6-114.5 against 119.6-127.6; tq3 (lane groups) D=96 119.2-120.5 against
# 126.0-127.6, D=128 123.5-127.0 against 124.1-127.2. At D=64, 6 an SM: tq4 66.8-67.1 against 65.5-65.9 at 4.
# Rows padded to 256 (D=192, 256; the modules that have the form, render._tma_rows) take the TMA loop one
# program an SM (128 KB of slots and 3 stages of 64 rows: 224 KB of shared memory; normalized bf16 rows go
# into the product from registers, so that form fits too).
# Measured on an H100, 1M fp16 rows, three rounds each (experiments/tma_compress_d256.py, against the
# shipped 16 row blocks a program, whose programs each load the slots again): tq4 D=256 B64 w8
# 364.7-370.8 µs against 568.9-582.9, tq2 376.3-376.4 against 491.2-526.8; B32 and 2 stages slower (B128
# does not fit); the shipped modules by TMA against their own pointer loads (experiments/tma_wide_check.py):
# tq4 D=256 361.2-362.4 against 476.7-488.3, tq2 365.0-368.0 against 423.0-458.4. With the tables tuned
# for it, `kernelgen bench` put tq4 D=256 at 366.6 µs (61.2% of copy) and D=192 (in pieces) at 310.9
# (benchmarks/h100-wide-tma.md). bf16 rows (normalized first), 1M rows, three rounds each
# (experiments/bf16_wide_tma.py, against their shipped pointer loads at B64 w8): tq4 D=256 406.3-409.9 µs
# (B64 w8/w4) against 486.0-492.6, tq2 D=256 342.5-345.6 against 458.5-464.2; D=192 at B128 w8 tq4
# 311.0-313.4 against 455.6-461.1, tq2 241.9-246.8 against 398.7-414.4, tq3 397.6-407.9 against 525.8-534.6.
# Rows that a module reads in TMA_K pieces (render._tma_k) at a padding of 128: normalized first (bf16),
# they reach fp16 products a piece at a time, through a piece-sized buffer of shared memory (at D=128
# 73,744 bytes a program against 81,936 in one box), so 3 programs fit an SM; fp32 operands, whose buffers
# and rotation take twice the bytes, keep the one-box figures. Measured on an H100, 1M rows, B64 w4,
# three rounds: D=128 in boxes of 64 (benchmarks/experiments/bf16_pieces_d128.py), bf16 at 3 an SM, tq4
# 137.5-138.0 µs against 147.6-148.0 at 2, tq2 117.3-117.8 against 126.7-130.2, tq3 132.2-135.2 against
# 134.0-139.2. D=96 in boxes of 32 (53,264 bytes a program; experiments/pieces_programs_d96.py): fp16 at 4
# an SM, tq4 111.0-111.5 against 113.6-115.1 at 3, tq2 94.6-99.5 against 97.4-98.9, tq3 111.1-111.9
# against 112.6-112.8; bf16 at 3, tq4 118.9-122.2 (4: 114.7-118.0; 2: 129.8-131.2, -d96.txt), tq2
# 98.4-99.6 (4: 94.9-100.1; 2: 115.1-115.6), tq3 117.5-118.2 (4: 125.1-127.9, its 140 registers a thread
# let 3 programs fit; 2: 126.6-129.5).
TMA_COMPRESS = (MAX_ROW_BUCKET, 3, {(64, 64): (4, 4), (128, 128): (3, 2), (128, 64): (3, 3), (128, 32): (4, 3),
                                    (256, 256): (1, 1), (256, 64): (1, 1)})
# Decompress of 16-bit output from this row bucket on, on NVIDIA GPUs of compute capability 9 (Hopper), runs
# the module's warp-specialized Gluon kernel where it has one (WS_DECOMPRESS: every shipped spec at D=128,
# 192 and 256, and at D=96 from WS_DECOMPRESS_PADDED_128_FROM; render._ws_decompress) instead of its Triton
# kernel; see runs_ws and BoundKernel.launch_ws.
# Measured on an H100 through the quantizer, both kernels as shipped (the Triton one at its tuned config),
# fp16 and bf16 output (benchmarks/experiments/ws_decompress_sizes.py): at 65,536 rows the Gluon kernel was
# faster for every module and dtype (tq4 D=256 27.3 against 44.0 µs, tq3 D=256 31.6 against 47.3, tq2
# D=192 22.1 against 37.4); at 16,384 rows slower in 3 of 12 cases, at 2,048 in 7 of 12. At 1M rows tq4
# D=256 266.5 µs (84.3% of copy) against 551.2, tq3 D=256 325.2 against 631.3. Measured again with tq3's
# words (ws_decompress_sizes.py, h100-ws_decompress_sizes-32768.txt): at 32,768 rows faster in all 12 (tq4
# D=256 18.4 against 24.3 µs), at 16,384 slower in 3 (tq2 D=256 19.5 against 14.1). The bucket of 32,768
# holds 16,385 rows on, so the rule stays at the next bucket.
WS_DECOMPRESS_FROM = 1 << 16
# At D=128 (experiments/h100-ws_decompress_sizes-d128.txt, the D=128 tables tuned for the change): at 65,536
# rows faster in 5 of 6 (tq2 fp16 12.9 against 15.1 µs; tq4 bf16 slower, 17.4 against 15.0), at 1M rows in
# all 6 (tq4 fp16 133.7 against 146.2, tq3 151.4 against 162.1, tq2 122.3 against 147.1). Rows padded to 128
# (D=96: render._ws_decompress) from the largest bucket only: tq4 at 1M rows faster (fp16 107.1 against
# 124.5 µs, bf16 106.6 against 124.8), at 65,536 slower (16.6 against 12.9, bf16 17.1 against 16.5;
# experiments/h100-ws_decompress_sizes-d96.txt). With the partitions of render.WS_DECOMPRESS_PARTS
# (experiments/h100-ws_decompress_parts.txt, fp16): at 1M rows faster for all three (tq4 101.2-101.9 against
# 123.5-124.2, tq3 116.4-116.9 against 128.3-129.3, tq2 95.3-96.8 against 119.5-122.4), at 65,536 no
# faster (tq4 17.5-19.7 against 17.4-17.6, tq3 17.7-18.5 against 17.5-18.3, tq2 17.9-18.4 against
# 18.0-18.6). tq3 with its pair gathers, on another machine (h100-ws_decompress_parts-pairs.txt): 11.1-11.9
# against 12.8-13.0 at 65,536 rows, where tq4 took 12.7-15.4 against 12.5-13.8; D=96 keeps one threshold,
# the one measured for all three (262,144 rows not measured).
WS_DECOMPRESS_PADDED_128_FROM = MAX_ROW_BUCKET
# Compress of 16-bit rows from this row bucket on, on the same GPUs, runs the module's warp-specialized Gluon
# kernel where it has one (WS_COMPRESS: every shipped spec at D=256, render._ws_compress) instead of its
# Triton kernel. Measured on an H100 through the quantizer, the Triton kernel at its tuned config, three
# rounds (benchmarks/experiments/ws_compress_sizes.py): at 32,768 rows the Gluon kernel was faster for tq4
# and tq2 fp16 (tq4 18.2-18.7 µs against 27.2-27.8, tq2 17.3-17.5 against 21.5-22.0), tq3 fp16 (16.8-18.1
# against 28.0-30.7, -tq3.txt) and all three with bf16 rows (tq4 18.4-18.7 against 27.6-27.9,
# -bf16-once.txt); at 16,384 about even (tq4 fp16 15.8-17.2 against 16.7-17.6, tq3 bf16 15.4-15.7 against
# 15.7-15.8); at 2,048 tq4 slower (16.7-17.0 against 16.1-16.5). At 1M rows tq4 291.1-292.6 µs (78.1% of
# copy) against 343.7-345.0, tq2 252.4-253.0 (81.1%) against 297.2-300.0. The bucket of 32,768 holds
# 16,385 rows on.
WS_COMPRESS_FROM = 1 << 15
OPS = ("compress", "decompress", "decompress_rotated")

_added_paths: list[Path] = []
_lock = threading.Lock()


class VariantNotFound(LookupError):
    """No generated kernels for the asked spec name or head dim."""


class CorruptVariant(RuntimeError):
    """A generated file does not match its manifest's hash."""


def shipped_dir() -> Path:
    """generated/ installed inside the package, or generated/ of a source checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "generated"
    return installed if installed.is_dir() else here.parent / "generated"


def add_kernel_path(folder: str | os.PathLike) -> None:
    """Search `folder` (output of `kernelgen build --out folder`) before every other place."""
    path = Path(folder).resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"kernel path {str(path)!r} is not a folder")
    with _lock:
        if path in _added_paths:
            _added_paths.remove(path)
        _added_paths.append(path)


def kernel_paths() -> list[Path]:
    """The folders searched, in order."""
    env = [Path(p).resolve() for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p]
    return [*reversed(_added_paths), *env, shipped_dir()]


def _manifests() -> dict[str, tuple[Path, Manifest]]:
    found: dict[str, tuple[Path, Manifest]] = {}
    for root in kernel_paths():
        if not root.is_dir():
            continue
        for manifest_path in sorted(root.glob(f"*/{MANIFEST_NAME}")):
            manifest = Manifest.read(manifest_path.parent)
            found.setdefault(manifest.spec_name, (manifest_path.parent, manifest))
    return found


def available() -> dict[str, tuple[int, ...]]:
    """Spec name -> head dims, over every searched folder."""
    return {name: tuple(v.head_dim for v in m.variants) for name, (_, m) in sorted(_manifests().items())}


def row_blocks(op: str, bucket: int, dtype: str, dim_pad: int = 0) -> int:
    """Row blocks a program of op's kernel takes at this row bucket and dtype, for rows padded to dim_pad
    (see ROW_BLOCKS_FROM_BUCKET and WIDE_COMPRESS_ROW_BLOCKS). Compress of fp32 rows takes one: with
    several, its best config (128 rows, 8 warps) needs more shared memory than an H100 has (256 KB), and
    the rest ran slower than it (benchmarks/experiments/fp32_compress_before_after.py: 1M rows, 755.6 µs
    against 905.7 µs at best with 8 blocks)."""
    if op == "compress" and dtype == "float32":
        return 1
    if op == "compress" and dim_pad > WIDE_COMPRESS_ROW_BLOCKS[0] and bucket >= MAX_ROW_BUCKET:
        return WIDE_COMPRESS_ROW_BLOCKS[1]
    return next((blocks for first, blocks in ROW_BLOCKS_FROM_BUCKET[op] if bucket >= first), 1)


def slot_split(bucket: int, bits: int, precision: str) -> int:
    """Programs that share each row block of a wide compress kernel at this row bucket (SLOT_SPLIT_RULE);
    1 where the products take fp32 operands (two passes a block, no rotation in shared memory)."""
    max_bucket, programs = SLOT_SPLIT_RULE
    return programs.get(bits, 1) if precision == "fp16" and bucket <= max_bucket else 1


def tma_stages(bucket: int, dtype: str, head_dim: int, dim_pad: int, tma: bool) -> int:
    """Pipeline stages of a TMA compress at this bucket (TMA_COMPRESS), 0 for the pointer loads: 16-bit
    rows padded to a width the rule lists (in one box: every form's), from its first bucket, where `tma`
    (the GPU has TMA). A tensor descriptor needs rows that start on 16 bytes: head dims that are not a
    multiple of 8 keep the pointer loads (the quantizer hands the kernels 16-byte aligned tensors). TMA
    coordinates are 32-bit, which bounds the rows at 2^31, past any GPU's memory (256 GiB of fp16 rows at
    D=64)."""
    first, stages, programs = TMA_COMPRESS
    return (stages if tma and dtype != "float32" and bucket >= first
            and (dim_pad, dim_pad) in programs and head_dim % 8 == 0 else 0)


def tma_programs(dim_pad: int, box: int, raw: bool, precision: str) -> int:
    """TMA_COMPRESS's programs an SM for rows padded to dim_pad read in boxes of `box` columns, that go
    into the product as they are (raw: see raw_product) or normalized first; rows normalized first into
    fp32 operands take the one-box figure."""
    raw_programs, normalized = TMA_COMPRESS[2][dim_pad, box if raw or precision == "fp16" else dim_pad]
    return raw_programs if raw else normalized


def raw_product(dtype: str, precision: str) -> bool:
    """Whether a TMA compress takes the rows into its product as they are (the kernel's RAW_PRODUCT, which
    meta passes from here): fp16 rows with fp16 operands, the rows already exact operands. bf16 rows are
    normalized first (fp16 may not hold them: past 65504, or their small values), as are rows with fp32
    operands."""
    return dtype == "float16" and precision == "fp16"


def runs_tma(interpreted: bool) -> bool:
    """Whether compress may read rows by TMA: an NVIDIA GPU of compute capability 9 or more (Hopper on),
    not under the interpreter."""
    return runs_ptx(interpreted) and torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 9


# The Triton version whose Gluon API the modules' warp-specialized kernels are written and measured against
# (Gluon is experimental: its API moves between versions); with another, the Triton kernels run.
GLUON_TRITON = (3, 6)


def runs_ws(interpreted: bool) -> bool:
    """Whether compress and decompress may run a module's warp-specialized Gluon kernels (WS_COMPRESS_FROM,
    WS_DECOMPRESS_FROM): an NVIDIA GPU of compute capability 9 (their warpgroup products are Hopper's), not
    under the interpreter, with Triton GLUON_TRITON."""
    return (runs_ptx(interpreted) and _triton_minor() == GLUON_TRITON and torch.cuda.is_available()
            and torch.cuda.get_device_capability()[0] == 9)


def ws_from(op: str, layout: PackLayout | None = None) -> int:
    """The first row bucket at which op runs the module's warp-specialized kernel (WS_COMPRESS_FROM,
    WS_DECOMPRESS_FROM; WS_DECOMPRESS_PADDED_128_FROM for decompress of a head dim padded to 128)."""
    if op == "compress":
        return WS_COMPRESS_FROM
    padded = layout is not None and layout.dim_pad == 128 and layout.head_dim != 128
    return WS_DECOMPRESS_PADDED_128_FROM if padded else WS_DECOMPRESS_FROM


def takes_ws(op: str, bucket: int, dtype: str, precision: str, ws: bool, layout: PackLayout | None = None) -> bool:
    """Whether op at this row bucket, of `dtype` rows (compress) or output (decompress) with `precision`
    products, runs the warp-specialized kernel, where the GPU can (`ws`: runs_ws) and the module (of this
    layout) has one: fp16 products, from ws_from(op, layout) rows on; 16-bit rows (compress) or output
    (decompress)."""
    return ws and precision == "fp16" and bucket >= ws_from(op, layout) and dtype in ("float16", "bfloat16")


def row_bucket(n_rows: int) -> int:
    """The tuning key of a row count: the next power of two, capped at MAX_ROW_BUCKET (2^20).
    Buckets: 1, 2, 4, ..., 2^20; every count above 2^20 shares the last one."""
    return min(next_pow2(max(1, n_rows)), MAX_ROW_BUCKET)


@dataclass(frozen=True)
class LoadedVariant:
    spec_name: str
    folder: Path
    manifest: Manifest
    entry: VariantEntry
    layout: PackLayout
    module: ModuleType
    rotation: torch.Tensor  # (D, D) fp32, CPU
    centroids: torch.Tensor  # (2^bits,) fp32, CPU
    boundaries: torch.Tensor  # (2^bits - 1,) fp32, CPU

    @property
    def dtypes(self) -> tuple[torch.dtype, ...]:
        return tuple(getattr(torch, name) for name in self.manifest.dtypes)

    def kernel(self, op: str):
        return getattr(self.module, self.entry.kernels[op])

    def precision(self, dtype: str) -> str:
        """Operand precision of the rotation products for data of `dtype` (the module's PRECISION)."""
        return self.module.PRECISION[dtype]

    def slots(self, precision: str) -> torch.Tensor:
        """The rotation split into strided slots, zero padded: (g, DIM_PAD, SLOT_PAD), fp16 for the
        fp16 precision, else fp32. slots[j, k, n] = rotation[g*n + j, k]."""
        lay = self.layout
        g = lay.codes_per_group
        out = torch.zeros(g, lay.dim_pad, lay.slot_pad, dtype=torch.float32)
        for j in range(g):
            out[j, : lay.head_dim, : lay.groups] = self.rotation[j::g, :].T
        return out.to(torch.float16) if precision == "fp16" else out

    def compress_rotation(self, precision: str) -> torch.Tensor:
        """The rotation as the module's compress takes it: the slots, or where the module says
        COMPRESS_ROTATION = "transposed", the padded rotation transposed (coordinates in order), or with
        "lane_groups", transposed with its columns in lane-group order (PackLayout.lane_group_columns)."""
        form = getattr(self.module, "COMPRESS_ROTATION", "slots")
        if form == "slots":
            return self.slots(precision)
        transposed = self.padded_rotation(precision).T
        if form == "lane_groups":
            return transposed[:, self.layout.lane_group_columns()].contiguous()
        if form == "transposed":
            return transposed.contiguous()
        raise CorruptVariant(f"{self.entry.module}: COMPRESS_ROTATION = {form!r} is none of 'transposed', "
                             "'lane_groups' (a module from another kernelgen version?)")

    def rotation_pieces(self) -> torch.Tensor:
        """The rotation as the warp-specialized decompress takes it (the module's WS_DECOMPRESS): fp16,
        (g * SLOT_PAD, DIM_PAD), piece j (rows j * SLOT_PAD on) the padded rotation's rows j, j + g, ...: the
        rows code j of each byte group multiplies; where the module gives WS_GROUP_ORDER (groups read by
        quarters of a row), a piece's row k is that of group WS_GROUP_ORDER[k]."""
        lay = self.layout
        g = lay.codes_per_group
        padded = self.padded_rotation("fp16")
        pieces = [padded[j::g] for j in range(g)]
        order = getattr(self.module, "WS_GROUP_ORDER", None)
        if order is not None:
            pieces = [piece[list(order)] for piece in pieces]
        return torch.cat(pieces).contiguous()

    def hopper_compress_rotation(self) -> torch.Tensor:
        """The rotation as the warp-specialized compress takes it (the module's WS_COMPRESS): fp16,
        (DIM_PAD, DIM_PAD), the padded rotation transposed, its columns in the order of the Triton kernel's
        one product a block: where the module takes the rotation transposed, its own order
        (compress_rotation); where it takes slots, the joined order (PackLayout.joined_columns: the Triton
        compress's `joined`, which it makes from the slots)."""
        if getattr(self.module, "COMPRESS_ROTATION", "slots") != "slots":
            return self.compress_rotation("fp16")
        return self.padded_rotation("fp16").T[:, list(self.layout.joined_columns())].contiguous()

    def padded_rotation(self, precision: str) -> torch.Tensor:
        """The rotation as decompress takes it: (DIM_PAD, DIM_PAD), zero past the head dim, fp16 for the
        fp16 precision, else fp32 (decompress multiplies the centroids, in coordinate order, by it)."""
        lay = self.layout
        out = torch.zeros(lay.dim_pad, lay.dim_pad, dtype=torch.float32)
        out[: lay.head_dim, : lay.head_dim] = self.rotation
        return out.to(torch.float16) if precision == "fp16" else out

    def centroid_table(self, precision: str) -> torch.Tensor:
        """The codebook as the decompress kernel gathers it: (2^bits,), fp16 for the fp16 precision
        (what the product's operands are rounded to anyway), else fp32. Where the module says
        CENTROID_PAIRS, the fp16 table is of pairs instead: (4^bits,) int32, entry (a << bits) | b holding
        the fp16 centroids of codes a (low 16 bits) and b (high 16 bits)."""
        if precision != "fp16":
            return self.centroids.clone()
        half = self.centroids.to(torch.float16)
        if not getattr(self.module, "CENTROID_PAIRS", False):
            return half
        bits = half.view(torch.int16).to(torch.int32) & 0xFFFF
        codes = torch.arange(len(bits) ** 2)
        return bits[codes // len(bits)] | (bits[codes % len(bits)] << 16)


def _verified_bytes(path: Path, expected: str) -> bytes:
    data = path.read_bytes()
    if sha256(data) != expected:
        raise CorruptVariant(f"{path}: content does not match its manifest (sha256 {sha256(data)[:12]}…, "
                             f"manifest says {expected[:12]}…); rebuild with `kernelgen build`")
    return data


@functools.lru_cache(maxsize=None)
def _load(folder: Path, spec_name: str, head_dim: int) -> LoadedVariant:
    manifest = Manifest.read(folder)
    entry = next(v for v in manifest.variants if v.head_dim == head_dim)
    module_path = folder / entry.module
    _verified_bytes(module_path, entry.module_sha256)
    module_name = f"kernelgen._generated.{spec_name}_d{head_dim}_{entry.module_sha256[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, module_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # triton reads the kernel's source through its module
    spec.loader.exec_module(module)

    rotation_bytes = (folder / entry.rotation).read_bytes()
    centroids, boundaries = tuple(module.CENTROIDS), tuple(module.BOUNDARIES)
    digest = constants_digest(rotation_bytes, centroids, boundaries)
    if digest != entry.constants_sha256:
        raise CorruptVariant(f"{folder / entry.rotation}: rotation or codebook does not match the manifest's "
                             "constants hash; rebuild with `kernelgen build`")
    rotation = torch.frombuffer(bytearray(rotation_bytes), dtype=torch.float32).reshape(head_dim, head_dim)
    return LoadedVariant(
        spec_name=spec_name, folder=folder, manifest=manifest, entry=entry,
        layout=PackLayout(manifest.bits, head_dim), module=module, rotation=rotation,
        centroids=torch.tensor(centroids, dtype=torch.float32),
        boundaries=torch.tensor(boundaries, dtype=torch.float32),
    )


def load_variant(spec_name: str, head_dim: int) -> LoadedVariant:
    """The verified variant for (spec, head dim); VariantNotFound lists what exists."""
    manifests = _manifests()
    if spec_name not in manifests:
        known = ", ".join(sorted(manifests)) or "none"
        raise VariantNotFound(f"no generated kernels for spec {spec_name!r}; available specs: {known} "
                              f"(searched: {', '.join(map(str, kernel_paths()))})")
    folder, manifest = manifests[spec_name]
    dims = [v.head_dim for v in manifest.variants]
    if head_dim not in dims:
        raise VariantNotFound(f"spec {spec_name!r} has no head dim {head_dim}; available: "
                              f"{', '.join(map(str, dims))} (add it to the spec's head_dims and rebuild)")
    return _load(folder, spec_name, head_dim)


def is_interpreted(kernel) -> bool:
    """True when the kernels were defined under TRITON_INTERPRET=1 (numpy on the CPU)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(getattr(kernel, "fn", kernel), InterpretedFunction)


def runs_ptx(interpreted: bool) -> bool:
    """Whether kernels may run inline PTX: on an NVIDIA GPU, not under the Triton interpreter (numpy on
    the CPU) nor on a ROCm build of torch (AMD GPUs), where compress runs its fp16 search in Triton ops."""
    return not interpreted and torch.version.hip is None


def _triton_minor() -> tuple[int, int]:
    import triton

    return tuple(int(part) for part in triton.__version__.split(".")[:2])


# The compiled kernel's launcher protocol (see launch_compiled) is read from Triton 3.6's source; other
# versions launch through `kernel[grid](...)`.
DIRECT_LAUNCH = _triton_minor() == (3, 6)


def index_of(device: torch.device) -> int:
    """A device's CUDA index, -1 for the CPU (a CUDA device without an index is the current one)."""
    if device.type != "cuda":
        return -1
    return device.index if device.index is not None else torch.cuda.current_device()


def launch_compiled(compiled, grid: tuple[int, int], stream: int, args: tuple) -> None:
    """Launch a Triton 3.6 CompiledKernel (what `kernel[grid](...)` returns) over a (x, y) grid of
    programs on `stream`, as Triton's own launch does but without hooks; `args` are every kernel argument
    in signature order, constexprs included."""
    compiled.run(grid[0], grid[1], 1, stream, compiled.function, compiled.packed_metadata, None, None, None, *args)


def _hooked(hook) -> bool:
    """Whether a Triton launch hook would do anything: Triton 3.6 keeps a HookChain (empty unless a
    profiler adds to it) where older versions kept None or a function."""
    if hook is None:
        return False
    calls = getattr(hook, "calls", None)
    return bool(calls) if calls is not None else True


class BoundKernel:
    """One generated kernel of a loaded variant, launched with the config the tuner picks.

    Launch path: the first launch of each (row bucket, dtype, tuner, device, pointer alignment) goes
    through Triton's `kernel[grid](...)`, which compiles if needed and returns the compiled kernel; later
    ones call that compiled kernel's launcher directly, skipping Triton's per-call argument binding and
    cache lookup (most of a launch's host time at decode sizes). The key holds everything Triton
    specializes these kernels on: the argument dtypes follow from (op, dtype), and each pointer's
    16-byte alignment is checked on every call. Under the interpreter, on a Triton other than 3.6, or
    while a Triton launch hook is set (profilers), every launch goes through `kernel[grid](...)`.
    The grid is (row blocks, 1), or (row blocks, output steps) for a decompress kernel that splits its
    output steps at this row bucket (see COLUMN_SPLIT_MAX_ROWS); compress and decompress kernels take
    ROW_BLOCKS row blocks a program at large row buckets (see ROW_BLOCKS_FROM_BUCKET), and a wide compress
    kernel that splits its slot columns has SLOT_SPLIT programs on axis 0 for each (see SLOT_SPLIT_RULE).
    A compress that reads its rows by TMA goes through `kernel[grid](...)` each call (TMA_COMPRESS). A
    compress or decompress whose module has a warp-specialized Gluon kernel runs that instead where takes_ws
    holds, untuned, with its own direct launch (launch_ws)."""

    def __init__(self, variant: LoadedVariant, op: str):
        self.variant = variant
        self.op = op
        self.autotuner = variant.kernel(op)
        self.fn = self.autotuner.fn  # the @triton.jit function under @triton.autotune
        self.configs = self.autotuner.configs
        self.id = tuning.KernelId(variant.entry.kernels[op], variant.entry.module_sha256)
        self.interpreted = is_interpreted(self.autotuner)
        self.rotates = op != "decompress_rotated"  # takes a rotation operand and a PRECISION argument
        module = variant.module
        # output steps a row of decompress takes, where the kernel can spread them over grid axis 1
        self.output_steps = (module.DIM_PAD.value // module.OUT_CHUNK.value
                             if "COLUMN_SPLIT" in self.fn.arg_names else 1)
        self.loops_rows = "ROW_BLOCKS" in self.fn.arg_names  # a program can take several row blocks
        self.splits_slots = "SLOT_SPLIT" in self.fn.arg_names  # wide compress: see SLOT_SPLIT_RULE
        self.tma_rows = "x_desc" in self.fn.arg_names  # compress that can read its rows by TMA: TMA_COMPRESS
        # the columns of its TMA box: the module's TMA_K where it reads a row in pieces, else the padded row
        self.tma_box_columns = module.TMA_K.value if hasattr(module, "TMA_K") else module.DIM_PAD.value
        self._sms: dict[int, int] = {}
        # compress with the fp16 search: its PTX on a GPU, its Triton form under the interpreter
        self.inline_ptx = "INLINE_PTX" in self.fn.arg_names
        self._memo: dict[tuple, tuple] = {}
        self._compiled: dict[tuple, object] = {}
        self._direct = not self.interpreted and DIRECT_LAUNCH
        if self._direct:
            from triton import knobs

            self._knobs = knobs.runtime
        self._current_stream = None  # the driver's, bound at the first compiled launch (none without a GPU)
        # compress's and decompress's warp-specialized Gluon kernels, where the module has them (see ws_from)
        ws_name = getattr(module, {"compress": "WS_COMPRESS", "decompress": "WS_DECOMPRESS"}.get(op, ""), None)
        self.ws_kernel = getattr(module, ws_name) if ws_name else None
        self.ws_warps = 8 if op == "compress" else 4  # warps a compute partition (the launch's num_warps)
        self._ws: dict[int, dict | None] = {}  # device index -> what the warp-specialized kernel needs there
        self._ws_compiled: dict[tuple, object] = {}  # its compiled kernels, by specialization (see launch_ws)

    def meta(self, config: tuning.LaunchConfig, dtype: str, bucket: int) -> dict:
        """The launch's compile-time arguments: the config, the precision of the dtype's products, whether
        a decompress kernel of several output steps spreads them over grid axis 1 at this row bucket, how
        many row blocks a program takes (kernels with a row-block loop), and whether compress runs its
        fp16 search as inline PTX (see runs_ptx)."""
        meta = {"BLOCK_ROWS": config.block_rows, "num_warps": config.num_warps, "num_stages": config.num_stages}
        if self.rotates:
            meta["PRECISION"] = self.variant.precision(dtype)
        if self.output_steps > 1:
            meta["COLUMN_SPLIT"] = bucket <= COLUMN_SPLIT_MAX_ROWS
        if self.loops_rows:
            meta["ROW_BLOCKS"] = row_blocks(self.op, bucket, dtype, self.variant.layout.dim_pad)
        if self.inline_ptx:
            meta["INLINE_PTX"] = runs_ptx(self.interpreted)
        if self.splits_slots:
            meta["SLOT_SPLIT"] = slot_split(bucket, self.variant.layout.bits, meta["PRECISION"])
        if self.tma_rows:
            layout = self.variant.layout
            stages = tma_stages(bucket, dtype, layout.head_dim, layout.dim_pad, runs_tma(self.interpreted))
            meta.update(TMA_STAGES=stages, RAW_PRODUCT=raw_product(dtype, meta["PRECISION"]),
                        x_desc=None)  # x_desc is per call (see tma_launch)
            if stages:
                meta["ROW_BLOCKS"] = 1  # not used by the TMA loop: one compiled form
                if self.splits_slots:
                    meta["SLOT_SPLIT"] = 1  # the TMA loop takes every slot column in one program
                meta["num_stages"] = stages  # Triton's loop pipelining runs only with the kernel's stages > 1
        return meta

    def _multiprocessors(self) -> int:
        """SMs of the current CUDA device (1 without one: the interpreter)."""
        device = torch.cuda.current_device() if torch.cuda.is_available() and not self.interpreted else -1
        if device not in self._sms:
            self._sms[device] = torch.cuda.get_device_properties(device).multi_processor_count if device >= 0 else 1
        return self._sms[device]

    def tma_launch(self, n_rows: int, meta: dict, args: tuple) -> tuple[tuple[int, int], dict]:
        """The grid and metas of a TMA compress launch (meta["TMA_STAGES"] > 0): a descriptor of the rows
        (args[0], (n_rows, HEAD_DIM) contiguous), block BLOCK_ROWS x tma_box_columns (DIM_PAD, or the
        module's TMA_K where it reads a row in pieces), zeros past HEAD_DIM; as many programs as
        TMA_COMPRESS puts on each SM for the padding, the box and the rows' form (meta's RAW_PRODUCT and
        PRECISION: tma_programs), at most one a row block."""
        from triton.tools.tensor_descriptor import TensorDescriptor

        x, block, layout = args[0], meta["BLOCK_ROWS"], self.variant.layout
        per_sm = tma_programs(layout.dim_pad, self.tma_box_columns, meta["RAW_PRODUCT"], meta["PRECISION"])
        programs = min(-(-n_rows // block), per_sm * self._multiprocessors())
        desc = TensorDescriptor(x, [n_rows, layout.head_dim], [layout.head_dim, 1], [block, self.tma_box_columns])
        return (programs, 1), dict(meta, x_desc=desc)

    def launch_forms(self, space: list[tuning.LaunchConfig], dtype: str, buckets: list[int]) -> list:
        """(config, bucket) pairs that compile each launch form once (`kernelgen tune --compile-only`): a
        config's compile-time arguments (row blocks a program, the column split) change with the bucket,
        so each distinct set is compiled at the first of `buckets` that takes it."""
        seen, plan = set(), []
        for bucket in buckets:
            for config in space:
                form = tuple(sorted(self.meta(config, dtype, bucket).items()))
                if form not in seen:
                    seen.add(form)
                    plan.append((config, bucket))
        return plan

    @staticmethod
    def rows_per_program(meta: dict) -> int:
        """Rows one program covers on grid axis 0: BLOCK_ROWS, times ROW_BLOCKS where the kernel loops."""
        return meta["BLOCK_ROWS"] * meta.get("ROW_BLOCKS", 1)

    @staticmethod
    def shares(meta: dict) -> int:
        """Neighbouring programs on grid axis 0 that take the same rows (SLOT_SPLIT, see SLOT_SPLIT_RULE)."""
        return meta.get("SLOT_SPLIT", 1)

    def grid(self, n_rows: int, meta: dict) -> tuple[int, int]:
        """Programs on grid axes 0 (row blocks, or groups of ROW_BLOCKS of them, times the programs that
        share each one's rows) and 1 (output steps, where COLUMN_SPLIT is set)."""
        return (-(-n_rows // self.rows_per_program(meta)) * self.shares(meta),
                self.output_steps if meta.get("COLUMN_SPLIT") else 1)

    def constexpr_args(self, meta: dict, n_tensors: int) -> tuple:
        """The values of the kernel's constexpr parameters (after the tensors, n_rows and ROW_BUCKET), in
        signature order: the tail of the argument list a compiled kernel's launcher takes."""
        return tuple(meta[name] for name in self.fn.arg_names[n_tensors + 2:])

    def run(self, config: tuning.LaunchConfig, n_rows: int, bucket: int, dtype: str, args: tuple) -> None:
        meta = self.meta(config, dtype, bucket)
        if meta.get("TMA_STAGES"):
            self._launch_tma(n_rows, bucket, meta, args)
            return
        self.fn[self.grid(n_rows, meta)](*args, n_rows, bucket, **meta)

    def _launch_tma(self, n_rows: int, bucket: int, meta: dict, args: tuple) -> None:
        """A TMA compress launch: a descriptor and a grid each call (tma_launch), through Triton's own
        launch (the descriptor is a host object the direct path does not pass)."""
        grid, tma_meta = self.tma_launch(n_rows, meta, args)
        self.fn[grid](*args, n_rows, bucket, **tma_meta)

    def config(self, n_rows: int, dtype: str, device: torch.device, args: tuple) -> tuning.LaunchConfig:
        bucket = row_bucket(n_rows)
        return tuning.TUNER.choose(self.variant.folder, self.id, self.configs, bucket, dtype, device,
                                   self.interpreted, lambda c: self.run(c, n_rows, bucket, dtype, args))

    def last_config(self, n_rows: int, dtype: str) -> tuning.LaunchConfig | None:
        """The config launches of this row count and dtype use under the current tuner (None: not yet)."""
        memo = self._memo.get((row_bucket(n_rows), dtype, id(tuning.TUNER)))
        return memo[2] if memo else None

    def launch(self, n_rows: int, dtype: str, device: torch.device, *args) -> None:
        """Launch over n_rows rows on `device` (the current device); `args` are the kernel's tensor
        arguments before n_rows. The config of each (bucket, dtype) is looked up once per tuner; where
        the op takes its warp-specialized kernel (takes_ws), that runs instead, untuned."""
        bucket = MAX_ROW_BUCKET if n_rows >= MAX_ROW_BUCKET else 1 << (n_rows - 1).bit_length()
        # the bucket first, a cheap test that decode sizes fail (takes_ws holds the whole rule)
        if self.ws_kernel is not None and bucket >= ws_from(self.op, self.variant.layout) and self.launch_ws(
                n_rows, bucket, dtype, device, args):
            return
        key = (bucket, dtype, id(tuning.TUNER))
        memo = self._memo.get(key)
        if memo is None:
            config = self.config(n_rows, dtype, device, args)
            meta = self.meta(config, dtype, bucket)
            constexprs = self.constexpr_args(meta, len(args))
            memo = self._memo[key] = (self.rows_per_program(meta), meta, config, constexprs, self.grid(1, meta)[1],
                                      self.shares(meta))
        block, meta, _, constexprs, steps, shares = memo
        if meta.get("TMA_STAGES"):
            self._launch_tma(n_rows, bucket, meta, args)
            return
        grid = (-(-n_rows // block) * shares, steps)
        if not self._direct:
            self.fn[grid](*args, n_rows, bucket, **meta)
            return
        # n_rows past int32 makes Triton pick an int64 argument: another compiled kernel
        fast_key = (key, device.index, n_rows > 0x7FFFFFFF, *[a.data_ptr() % 16 == 0 for a in args])
        compiled = self._compiled.get(fast_key)
        hooks = _hooked(self._knobs.launch_enter_hook) or _hooked(self._knobs.launch_exit_hook)
        if compiled is None or hooks:
            compiled = self.fn[grid](*args, n_rows, bucket, **meta)  # compiles if needed, then launches
            if compiled is not None and not hooks:
                if self._current_stream is None:
                    from triton.runtime.driver import driver

                    self._current_stream = driver.active.get_current_stream
                self._compiled[fast_key] = compiled
            return
        launch_compiled(compiled, grid, self._current_stream(device.index), (*args, n_rows, bucket, *constexprs))

    def launch_ws(self, n_rows: int, bucket: int, dtype: str, device: torch.device, args: tuple) -> bool:
        """Run the module's warp-specialized kernel (WS_COMPRESS, WS_DECOMPRESS) where takes_ws says so and
        the tensors start where its loads and stores need them (_ws_args); return whether it ran. args: the
        Triton kernel's tensor arguments. What does not change between calls (the rotation as the kernel
        takes it, its descriptor, the shared-memory layouts of the other descriptors) is made once a device
        (_ws_state). TMA coordinates are 32-bit, which bounds the rows at 2^31, past any GPU's memory."""
        state = self._ws_state(device)
        if not takes_ws(self.op, bucket, dtype, self.variant.precision(dtype), state is not None, self.variant.layout):
            return False
        made = self._ws_args(n_rows, state, args)
        if made is None:
            return False
        args, pointers = made
        grid = (min(state["sms"], -(-n_rows // self.variant.module.WS_BLOCK_ROWS.value)), 1)
        # as launch's fast path: after the first launch of a specialization, the compiled kernel's own
        # launcher. Measured on the H100 machines' hosts (benchmarks/experiments/ws_host_time.py): through
        # Gluon's `kernel[grid](...)` 69.6-90.2 µs of host time a call, more than the decompress kernel's
        # 26-30 µs at 65,536 rows (h100-ws_host_time-before.txt); through the launcher 22.7-25.6 µs
        # (h100-ws_host_time.txt), 25.3-67.6 on another machine (-second.txt). Triton specializes
        # pointers on 16-byte alignment, and integers on being 1 (a constant then), on divisibility by 16 and
        # on 64 bits; the descriptors on their dtype (the output's for decompress, the rows' for compress).
        key = (index_of(device), (args[2] if self.op == "decompress" else args[0]).base.dtype, n_rows == 1,
               n_rows % 16 == 0, n_rows > 0x7FFFFFFF, *[t.data_ptr() % 16 == 0 for t in pointers])
        compiled = self._ws_compiled.get(key)
        hooks = self._direct and (_hooked(self._knobs.launch_enter_hook) or _hooked(self._knobs.launch_exit_hook))
        if compiled is None or not self._direct or hooks:
            compiled = self.ws_kernel[grid](*args, num_warps=self.ws_warps)
            if self._direct and not hooks and compiled is not None:
                self._ws_compiled[key] = compiled
            return True
        launch_compiled(compiled, grid, state["stream"](key[0]), args)
        return True

    def _ws_args(self, n_rows: int, state: dict, args: tuple) -> tuple[tuple, tuple] | None:
        """The warp-specialized kernel's arguments from the Triton kernel's, and the tensors among them that
        it takes as pointers; None where a tensor does not start where the kernel needs it (the
        quantizer's own tensors do, an `out=` view may not): on 16 bytes for a tensor TMA reads or writes,
        on the module's WS_PACKED_ALIGN for packed rows that decompress reads by pointers (the width of
        its loads), on 4 bytes for packed rows that compress stores as words.
        compress: (x, rotation, packed, norms), the rows (and one-byte groups) by TMA, the rotation as
        hopper_compress_rotation gives it. decompress: (packed, norms, rotation, centroids, out), the output
        (and one-byte groups in rows TMA takes) by TMA, the rotation's pieces for the rotation, the state's
        fp16 codebook where it holds one (_ws_state) in place of the table."""
        from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

        lay = self.variant.layout
        block = self.variant.module.WS_BLOCK_ROWS.value
        packed_by_tma = "packed_desc" in self.ws_kernel.arg_names  # else a pointer (3-byte groups, tq2 D=96)
        if self.op == "compress":
            x, _, packed, norms = args
            if x.data_ptr() % 16 or packed.data_ptr() % (16 if packed_by_tma else 4):
                return None
            x_desc = TensorDescriptor(x, [n_rows, lay.head_dim], [lay.head_dim, 1], [block, lay.dim_pad],
                                      state["row_layouts"][x.dtype])
            if not packed_by_tma:
                return (x_desc, state["rotation_desc"], packed, norms, n_rows), (packed, norms)
            packed_desc = TensorDescriptor(packed, [n_rows, lay.packed_dim], [lay.packed_dim, 1],
                                           [block, lay.slot_pad], state["packed_layout"])
            return (x_desc, state["rotation_desc"], packed_desc, norms, n_rows), (norms,)
        packed, norms, _, centroids, out = args
        packed_align = 16 if packed_by_tma else self.variant.module.WS_PACKED_ALIGN
        if out.data_ptr() % 16 or packed.data_ptr() % packed_align:
            return None
        if packed_by_tma:
            packed = TensorDescriptor(packed, [n_rows, lay.packed_dim], [lay.packed_dim, 1], [block, lay.slot_pad],
                                      state["packed_layout"])
        out_desc = TensorDescriptor(out, [n_rows, lay.head_dim], [lay.head_dim, 1], [block, lay.dim_pad],
                                    state["row_layouts"][out.dtype])
        centroids = state.get("codebook", centroids)
        pointers = (norms, centroids) + (() if packed_by_tma else (packed,))
        return (packed, state["rotation_desc"], out_desc, norms, centroids, n_rows), pointers

    def _ws_state(self, device: torch.device) -> dict | None:
        """What the warp-specialized kernel needs on `device`, made at its first call (None where it cannot
        run there: runs_ws): SMs, the rotation as the kernel takes it (the variant's, the same for every
        quantizer of it: LoadedVariant.hopper_compress_rotation for compress, rotation_pieces for
        decompress) and its descriptor, the shared-memory layouts of the other descriptors' blocks, and
        for a decompress whose Triton kernel takes the pair table (CENTROID_PAIRS) while its Gluon kernel
        gathers a code at a time (no WS_CENTROID_PAIRS) the fp16 codebook."""
        index = index_of(device)
        if index not in self._ws:
            state = None
            if index >= 0 and runs_ws(self.interpreted):
                if torch.cuda.is_current_stream_capturing():  # the rotation's copy to the GPU cannot be captured
                    raise tuning.TuningDuringCapture(
                        f"kernelgen: {self.ws_kernel.__name__} has not run on cuda:{index} yet, and its set-up (the "
                        "rotation copied to the GPU) cannot run while a CUDA graph is captured: call "
                        "Quantizer.warmup(max_rows=...) before capturing")
                from triton.experimental.gluon import language as gl
                from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
                from triton.runtime.driver import driver

                lay = self.variant.layout
                block = self.variant.module.WS_BLOCK_ROWS.value
                if self.op == "compress":
                    rotation = self.variant.hopper_compress_rotation().to(device)
                    box = [lay.dim_pad, lay.dim_pad]
                else:
                    rotation = self.variant.rotation_pieces().to(device)
                    box = [lay.slot_pad, lay.dim_pad]
                state = {
                    "sms": torch.cuda.get_device_properties(index).multi_processor_count,
                    "stream": driver.active.get_current_stream,
                    "rotation": rotation,  # kept alive with its descriptor
                    "rotation_desc": TensorDescriptor(rotation, list(rotation.shape), [lay.dim_pad, 1], box,
                                                      gl.NVMMASharedLayout.get_default_for(box, gl.float16)),
                    "packed_layout": gl.NVMMASharedLayout.get_default_for([block, lay.slot_pad], gl.uint8),
                    # the layouts of blocks of 16-bit rows: compress's input, decompress's output
                    "row_layouts": {dt: gl.NVMMASharedLayout.get_default_for([block, lay.dim_pad], gdt)
                                    for dt, gdt in ((torch.float16, gl.float16), (torch.bfloat16, gl.bfloat16))},
                }
                module = self.variant.module
                if (self.op == "decompress" and getattr(module, "CENTROID_PAIRS", False)
                        and not getattr(module, "WS_CENTROID_PAIRS", False)):
                    # the Gluon kernel gathers a code at a time from the fp16 codebook, where the Triton
                    # kernel takes the pair table (the quantizer's constant)
                    state["codebook"] = self.variant.centroids.to(device=device, dtype=torch.float16)
            self._ws[index] = state
        return self._ws[index]
