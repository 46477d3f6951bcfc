"""Stage 3: a validated Spec -> files in generated/<spec name>/ (Jinja templates + constants).

For each head dim: one Python module of Triton kernels and one raw fp32 rotation.
A manifest, written last, lists them with their hashes. Output is a pure function
of the spec, the templates and the generator version; writes are atomic per file,
files of variants the spec no longer lists are removed, and `check` writes nothing.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from . import __version__, fp16_search
from .constants import haar_rotation, lloyd_max
from .layout import PackLayout
from .manifest import MANIFEST_NAME, Manifest, VariantEntry, constants_digest, sha256
from .spec import Spec


def template_dir() -> Path:
    """The templates installed inside the package, or templates/ of a source checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "templates"
    return installed if installed.is_dir() else here.parent / "templates"


def _fp(value: float) -> str:
    """A float literal that reads back to exactly the same (fp32-representable) value."""
    text = repr(float(value))
    return "0.0" if text == "-0.0" else text


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["fp"] = _fp
    return env


def kernel_names(spec: Spec, head_dim: int) -> dict[str, str]:
    stem = f"{spec.name}_d{head_dim}"
    return {"compress": f"{stem}_compress", "decompress": f"{stem}_decompress",
            "decompress_rotated": f"{stem}_decompress_rotated"}


def _magnitude_search(boundaries: tuple[float, ...], bits: int) -> list[dict]:
    """The compress search for a symmetric codebook (lloyd_max makes every codebook exactly symmetric):
    a branchless binary search for m = the number of positive boundaries <= |y|, among the
    2^(bits-1) - 1 of them. Level i decides bit (bits-2-i) of m: is |y| >= positive[base + step - 1],
    where step = 2^(bits-2-i) and base is what the bits decided above already give.

    Each level's threshold is a function of the bits decided above (0/1 floats named m<bit>, bools
    h<bit>). It is rendered as nested multiply-adds, t = t0 + m * (t1 - t0) on the bit decided last, the
    differences fp32 constants; that form is kept only if fp32 evaluation gives exactly the boundary for
    every combination of bits (checked here, both bit orders), else a tl.where on the first decided bit
    picks between the thresholds of the other bits, built the same way.
    The sign of y then mirrors m into the code (see the template's _signed_code)."""
    half = 1 << (bits - 1)
    if any(b != -m for b, m in zip(boundaries, reversed(boundaries))) or boundaries[half - 1] != 0.0:
        raise ValueError("the kernels' search needs a codebook symmetric about 0 (boundaries b[i] == -b[-1-i])")
    positive = [np.float32(b) for b in boundaries[half:]]

    def target(decided: list[tuple[int, int]], combo, base: int, step: int) -> np.float32:
        return positive[base + sum(w for (_, w), c in zip(decided, combo) if c) + step - 1]

    def fma_tree(decided: list[tuple[int, int]], base: int, step: int):
        """('lit', value) or ('fma', low, bit, difference): nested multiply-adds, the last bit outermost."""
        if not decided:
            return ("lit", positive[base + step - 1])
        *rest, (bit, weight) = decided
        low, high = fma_tree(rest, base, step), fma_tree(rest, base + weight, step)
        return ("fma", low, bit, difference(high, low))

    def difference(high, low):
        if high[0] == "lit":
            return ("lit", np.float32(high[1] - low[1]))
        return ("fma", difference(high[1], low[1]), high[2], difference(high[3], low[3]))

    def threshold(decided: list[tuple[int, int]], base: int, step: int):
        """The cheapest exact form: multiply-adds (either bit order), else a tl.where on the first
        decided bit over the thresholds of the rest."""
        for order in (decided, decided[::-1]):
            tree = fma_tree(order, base, step)
            if all(value(tree, dict(zip([b for b, _ in order], combo))) == target(order, combo, base, step)
                   for combo in itertools.product((0, 1), repeat=len(order))):
                return tree
        (bit, weight), rest = decided[0], decided[1:]
        return ("where", bit, threshold(rest, base + weight, step), threshold(rest, base, step))

    def value(tree, bits_set: dict[int, int]) -> np.float32:
        if tree[0] == "lit":
            return tree[1]
        if tree[0] == "where":
            return value(tree[2] if bits_set[tree[1]] else tree[3], bits_set)
        return np.float32(value(tree[1], bits_set) + np.float32(bits_set[tree[2]]) * value(tree[3], bits_set))

    def expression(tree) -> str:
        if tree[0] == "lit":
            return _fp(tree[1])
        if tree[0] == "where":
            return f"tl.where(h{tree[1]}, {expression(tree[2])}, {expression(tree[3])})"
        scaled = expression(tree[3]) if tree[3][0] == "lit" else f"({expression(tree[3])})"
        return f"{expression(tree[1])} + m{tree[2]} * {scaled}"

    levels, decided = [], []
    for i in range(bits - 1):
        step = 1 << (bits - 2 - i)
        levels.append({"bit": bits - 2 - i, "threshold": expression(threshold(decided, 0, step)),
                       "weight": _fp(step)})
        decided.append((bits - 2 - i, step))
    return levels


