"""An independent plain-PyTorch reference of both ops, in float64, for the tests.

It shares no code with kernelgen: packing goes through an explicit bit stream
(each code's bits, most significant first, eight to a byte) instead of the
library's shift-and-or words.
"""

import torch


def codes_of(x: torch.Tensor, rotation: torch.Tensor, boundaries: torch.Tensor):
    """(n, D) floats -> (rotated unit vectors (n, D) float64, codes (n, D) int64, norms (n,) float64)."""
    x = x.double()
    norms = torch.linalg.vector_norm(x, dim=1)
    y = (x / (norms[:, None] + 1e-10)) @ rotation.double().T
    # the symmetric rule: m = positive boundaries <= |y|; code half + m (sign bit clear) or half - 1 - m
    # (set), which is the number of boundaries <= y except for |y| exactly on a negative boundary and -0.0
    half = (boundaries.numel() + 1) // 2
    m = (y.abs()[..., None] >= boundaries.double()[half:]).sum(-1)
    codes = torch.where(torch.signbit(y), half - 1 - m, half + m)
    return y, codes, norms


def pack_bitstream(codes: torch.Tensor, bits: int) -> torch.Tensor:
    n, d = codes.shape
    stream = torch.stack([(codes >> (bits - 1 - i)) & 1 for i in range(bits)], dim=-1).reshape(n, d * bits)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.int64)
    return (stream.reshape(n, d * bits // 8, 8) * weights).sum(-1).to(torch.uint8)


def unpack_bitstream(packed: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    n = packed.shape[0]
    b = packed.to(torch.int64)
    stream = torch.stack([(b >> (7 - i)) & 1 for i in range(8)], dim=-1).reshape(n, -1)
    weights = torch.tensor([1 << (bits - 1 - i) for i in range(bits)], dtype=torch.int64)
    return (stream.reshape(n, dim, bits) * weights).sum(-1)


def compress(x, rotation, boundaries, bits):
    """-> (packed (n, D*bits/8) uint8, norms (n,) float64, codes, rotated values y)."""
    y, codes, norms = codes_of(x, rotation, boundaries)
    return pack_bitstream(codes, bits), norms, codes, y


def decompress(packed, norms, rotation, centroids, bits, dim, rotated, dtype):
    codes = unpack_bitstream(packed, bits, dim)
    if rotated:  # centroid * norm in fp32, then the cast: what turboquant-vllm computes
        return (centroids.float()[codes] * norms.float()[:, None]).to(dtype)
    values = centroids.double()[codes] * norms.double()[:, None]
    return values @ rotation.double()


# The kernels' promise on codes (see README, rotation.precision): with fp16 operands at most 0.2% of
# codes differ from an fp32 computation, with fp32 operands (tf32x3, ieee) at most 0.1%.
FP16_CODE_FLIP_FRACTION = 2e-3
FP32_CODE_FLIP_FRACTION = 1e-3


def max_code_flips(precision: str, n_codes: int) -> int:
    """How many of n_codes codes may differ: the promised fraction of them, plus a Poisson upper tail
    (four standard deviations and 3) so that small samples of a kernel that keeps the promise do not
    fail by chance; each flip is checked on its own as well (adjacent code, near a boundary)."""
    expected = (FP16_CODE_FLIP_FRACTION if precision == "fp16" else FP32_CODE_FLIP_FRACTION) * n_codes
    return int(expected + 4 * expected ** 0.5 + 3)
