"""kernelgen: autotuned, generated Triton kernels for TurboQuant-style KV-cache quantization.

    import kernelgen
    q = kernelgen.quantizer("tq4", 128)
    packed, norms = q.compress(x)           # x: (..., 128) fp16/bf16/fp32
    y = q.decompress(packed, norms)         # (..., 128) fp16, original space
"""

__version__ = "0.1.0"

from .registry import add_kernel_path, available, kernel_paths  # noqa: E402
from .quantizer import Quantizer, quantizer  # noqa: E402
from .kv import KVPair, kv_pair  # noqa: E402
from .spec import SpecError  # noqa: E402

__all__ = ["Quantizer", "quantizer", "KVPair", "kv_pair", "add_kernel_path", "available", "kernel_paths",
           "SpecError", "__version__"]
