"""The stored format and the kernel tile geometry of one (bits, head dim) pair.

Stored format: a row's codes form one MSB-first bit stream, D*bits/8 bytes.
For 4 bits that is byte j = code[2j] << 4 | code[2j+1] (even coordinate in the
high nibble, turboquant-vllm's layout); for 2 bits four codes a byte; for 3 bits
eight codes in three bytes. Padding of non-power-of-two head dims exists only
inside the kernels, never in this format.

Split: a byte group holds `codes_per_group` consecutive codes. Slot j of every
group is the code of coordinate g*k + j, so the rotation's rows are split into
`codes_per_group` strided slots; each slot's product gives one code of every
group, and a group packs with shifts and ors, without any interleave.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_HEAD_DIM = 16
MAX_HEAD_DIM = 512
MIN_DOT_WIDTH = 16  # tl.dot needs every tile dimension to be at least 16


class LayoutError(ValueError):
    pass


def next_pow2(value: int) -> int:
    return 1 << max(0, value - 1).bit_length()


@dataclass(frozen=True)
class PackLayout:
    bits: int
    head_dim: int

    def __post_init__(self):
        if self.head_dim % self.codes_per_group:
            raise LayoutError(
                f"head_dim*bits = {self.head_dim * self.bits} is not a multiple of 8: a packed row must be "
                f"whole bytes, so with {self.bits} bits the head dim must be a multiple of "
                f"{self.codes_per_group}")

    @property
    def codes_per_group(self) -> int:
        """Codes in the smallest whole-byte group (2 for 4 bits, 4 for 2 bits, 8 for 3 bits)."""
        return 8 // math.gcd(8, self.bits)

    @property
    def bytes_per_group(self) -> int:
        return self.bits * self.codes_per_group // 8

    @property
    def groups(self) -> int:
        """Byte groups per row, which is also the width of each rotation slot."""
        return self.head_dim // self.codes_per_group

    @property
    def packed_dim(self) -> int:
        return self.head_dim * self.bits // 8

    @property
    def levels(self) -> int:
        return 1 << self.bits

    @property
    def dim_pad(self) -> int:
        return max(MIN_DOT_WIDTH, next_pow2(self.head_dim))

    @property
    def slot_pad(self) -> int:
        return max(MIN_DOT_WIDTH, next_pow2(self.groups))

    @property
    def is_pow2(self) -> bool:
        return self.dim_pad == self.head_dim and self.slot_pad == self.groups

    def code_shift(self, slot: int) -> int:
        """Left shift of slot `slot`'s code inside its group word (first code highest)."""
        return self.bits * (self.codes_per_group - 1 - slot)

    def byte_shift(self, index: int) -> int:
        """Right shift that brings byte `index` of a group word to the low 8 bits."""
        return 8 * (self.bytes_per_group - 1 - index)

    def lane_group_columns(self) -> list[int]:
        """The coordinate each column of compress's transposed rotation holds in lane-group order (where
        render picks it for a coordinate-order compress): column p = 4g*a + 8b + 2q + e holds coordinate
        g*(G*q + a) + 2b + e, with g codes a group and G = DIM_PAD / (4g) groups a lane.

        Why: the accumulator of an NVIDIA MMA (mma.sync and wgmma alike) gives lane q (0..3) of each
        quad of lanes columns 8c + 2q and 8c + 2q + 1 of every 8-column chunk c of a row. In this order,
        chunks g/2 * a .. g/2 * a + g/2 - 1 of lane q hold group G*q + a whole, so each group's codes
        are summed into its word inside one thread, with no shuffles; the kernel's reshape takes the
        columns as [a, b, q, e] and the groups come out in order as [q, a]. Needs g even and DIM_PAD a
        multiple of 4g."""
        g, pad = self.codes_per_group, self.dim_pad
        if g % 2 or pad % (4 * g):
            raise LayoutError(f"lane-group columns need an even group of codes and a row padded to a multiple "
                              f"of {4 * g}: {g} codes a group, {pad} dims")
        per_lane = pad // (4 * g)
        columns = []
        for p in range(pad):
            chunk, q, e = p // 8, (p // 2) % 4, p % 2
            a, b = divmod(chunk, g // 2)
            columns.append(g * (per_lane * q + a) + 2 * b + e)
        return columns

    @property
    def quarter_word_bytes(self) -> int:
        """Bytes a load where the Hopper decompress reads multi-byte groups by quarters of a row (see
        quarter_group_order): the largest of 8, 4, 2, 1 that divides the packed row and a quarter of the
        slot's groups, so that every load is aligned once the rows start on that many bytes and a quarter
        is whole words."""
        return math.gcd(self.packed_dim, self.slot_pad // 4 * self.bytes_per_group, 8)

    def quarter_group_order(self) -> tuple[int, ...]:
        """The byte group at each position k of a slot's SLOT_PAD columns where the Hopper decompress
        reads multi-byte groups by quarters of a row (the module's WS_GROUP_ORDER; its rotation pieces'
        rows follow it).

        Why: the register operand of a wgmma (fp16, m64nNk16) gives lane q (0..3) of each quad columns
        8i + 2q and 8i + 2q + 1 of every 8-column chunk i. With position 8i + 2q + h holding group
        (SLOT_PAD / 4) q + 2i + h, each thread holds the groups of one contiguous quarter of the
        packed row, which it loads as a few words, and no byte moves between threads. Needs SLOT_PAD a
        multiple of 8."""
        pad = self.slot_pad
        if pad % 8:
            raise LayoutError(f"quarter group order needs a slot padded to a multiple of 8: {pad}")
        return tuple((pad // 4) * ((k % 8) // 2) + 2 * (k // 8) + k % 2 for k in range(pad))

    def joined_columns(self) -> tuple[int, ...]:
        """The coordinate each column of compress's joined product holds (the modules with
        render._joined_product: 2 and 4 codes a group): with 2, column 2n + j is slot j of group n, which
        is coordinate 2n + j; with 4, column 16a + 8b + 2q + e is slot 2b + e of group 4a + q.

        Why: the accumulator of an NVIDIA MMA gives lane q (0..3) of each quad columns 8c + 2q and
        8c + 2q + 1 of every 8-column chunk c, so in this order each thread holds all codes of its groups
        and the slots split off the accumulator without moving data."""
        g = self.codes_per_group
        if g == 2:
            return tuple(range(self.dim_pad))
        if g != 4 or self.dim_pad % 16:
            raise LayoutError(f"the joined product takes 2 or 4 codes a group and rows padded to a multiple of 16: "
                              f"{g} codes a group, {self.dim_pad} dims")
        return tuple(16 * (c // 16) + 4 * ((c // 2) % 4) + 2 * ((c // 8) % 2) + c % 2 for c in range(self.dim_pad))
