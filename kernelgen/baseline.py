"""The comparison point of `kernelgen bench`: the per-row algorithm of turboquant-vllm's hand-written
TQ4 kernels (turboquant_vllm.triton.tq4_compress, package 1.5.0), written here from its description,
not from its code.

One program per row, no autotuning, no tensor cores. Compress loads the row, takes its norm,
and forms the even and odd rotated coordinates as sums of products over 32-column chunks of
the fp32 rotation on CUDA cores, then counts boundaries and packs two codes a byte.
Decompress (rotated space, as the seed's) looks the centroids up and scales them by the norm.
Only 4-bit codes with the even/odd split: that is the variant the seed implements.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

CHUNK = 32  # rotation columns per step, as the seed's compress


@triton.jit
def _compress_row(x_ptr, rotation_ptr, boundaries_ptr, packed_ptr, norms_ptr,
                  D: tl.constexpr, D_PAD: tl.constexpr, HALF_PAD: tl.constexpr, N_BOUNDARIES: tl.constexpr,
                  CHUNK: tl.constexpr):
    row = tl.program_id(0)
    dims = tl.arange(0, D_PAD)
    x = tl.load(x_ptr + row * D + dims, mask=dims < D, other=0.0).to(tl.float32)
    norm = tl.sqrt(tl.sum(x * x, axis=0))
    tl.store(norms_ptr + row, norm)
    inv = 1.0 / (norm + 1e-10)
    pairs = tl.arange(0, HALF_PAD)
    pair_ok = pairs < D // 2
    even = tl.zeros((HALF_PAD,), dtype=tl.float32)  # coordinate 2j: rotation row 2j
    odd = tl.zeros((HALF_PAD,), dtype=tl.float32)  # coordinate 2j + 1
    for k0 in range(0, D_PAD, CHUNK):
        cols = k0 + tl.arange(0, CHUNK)
        col_ok = cols < D
        xk = tl.load(x_ptr + row * D + cols, mask=col_ok, other=0.0).to(tl.float32) * inv
        ok = pair_ok[:, None] & col_ok[None, :]
        r_even = tl.load(rotation_ptr + (2 * pairs)[:, None] * D + cols[None, :], mask=ok, other=0.0)
        r_odd = tl.load(rotation_ptr + (2 * pairs + 1)[:, None] * D + cols[None, :], mask=ok, other=0.0)
        even += tl.sum(r_even * xk[None, :], axis=1)
        odd += tl.sum(r_odd * xk[None, :], axis=1)
    code_even = tl.zeros((HALF_PAD,), dtype=tl.int32)
    code_odd = tl.zeros((HALF_PAD,), dtype=tl.int32)
    for b in range(N_BOUNDARIES):  # a linear scan of the boundaries
        bound = tl.load(boundaries_ptr + b)
        code_even += (even >= bound).to(tl.int32)
        code_odd += (odd >= bound).to(tl.int32)
    tl.store(packed_ptr + row * (D // 2) + pairs, ((code_even << 4) | code_odd).to(tl.uint8), mask=pair_ok)


@triton.jit
def _decompress_row_rotated(packed_ptr, norms_ptr, centroids_ptr, out_ptr,
                            D: tl.constexpr, HALF_PAD: tl.constexpr):
    row = tl.program_id(0)
    pairs = tl.arange(0, HALF_PAD)
    pair_ok = pairs < D // 2
    byte = tl.load(packed_ptr + row * (D // 2) + pairs, mask=pair_ok, other=0).to(tl.int32)
    norm = tl.load(norms_ptr + row)
    even = tl.load(centroids_ptr + (byte >> 4)) * norm
    odd = tl.load(centroids_ptr + (byte & 15)) * norm
    tl.store(out_ptr + row * D + 2 * pairs, even.to(out_ptr.dtype.element_ty), mask=pair_ok)
    tl.store(out_ptr + row * D + 2 * pairs + 1, odd.to(out_ptr.dtype.element_ty), mask=pair_ok)


def supports(bits: int) -> bool:
    return bits == 4


def _pad(n: int) -> int:
    return max(CHUNK, triton.next_power_of_2(n))


def compress(x: torch.Tensor, rotation: torch.Tensor, boundaries: torch.Tensor, packed: torch.Tensor,
             norms: torch.Tensor) -> None:
    """(n, D) contiguous rows -> packed (n, D/2) uint8 and norms (n,) or (n, 1) fp32, in place."""
    n, d = x.shape
    if n:
        _compress_row[(n,)](x, rotation, boundaries, packed, norms, D=d, D_PAD=_pad(d),
                            HALF_PAD=triton.next_power_of_2(d // 2), N_BOUNDARIES=boundaries.numel(), CHUNK=CHUNK)


def decompress_rotated(packed: torch.Tensor, norms: torch.Tensor, centroids: torch.Tensor, out: torch.Tensor) -> None:
    """(packed (n, D/2) uint8, norms) -> out (n, D): centroid * norm in the rotated space, in place."""
    n, d = out.shape
    if n:
        _decompress_row_rotated[(n,)](packed, norms, centroids, out, D=d, HALF_PAD=triton.next_power_of_2(d // 2))