def _word_offset(layout: PackLayout) -> float:
    """What compress adds to the sum of its signed codes (code - (half - 0.5), each scaled by 2^shift) to
    get the group word: (half - 0.5) * sum of 2^shift. The sum is exact in fp32 while the word fits
    24 bits (its partial sums are multiples of 0.5 below 2^23)."""
    if layout.codes_per_group * layout.bits > 24:
        raise ValueError(f"a {layout.codes_per_group * layout.bits}-bit group word is not exact in fp32")
    half = 1 << (layout.bits - 1)
    return (half - 0.5) * sum(1 << layout.code_shift(j) for j in range(layout.codes_per_group))


@dataclass(frozen=True)
class _Fp16SearchContext:
    """What the template needs of kernelgen.fp16_search for one layout."""
    thresholds: tuple[float, ...]
    ptx: str
    constraints: str  # the inline asm's: one output, one input a slot
    moved: str  # the header's phrase for the thresholds one fp16 step off the nearest ('' if none)

    @property
    def symmetric_boundaries(self) -> tuple[float, ...]:
        return tuple(-t for t in reversed(self.thresholds)) + (0.0,) + self.thresholds


def _fp16_search(boundaries: tuple[float, ...], layout: PackLayout) -> _Fp16SearchContext | None:
    """The fp16 search of compress (kernelgen/fp16_search.py) where a byte group is one byte, else None."""
    if layout.bytes_per_group != 1:
        return None
    g = layout.codes_per_group
    search = fp16_search.byte_group_search(boundaries, layout.bits, g, [layout.code_shift(j) for j in range(g)],
                                           _word_offset(layout))
    moved = " and ".join(repr(t) for t in search.moved)
    if moved:
        moved += " is" if len(search.moved) == 1 else " are"
    return _Fp16SearchContext(search.thresholds, search.ptx, "=r," + ",".join(["r"] * g), moved)


def _interleave(names: list[str]) -> str:
    """A tl.join tree whose flattened last axes list `names` in order (v0, v1, ... per group)."""
    if len(names) == 1:
        return names[0]
    return f"tl.join({_interleave(names[0::2])}, {_interleave(names[1::2])})"


ROW_CHUNK = 128  # compress reads a row padded up to this in one piece, wider rows in WIDE_ROW_CHUNK chunks
WIDE_ROW_CHUNK = 64  # compress input dims per tl.dot step for rows wider than ROW_CHUNK
# Rows padded past ROW_CHUNK up to this take their fp16-operand products in one step, with the whole
# rotation (128 KB in fp16 at 256) in shared memory once a program and ROW_BLOCKS row blocks: compress at
# every row count, decompress above the column-split row counts. Measured on an H100 at 1M fp16 rows
# (benchmarks/experiments/wide_rows_one_step.py, B64 w8, 8 blocks): compress 504.4 against 660.9 µs (tq4
# D=256), 471.5 against 603.1 (tq2 D=256), 490.8 against 647.9 (tq4 D=192); decompress (B128 w8, 4
# blocks) 558.2 against 674.0 (tq4 D=256), 632.0 against 852.1 (tq3 D=256), 502.6 against 647.4 (tq2
# D=192). At 2,048 rows the one-step decompress was slower (6.6 against 5.6 µs, tq4 D=256), so the column
# split stays there. 3-bit compress (benchmarks/experiments/tq3_compress_forms.py, B64 w8): D=256 1,780.4
# against 1,861.2 µs at 1M rows, 6.1 against 10.0 µs at 8 rows; D=192 1,258.1 against 1,474.2 / 6.0
# against 10.9 µs.
WHOLE_ROTATION_MAX_DIM = 256
# Decompress of a head dim up to ROW_CHUNK that is two powers of two of at least this many dims (D=96:
# 64 + 32) takes its coordinates and output dims in those pieces instead of padding them to the next power
# of two: measured on an H100, tq4 D=96, 1M fp16 rows (benchmarks/experiments/pieces_tq4_d96.py), 118.9
# against 141.9 µs (B64 w4, 4 row blocks; the other configs slower than that); 65,536 rows 10.1 against
# 11.4 µs. Compress with pointer loads gained nothing from the same cut (142.8 against 141.7 µs) and keeps
# the padding; compress by TMA reads such rows in pieces (see _tma_k).
MIN_PIECE = 32
OUT_CHUNK = 128  # decompress output dims per tl.dot step (one step up to D=128): bounds shared memory at large head dims
K_CHUNK = 128  # decompress coordinates per tl.dot step (the whole row up to D=128)
# compress runs one product with the transposed rotation (coordinates in order) and forms the words by a
# reshape and a weighted sum, instead of one product a slot, where a byte group holds this many codes and
# a row fits one step: measured on an H100 at D=128, 1M rows (benchmarks/experiments/search_forms_d128.py):
# 8 codes (tq3) 333.4 against 384.5 µs a slot (B32 w4); 2 and 4 codes no gain
# (benchmarks/experiments/one_product_d128.py).
COORDINATE_COMPRESS_CODES_PER_GROUP = 8
# The same form at rows padded past ROW_CHUNK that the head dim fills (tq3 D=256: _coordinate_compress), the
# whole transposed rotation (128 KB of fp16) in shared memory once a program, instead of eight slot
# products of 32 columns: measured on an H100, 1M fp16 rows, the rows by TMA, one program an SM, three
# rounds (benchmarks/experiments/tq3_coordinate_d256.py): 356.5-367.1 µs at B64 w8 (382.9-397.3 at w4)
# against 570.2-591.4 for the slot form by pointer loads; codes equal to the fp32 path 99.971% against
# 99.959%. At D=192 (read in pieces, _wide_pieces: three 64-row pieces of the transposed rotation), after
# tuning, `kernelgen bench` put tq3 compress at 319.4 µs (50.3%) against 444.6 µs (36.0%) for eight slot
# products in the same pieces the run before (benchmarks/h100-raw-flag.md, runs G and I).
# The coordinate-order compress, at rows padded to these widths, takes the rotation's columns in lane-group
# order (PackLayout.lane_group_columns: each group's codes in one thread of the product's accumulator), so that its
# weighted group sums run inside threads instead of across lanes. Measured on an H100, tq3, 1M fp16 rows,
# B64 w4, the rows by TMA, three rounds (benchmarks/experiments/raw_product_compress.py, forms "scaled"
# and "perm"): D=128 144.5-150.1 against 124.1-127.2 µs, D=96 149.9-150.8 against 126.0-127.6 µs. At 64
# a lane holds two groups, half a word's four: not measured, not taken. At 256 (tq3 D=256) the order puts
# 8 groups in a lane; it keeps each group in one thread where one warpgroup holds all 256 columns of the
# accumulator (4 warps), and at 8 warps, which split the columns over two warpgroups, the sums are still
# correct but cross lanes (8 warps measured faster all the same, tq3_coordinate_d256.py above).
LANE_GROUP_DIM_PADS = (128, 256)


