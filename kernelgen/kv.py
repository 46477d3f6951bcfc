"""Keys and values with different specs (for example keys at 4 bits, values at 3).

    kv = kernelgen.kv_pair("tq4", "tq3", head_dim=128)
    (k_packed, k_norms), (v_packed, v_norms) = kv.compress(k, v)    # k, v: (tokens, kv_heads, 128)
    k_hat, v_hat = kv.decompress((k_packed, k_norms), (v_packed, v_norms))

Each side is an ordinary Quantizer (`kv.keys`, `kv.values`) with its own stored width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .quantizer import Quantizer, quantizer


@dataclass(frozen=True)
class KVPair:
    keys: Quantizer
    values: Quantizer

    def compress(self, k: torch.Tensor, v: torch.Tensor):
        """-> ((k_packed, k_norms), (v_packed, v_norms))."""
        if k.shape != v.shape:
            raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
        return self.keys.compress(k), self.values.compress(v)

    def decompress(self, k_codes, v_codes, *, dtype: torch.dtype = torch.float16, rotated: bool = False):
        """-> (k, v) in `dtype`; each codes argument is a (packed, norms) pair from `compress`."""
        return (self.keys.decompress(*k_codes, dtype=dtype, rotated=rotated),
                self.values.decompress(*v_codes, dtype=dtype, rotated=rotated))


def kv_pair(key_spec: str, value_spec: str, head_dim: int, device=None) -> KVPair:
    """Quantizers for keys and values of one head dim, each from its own spec."""
    return KVPair(quantizer(key_spec, head_dim, device), quantizer(value_spec, head_dim, device))
