"""The same two ops in plain PyTorch, for tensors on a CPU without the Triton interpreter.

Shares the stored format with the kernels (kernelgen.layout) and is checked against
them and against the tests' independent reference.
"""

from __future__ import annotations

import torch

from .layout import PackLayout

NORM_EPS = 1e-10


def pack_codes(codes: torch.Tensor, layout: PackLayout) -> torch.Tensor:
    """(n, D) integer codes -> (n, D*bits/8) uint8, one MSB-first bit stream a row."""
    g = layout.codes_per_group
    slots = codes.to(torch.int64).reshape(codes.shape[0], layout.groups, g)
    word = torch.zeros(slots.shape[:2], dtype=torch.int64, device=codes.device)
    for j in range(g):
        word |= slots[..., j] << layout.code_shift(j)
    parts = [(word >> layout.byte_shift(t)) & 0xFF for t in range(layout.bytes_per_group)]
    return torch.stack(parts, dim=-1).reshape(codes.shape[0], layout.packed_dim).to(torch.uint8)


def unpack_codes(packed: torch.Tensor, layout: PackLayout) -> torch.Tensor:
    """(n, D*bits/8) uint8 -> (n, D) int64 codes."""
    parts = packed.to(torch.int64).reshape(packed.shape[0], layout.groups, layout.bytes_per_group)
    word = torch.zeros(parts.shape[:2], dtype=torch.int64, device=packed.device)
    for t in range(layout.bytes_per_group):
        word |= parts[..., t] << layout.byte_shift(t)
    codes = [(word >> layout.code_shift(j)) & (layout.levels - 1) for j in range(layout.codes_per_group)]
    return torch.stack(codes, dim=-1).reshape(packed.shape[0], layout.head_dim)


def codes_of(rotated: torch.Tensor, boundaries: torch.Tensor) -> torch.Tensor:
    """The code of each value, as the kernels find it: m = number of positive boundaries <= |y|, then
    code half + m where y's sign bit is clear and half - 1 - m where it is set (half = 2^(bits-1); the
    codebook is symmetric). That is the number of boundaries <= y, except on ties: exactly on a negative
    boundary the code farther from zero, and at y = -0.0 the code below the middle boundary."""
    half = (boundaries.numel() + 1) // 2
    m = torch.bucketize(rotated.abs(), boundaries[half:], right=True)
    return torch.where(torch.signbit(rotated), half - 1 - m, half + m)


def compress_rows(rows: torch.Tensor, rotation: torch.Tensor, boundaries: torch.Tensor,
                  layout: PackLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, D) float rows -> ((n, P) uint8 packed, (n,) fp32 norms)."""
    x = rows.to(torch.float32)
    norms = torch.sqrt((x * x).sum(dim=1))
    rotated = (x / (norms[:, None] + NORM_EPS)) @ rotation.T
    codes = codes_of(rotated, boundaries)
    return pack_codes(codes, layout), norms


def decompress_rows(packed: torch.Tensor, norms: torch.Tensor, rotation: torch.Tensor,
                    centroids: torch.Tensor, layout: PackLayout, dtype: torch.dtype,
                    rotated: bool) -> torch.Tensor:
    """((n, P) uint8, (n,) fp32) -> (n, D) in `dtype`, rotated space or original space."""
    values = centroids[unpack_codes(packed, layout)]
    if rotated:
        return (values * norms[:, None]).to(dtype)
    return ((values @ rotation) * norms[:, None]).to(dtype)