# compress stores the packed bytes as int32 words where a byte group is several bytes (3 bits: 3 bytes)
# and a row's groups come in fours (head dim a multiple of 32): four groups, three words, instead of a
# one-byte store a byte. Measured on an H100 (tq3, 1M fp16 rows, B64 w4,
# benchmarks/experiments/tq3_words.py): D=128 164.4 against 196.6 µs, D=64 78.7 against 90.6, D=96 159.9
# against 186.8, D=256 845.8 against 1,000.9; 8 rows at D=256 5.7 against 8.1 µs. The same words in
# decompress's loads were slower (D=128 224.4 against 181.1 µs): it keeps its one-byte loads.
# The template takes a row's groups apart in fours (two tl.split of a (..., 2, 2) reshape), so
# WORD_GROUPS is 4, and a word is 4 bytes (the int32 stores).
WORD_GROUPS = 4
WORD_BYTES = 4


def _word_stores(layout: PackLayout) -> tuple[str, ...] | None:
    """The int32 words that hold WORD_GROUPS byte groups, as expressions of their group words g0, g1, ...
    (first byte highest), in memory order: word w holds bytes 4w .. 4w+3, the first in its low 8 bits
    (little-endian, as the GPU and the CPU store an int32). None where a group is one byte or a row's
    groups do not come in WORD_GROUPS."""
    span = WORD_GROUPS * layout.bytes_per_group
    if layout.bytes_per_group == 1 or layout.groups % WORD_GROUPS or span % WORD_BYTES:
        return None
    top = layout.byte_shift(0)  # a group word's first byte needs no mask once shifted down
    words = []
    for w in range(span // WORD_BYTES):
        terms = []
        for d in range(WORD_BYTES):
            group, index = divmod(WORD_BYTES * w + d, layout.bytes_per_group)
            g, s, to = f"g{group}", layout.byte_shift(index), 8 * d
            if to == 8 * (WORD_BYTES - 1):  # the top byte: shifted up, the bits above it fall off
                terms.append(f"({g} << {to})" if s == 0 else f"(({g} >> {s}) << {to})" if s == top
                             else f"((({g} >> {s}) & 0xFF) << {to})")
            elif s == top and to == 0:
                terms.append(f"({g} >> {s})")
            else:
                moved = g if s == to else f"({g} >> {s - to})" if s > to else f"({g} << {to - s})"
                terms.append(f"({moved} & {0xFF << to:#X})".replace("0X", "0x"))
        words.append(" | ".join(terms))
    return tuple(words)


# Where a byte group is several bytes (3 bits), `_load_words` can read a group's bytes as neighbours of one
# (rows, groups, 4) load instead of one (rows, groups) load a byte, whose lanes Triton spreads over rows.
# Measured on an H100 (tq3, 1M fp16 rows, shipped configs, benchmarks/experiments/tq3_byte_loads.py),
# along the row against a byte a load: decompress D=128 169.0 against 181.9 µs, D=64 74.2 against 79.6,
# but D=96 (in pieces) 131.9 against 127.0 and D=256 640.0 against 618.1; decompress_rotated D=256 235.9
# against 251.0, but D=64 79.2 against 60.3, D=96 93.6 against 88.2, D=128 116.5 both; in `kernelgen bench`
# after re-tuning, D=192 (whose 24 groups fill 32 of the tile) 183.2 µs (88.0% of copy) against 172.1
# (93.2%, benchmarks/h100-tq3-words-192.md) with a byte a load. So: decompress of rows that fit one step
# without pieces, and decompress_rotated of rows wider than ROW_CHUNK whose groups fill the tile.
def _row_loads(layout: PackLayout, pieces) -> dict[str, bool] | None:
    """Which kernels load their byte groups along the row (see above); None where a group is one byte."""
    if layout.bytes_per_group == 1:
        return None
    return {"decompress": pieces is None and layout.dim_pad <= ROW_CHUNK,
            "rotated": layout.dim_pad > ROW_CHUNK and layout.groups == layout.slot_pad}


# Decompress gathers the centroids of two neighbouring codes at once (a 4^bits-entry table of int32 words of
# two fp16; fp16 products only) where a byte group holds this many codes and a row is at most ROW_CHUNK:
# measured on an H100, 1M rows, three rounds (benchmarks/experiments/pair_table_tq3.py): tq3 D=128 B64 w4
# 161.0-162.6 against 173.4-175.0 µs, D=96 127.5-127.8 against 130.3-130.5, D=64 74.7-75.0 against 76.3-76.6,
# outputs equal. Decompress there was L1-bound on its gathers (benchmarks/experiments/h100-ncu-decompress.txt).
# Rows padded to 256 were not measured.
PAIR_CENTROIDS_CODES_PER_GROUP = 8


def _pair_centroids(layout: PackLayout) -> bool:
    """Whether a module's decompress gathers centroid pairs (PAIR_CENTROIDS_CODES_PER_GROUP)."""
    return layout.codes_per_group == PAIR_CENTROIDS_CODES_PER_GROUP and layout.dim_pad <= ROW_CHUNK


# tq4 and tq2 compress of rows padded to 256 on the TMA loop, fp16 rows into the product as they are
# (RAW_PRODUCT): one product of N=DIM_PAD a block against the slots joined once a program (tl.join in
# registers, so the slots' loads stay as they are; for tq2 in an order that puts a group's four codes in one
# thread of the accumulator), the accumulator split into the slots, instead of one product a slot. With 8
# warps each warpgroup then takes 64x128x16 steps instead of 64x64x16 (tq2: 64x32x16), the rows read from
# shared memory by two products instead of four (tq2: eight).
# Measured on an H100, tq4 D=256, 1M fp16 rows, in the script's own copy of the loop
# (benchmarks/experiments/one_product_d256.py): 345.9-352.2 µs against 365.9-380.3 for its two slots. A
# first try in the template, which gathered the joined columns from the slots tensor (two-byte loads),
# ran slower (h100-one_product_d256-registry.md). In the template, with the tables tuned again,
# `kernelgen bench` (benchmarks/h100-joined-product.md): tq4 D=256 345.9-349.9 µs (64.3-65.0% of copy)
# against 361.7-371.8 in runs K and L, tq2 D=256 294.2-296.1 (68.4-68.9%) against 356.1-369.4 in runs K to M.
JOINED_PRODUCT_CODES_PER_GROUP = (2, 4)


def _whole_rotation(layout: PackLayout) -> bool:
    """Rows padded past ROW_CHUNK whose whole rotation fits shared memory (WHOLE_ROTATION_MAX_DIM)."""
    return ROW_CHUNK < layout.dim_pad <= WHOLE_ROTATION_MAX_DIM


def _joined_product(layout: PackLayout, fp16_search: bool, tma_rows: bool, tma_k) -> bool:
    """Whether a module's TMA compress takes the joined product (JOINED_PRODUCT_CODES_PER_GROUP): rows
    whose whole rotation is in shared memory (_whole_rotation), read in one box (no TMA_K pieces), with the
    fp16 search."""
    return (layout.codes_per_group in JOINED_PRODUCT_CODES_PER_GROUP and fp16_search and tma_rows and not tma_k
            and _whole_rotation(layout))


def _coordinate_compress(layout: PackLayout) -> bool:
    """Whether a module's compress takes the coordinate-order form (COORDINATE_COMPRESS_CODES_PER_GROUP):
    rows that fit one product step, or rows padded past it whose rotation fits shared memory and that the
    head dim fills (tq3 D=256) or that are read in pieces (_wide_pieces: tq3 D=192)."""
    if layout.codes_per_group != COORDINATE_COMPRESS_CODES_PER_GROUP:
        return False
    return layout.dim_pad <= ROW_CHUNK or (layout.dim_pad <= WHOLE_ROTATION_MAX_DIM
                                           and (layout.head_dim == layout.dim_pad or _wide_pieces(layout)))


def _tma_rows(layout: PackLayout, fp16_search: bool, coordinate: bool) -> bool:
    """Whether a module's compress may read its rows by TMA (the registry decides when:
    registry.TMA_COMPRESS), in the forms measured faster on an H100: with the fp16 search (tq4, tq2) or in
    coordinate order (tq3), a row in one product step (benchmarks/h100-tma.md, h100-tq3-tma.md) or padded
    past ROW_CHUNK with the whole rotation in shared memory (benchmarks/h100-wide-tma.md, h100-raw-flag.md;
    D=192 read in pieces: _tma_k). The slot form of 8 codes a group, which wide rows take where the head
    dim neither fills its padding nor cuts into WIDE_TMA_K pieces (_coordinate_compress), keeps the
    pointer loads: at tq3 D=256 it was slower by TMA (741.3-760.9 against 565.8-580.0 µs at 1M fp16 rows,
    B64 w8, benchmarks/experiments/wide_tma_forms.py)."""
    if layout.dim_pad <= ROW_CHUNK:
        return fp16_search or coordinate
    return layout.dim_pad <= WHOLE_ROTATION_MAX_DIM and (fp16_search or coordinate)


# Compress by TMA of a head dim cut in pieces (see MIN_PIECE) reads each row block in boxes of MIN_PIECE
# columns and takes its products in as many steps, instead of one box padded to DIM_PAD:
# measured on an H100, tq4 D=96, 1M fp16 rows, B64 w4, three rounds (benchmarks/experiments/
# pieces_compress_d96.py): 111.6-112.0 µs against 125.2-125.9 (3 programs an SM; at 2, 123.7-125.0). Cutting
# the slots' columns as well (48 of 64 real) gave no more (112.1-113.8 µs); not taken. With tables tuned
# for it, `kernelgen bench` put tq4 D=96 at 122.6 -> 110.6 µs and tq2 D=96 at 106.4 -> 93.9 µs
# (benchmarks/h100-raw-product.md). tq3's coordinate-order compress at D=96 as well (pieces of its
# transposed rotation's rows; benchmarks/experiments/pieces_programs_d96.py, B64 w4, three rounds): fp16
# 111.1-111.9 µs (4 programs an SM) against 122.7-123.4 in one box, bf16 117.5-118.2 (3 an SM) against
# 141.7-144.2 (2).
# Compress by TMA of rows padded past ROW_CHUNK whose head dim is short of the padding (D=192 of 256) reads
# each row block in boxes of WIDE_TMA_K columns, as many as the head dim holds, instead of one box of 256
# with 64 columns of zeros; with the slots in as many pieces it needs less shared memory, which lets
# 128-row blocks fit. Measured on an H100, 1M fp16 rows, in one device call
# (benchmarks/experiments/wide_tma_forms.py and `kernelgen bench` after tuning, benchmarks/h100-wide-tma.md):
# tq4 D=192 305.3 µs in pieces (B128 w8) against 362.0-370.3 in one box (B64 w8; B128 does not fit), tq2
# 227.8 against 344.3-354.8, tq3 443.5 in pieces against 536.6-538.0 by pointer loads.
WIDE_TMA_K = 64
# Compress by TMA of rows of ROW_CHUNK dims (D=128) reads each row block in boxes of ROW_TMA_K columns and
# takes its products in as many steps, instead of one box of 128. bf16 rows are normalized before the
# product and reach the wgmma through a shared-memory buffer that Triton allocates for the conversion to the
# operand layout: a piece's (8 KB) instead of the whole tile's (16 KB), 73,744 bytes a program instead of
# 81,936 (compiled for sm_90), so an SM holds 3 programs (registry.TMA_COMPRESS). Measured on an H100, 1M
# rows, B64 w4, 3 stages, three rounds (benchmarks/experiments/bf16_pieces_d128.py): bf16 at 3 programs an
# SM, tq4 137.5-138.0 µs against 144.4-147.5 in one box at 2, tq2 117.3-117.8 against 124.3-128.7, tq3
# 132.2-135.2 against 144.9-147.2; fp16 (the raw product, 3 an SM either way) no slower, tq4 131.5-143.7
# against 132.3-143.9, tq2 114.3-128.1 against 114.9-127.6, tq3 124.0-134.0 against 126.7-134.5. Boxes of
# 32 columns were slower (tq4 bf16 140.1-141.3, fp16 135.2-135.6).
ROW_TMA_K = 64


def _wide_pieces(layout: PackLayout) -> bool:
    """Whether rows padded past ROW_CHUNK cut into WIDE_TMA_K pieces short of their padding (above)."""
    return ROW_CHUNK < layout.dim_pad and layout.head_dim != layout.dim_pad and layout.head_dim % WIDE_TMA_K == 0


def _tma_k(tma_rows: bool, pieces, layout: PackLayout) -> int | None:
    """The columns of a TMA box where compress reads its rows in pieces (above: a head dim cut in pieces,
    D=128, and rows padded to 256 short of their padding), else None."""
    if not tma_rows:
        return None
    if layout.dim_pad > ROW_CHUNK:
        return WIDE_TMA_K if _wide_pieces(layout) else None
    if layout.head_dim == ROW_CHUNK:
        return ROW_TMA_K
    return MIN_PIECE if pieces is not None else None


def _decompress_pieces(head_dim: int) -> tuple[tuple[int, int], ...] | None:
    """(first dim, width) of each piece of a head dim cut into two powers of two >= MIN_PIECE, the
    larger first; None where the head dim is a power of two or cuts otherwise."""
    high = 1 << (head_dim.bit_length() - 1)
    low = head_dim - high
    if head_dim > ROW_CHUNK or low < MIN_PIECE or low & (low - 1):
        return None
    return ((0, high), (high, low))


# Decompress of rows padded to 256 (D=192 and 256) and of rows of 128 and 96 dims gets a second kernel, in
# Gluon, for Hopper GPUs (the registry's WS_DECOMPRESS_FROM rule launches it): one program an SM holds the
# rotation (128 or 32 KB of fp16) in shared memory; two or more warpgroups, each its own partition, take
# turns at the row blocks (WS_DECOMPRESS_PARTS below): one gathers a block's centroids straight into the
# product's register operand while another's product runs, and each stores its output by TMA. One-byte
# groups (tq4, tq2) come by TMA into a ring that a one-warp partition fills, except tq2's 24-byte rows at
# D=96; those and 3-byte groups (tq3) come by pointer loads of 8-byte words (4-byte for tq3 at D=128 and
# 96: PackLayout.quarter_word_bytes) one block ahead, each thread a quarter of a row, the operand's columns
# in the order that puts them there (layout.PackLayout.quarter_group_order). Code j of every group
# multiplies the rotation's rows j, j + g, ... (g codes a group), so the slots are never joined
# back into coordinate order. The modules then import Gluon, as Triton 3.6 has it (pyproject's floor).
# Measured on an H100, tq4 D=256, 1M fp16 rows (benchmarks/experiments/ws_d256.py, three rounds):
# 264.6-268.1 µs (85.0% of copy) against 546.1-564.6 for the Triton kernel; outputs as close to the fp32
# path (max |error| 3.1e-3 both). The same structure for compress, partitions of 4 warps, ran slower than
# its Triton kernel (414.1 against 352.4 µs; with 8 warps a partition it runs faster: WS_COMPRESS_DIM_PAD
# below). tq3 D=256 with a byte a load: 325.2 µs against 631.3
# (experiments/ws_decompress_sizes.py); its bytes through a loader partition ran slower, 435.2 µs
# (experiments/ws_tq3_planes.py); by words one block ahead 271.1-271.9 µs against 322.3-340.3 a byte a
# load, D=192 238.7-238.8 against 273.3-276.4 (experiments/ws_tq3_words.py; words loaded in the same
# block: 308.8 at D=256, 275.6 at D=192). At D=128, 1M rows, three rounds, against the Triton kernel at its
# tuned config (experiments/ws_decompress_d128.py): tq4 fp16 135.5-135.6 µs against 148.4-155.3, tq3
# 149.0-150.1 against 157.6-158.6, tq2 124.0-124.7 against 147.9-148.6; bf16 output tq4 136.1-136.5 against
# 146.6-156.0, tq3 150.2-151.5 against 159.7-161.4, tq2 125.2-126.8 against 149.0-154.1; two programs an SM
# were slower than one (tq4 fp16 139.2-139.8). At D=96, 1M rows (experiments/h100-ws_decompress_sizes-d96.txt,
# the tables tuned for it): tq4 fp16 107.1 µs against 124.5, bf16 106.6 against 124.8 (at 65,536 rows
# slower: registry.WS_DECOMPRESS_PADDED_128_FROM); tq3 128.8 against 127.7 with two partitions, faster with
# three (WS_DECOMPRESS_PARTS). D=80 and 112 keep the Triton kernel: not measured.
WS_DECOMPRESS_DIM_PAD = 256
WS_DECOMPRESS_HEAD_DIMS = {128: (1, 3), 96: (1, 3)}  # rows padded to 128: head dim -> bytes a group that take it
# Compute partitions a program (one warpgroup each), registers a thread of each but the first (which takes
# what is left), whether a block's products are issued asynchronously and waited for once, and whether
# 3-bit codes are gathered two groups at a time from the pair table (CENTROID_PAIRS: one 4-byte gather,
# already the operand's two fp16 of a thread, for two 2-byte ones), by head dim and how the packed bytes
# come (TMA into a ring, or pointer loads of one-byte or 3-byte groups); two partitions (WS_DECOMPRESS_TWO)
# where this does not list it. With two, a block's latency, not memory, bounded the kernel at D<=128 (tq3
# D=96 ran no faster than its Triton kernel); more take turns. Measured on an H100, 1M fp16 rows
# (benchmarks/experiments/ws_decompress_parts.py, three rounds; benchmarks/h100-ws-parts.md): tq3 D=96 four
# partitions, asynchronous, in pairs 98.2-99.1 µs against 106.1-106.6 with three, 110.6-116.9 with three
# one code a gather, 131.1-131.7 with two and 125.1-130.0 for the Triton kernel; tq3 D=128 three in pairs
# 127.8-128.6 against 129.3-130.3 with four, 132.6-137.1 one code a gather and 147.6-153.2 with two; tq4
# D=96 three 100.7-103.4 against 106.4-109.9 with two; tq2 D=96 (24 packed bytes a row, no TMA box:
# pointer loads) four 95.3-97.2 against 104.4-106.4 with three and 119.5-124.3 for its Triton kernel. tq4
# and tq2 at D=128 keep two: with three, tq4 135.1-142.4 against 135.5-136.6, tq2 123.9-124.4 against
# 123.0-123.5, and tq4 140.5 in run V's dims table against 133.7 with two in run W's. With the ring's
# loader four partitions spill registers (compiled for sm_90); tq2's four ran slower asynchronously
# (104.0-104.9 µs).
WS_DECOMPRESS_TWO = (2, 232, False, False)
WS_DECOMPRESS_PARTS = {  # (head dim, one-byte groups by TMA, bytes a group) -> (partitions, registers, async, pairs)
    (96, True, 1): (3, 160, False, False), (96, False, 1): (4, 128, False, False),
    (96, False, 3): (4, 128, True, True), (128, False, 3): (3, 160, True, True),
}


def _ws_decompress(layout: PackLayout, precisions: dict[str, str]) -> bool:
    """Whether the module gets the warp-specialized decompress (above): rows padded to
    WS_DECOMPRESS_DIM_PAD, or a head dim and group width WS_DECOMPRESS_HEAD_DIMS lists, fp16 products for
    some 16-bit dtype, output rows TMA can store (a multiple of 16 bytes), and packed rows that come by TMA
    (one-byte groups in rows of a multiple of 16 bytes), 3-byte groups (by pointers) or a form
    WS_DECOMPRESS_PARTS lists (tq2's rows of 24 bytes at D=96, by pointers)."""
    listed = layout.bytes_per_group in WS_DECOMPRESS_HEAD_DIMS.get(layout.head_dim, ())
    by_tma, key = _ws_decompress_key(layout)
    return ((layout.dim_pad == WS_DECOMPRESS_DIM_PAD or listed)
            and layout.head_dim % 8 == 0
            and any(precisions.get(d) == "fp16" for d in ("float16", "bfloat16"))
            and (by_tma or layout.bytes_per_group > 1 or key in WS_DECOMPRESS_PARTS))


def _ws_decompress_key(layout: PackLayout) -> tuple[bool, tuple[int, bool, int]]:
    """Whether the packed rows come by TMA (one-byte groups in rows of a multiple of 16 bytes; else by
    pointer loads of a quarter of a row a thread), and the module's WS_DECOMPRESS_PARTS key."""
    by_tma = layout.bytes_per_group == 1 and layout.packed_dim % 16 == 0
    return by_tma, (layout.head_dim, by_tma, layout.bytes_per_group)


def _ws_decompress_form(layout: PackLayout) -> tuple[int, int, bool, bool]:
    """(partitions, registers, async, pairs) of the module's warp-specialized decompress; pairs only where
    the Triton decompress takes the pair table (_pair_centroids), which the kernel is then handed, and the
    groups come by pointer loads (the pairs are made from a quarter's group words)."""
    by_tma, key = _ws_decompress_key(layout)
    parts, registers, issued, pairs = WS_DECOMPRESS_PARTS.get(key, WS_DECOMPRESS_TWO)
    return parts, registers, issued, pairs and _pair_centroids(layout) and not by_tma


# Compress of 16-bit rows at D=256 gets a second kernel, in Gluon, for Hopper GPUs (the registry's
# WS_COMPRESS_FROM rule launches it), where the Triton kernel takes one product a block: the joined product
# (tq4, tq2) or the coordinate-order product in lane-group order (tq3). One program an SM holds that
# product's rotation in shared memory; two compute partitions of 8 warps each (two warpgroups, each half of
# the columns) take alternate row blocks and turns at the tensor cores, so that one's product runs while
# the other searches (the Triton kernel waits for each product as it is issued, every warp in lockstep:
# Nsight Compute put its tensor pipe at 39.7% and its issue slots at 43.9% of the cycles,
# experiments/h100-ncu-compress-d256.txt). Measured on an H100, 1M fp16 rows, three rounds: tq4 D=256
# 290.4-298.8 µs (78.0% of copy) against 343.5-373.1, without the turns 312.9-328.8
# (experiments/ws_compress_groups_d256.py); tq3 D=256 287.7-296.2 against 392.5-397.2
# (experiments/ws_compress_tq3_d256.py); bf16 rows, normalized in their row buffer first, tq4 291.8-292.3
# against 408.2-411.6 (experiments/h100-ws_compress_sizes-bf16-once.txt). Two partitions of 4 warps each
# ran slower than the Triton kernel (ws_d256.py: 414.1 against 352.4): a lone warp a scheduler searches too
# slowly; so did this kernel at D=128 (ws_compress_d128.py: 143.8 against 134.0 for tq4 fp16 rows).
WS_COMPRESS_DIM_PAD = 256


def _ws_compress(layout: PackLayout, precisions: dict[str, str], joined: bool, lane_groups: bool,
                 ws_decompress: bool) -> bool:
    """Whether the module gets the warp-specialized compress (above): rows of WS_COMPRESS_DIM_PAD with fp16
    products for 16-bit rows (as the spec's fp16 dtype says), where the Triton kernel takes the joined
    product (_joined_product: one-byte groups, stored by TMA) or the coordinate-order product in lane-group
    order of unpadded rows (their groups' words stored whole), beside the warp-specialized decompress (its
    block size and loader)."""
    if not ws_decompress or layout.dim_pad != WS_COMPRESS_DIM_PAD or precisions.get("float16") != "fp16":
        return False
    if joined:
        return layout.bytes_per_group == 1
    return lane_groups and layout.head_dim == layout.dim_pad and layout.bytes_per_group == 3


def spec_display_path(spec: Spec, root: Path) -> str:
    """The spec's path as headers write it: relative to `root`, the folder that holds generated/,
    so the output does not depend on the working folder of the build."""
    try:
        return Path(os.path.relpath(Path(spec.source).resolve(), Path(root).resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(spec.source).name


@dataclass(frozen=True)
class RenderedFile:
    name: str
    data: bytes


def render_spec(spec: Spec, root: Path) -> list[RenderedFile]:
    """All files of one spec's folder, in memory; the manifest comes last."""
    env = _environment()
    template = env.get_template("variant.py.j2")
    spec_path = spec_display_path(spec, root)
    files: list[RenderedFile] = []
    entries = []
    for head_dim in spec.head_dims:
        layout = PackLayout(spec.bits, head_dim)
        codebook = lloyd_max(spec.bits, head_dim, spec.codebook)
        rotation = haar_rotation(head_dim, spec.rotation.seed)
        rotation_bytes = rotation.numpy().astype("<f4").tobytes()
        names = kernel_names(spec, head_dim)
        coordinate = _coordinate_compress(layout)
        fp16 = None if coordinate else _fp16_search(codebook.boundaries, layout)
        lane_groups = coordinate and layout.dim_pad in LANE_GROUP_DIM_PADS
        whole = _whole_rotation(layout)
        pieces = _decompress_pieces(head_dim)
        tma_rows = _tma_rows(layout, fp16 is not None, coordinate)
        tma_k = _tma_k(tma_rows, pieces, layout)
        precisions = {d: spec.rotation.precision_for(d) for d in spec.dtypes}
        joined = _joined_product(layout, fp16 is not None, tma_rows, tma_k)
        ws_decompress = _ws_decompress(layout, precisions)
        source = template.render(
            version=__version__, spec=spec, spec_path=spec_path, spec_hash=spec.digest(),
            layout=layout, codebook=codebook, names=names,
            configs=spec.autotune.configs(), k_chunk=min(K_CHUNK, layout.dim_pad),
            row_chunk=layout.dim_pad if layout.dim_pad <= ROW_CHUNK else WIDE_ROW_CHUNK,
            out_chunk=min(OUT_CHUNK, layout.dim_pad), search=_magnitude_search(codebook.boundaries, spec.bits),
            half=1 << (spec.bits - 1), word_offset=_word_offset(layout),
            fp16_search=fp16, fp16_levels=fp16 and _magnitude_search(fp16.symmetric_boundaries, spec.bits),
            coordinate_compress=coordinate, whole_rotation=whole, lane_groups=lane_groups,
            groups_per_lane=lane_groups and layout.dim_pad // (4 * layout.codes_per_group),
            pieces=pieces, row_loads=_row_loads(layout, pieces),
            tma_rows=tma_rows, tma_k=tma_k, tma_k_steps=tma_k and head_dim // tma_k,
            joined_product=joined,
            pair_centroids=_pair_centroids(layout),
            word_stores=_word_stores(layout), word_groups=layout.dim_pad // layout.codes_per_group if coordinate
            else layout.slot_pad,
            precision=repr(precisions), ws_decompress=ws_decompress,
            ws_parts=ws_decompress and _ws_decompress_form(layout),
            ws_by_tma=_ws_decompress_key(layout)[0],
            ws_compress=_ws_compress(layout, precisions, joined, lane_groups, ws_decompress),
            interleave=_interleave([f"v{j}" for j in range(layout.codes_per_group)]),
            tune_key='["ROW_BUCKET"]' if spec.autotune.key == "row_bucket" else "[]",
        )
        module = f"{spec.name}_d{head_dim}.py"
        rot_file = f"{spec.name}_d{head_dim}.rotation.f32"
        files += [RenderedFile(module, source.encode()), RenderedFile(rot_file, rotation_bytes)]
        entries.append(VariantEntry(
            head_dim=head_dim, module=module, module_sha256=sha256(source.encode()), rotation=rot_file,
            constants_sha256=constants_digest(rotation_bytes, codebook.centroids, codebook.boundaries),
            kernels=names))
    manifest = Manifest(spec_name=spec.name, spec_path=spec_path, spec_sha256=spec.digest(),
                        generator_version=__version__, bits=spec.bits, dtypes=spec.dtypes,
                        variants=tuple(entries))
    files.append(RenderedFile(MANIFEST_NAME, manifest.to_json().encode()))
    return files


@dataclass
class BuildPlan:
    folder: Path
    files: list[RenderedFile]
    changed: list[Path]  # files that would be written because they differ or are missing
    stale: list[Path]  # files of the folder the spec no longer produces


def plan_build(spec: Spec, out_dir: Path) -> BuildPlan:
    folder = Path(out_dir) / spec.name
    files = render_spec(spec, Path(out_dir).resolve().parent)
    changed = [folder / f.name for f in files
               if not (folder / f.name).is_file() or (folder / f.name).read_bytes() != f.data]
    wanted = {f.name for f in files}
    stale = sorted(p for p in folder.iterdir() if p.is_file() and p.name not in wanted) if folder.is_dir() else []
    return BuildPlan(folder, files, changed, stale)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a temporary file beside `path`, then rename it over `path`: never a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; generated files are ordinary files
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply_build(plan: BuildPlan) -> None:
    """Write what changed (manifest last, so it never names a file not yet written), drop stale files."""
    plan.folder.mkdir(parents=True, exist_ok=True)
    changed = set(plan.changed)
    for rendered in plan.files:  # the manifest is the last entry of plan.files
        path = plan.folder / rendered.name
        if path in changed:
            _write_atomic(path, rendered.data)
    for path in plan.stale:
        path.unlink()
