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
