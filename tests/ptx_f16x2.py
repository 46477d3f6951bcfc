"""A numpy interpreter for the few PTX instructions of the compress kernels' fp16 search (f16x2 pairs
in 32-bit registers), so CPU tests can run the exact PTX text a generated module holds."""

import numpy as np


def _halves(u):
    return np.stack([(u & 0xFFFF).astype(np.uint16).view(np.float16),
                     (u >> 16).astype(np.uint16).view(np.float16)]).astype(np.float64)


def _join(h):
    h = h.astype(np.float16)
    return h[0].view(np.uint16).astype(np.uint32) | (h[1].view(np.uint16).astype(np.uint32) << 16)


def run(ptx: str, inputs: list[np.ndarray]) -> np.ndarray:
    """$0 after running `ptx` with $1.. = `inputs` (uint32 arrays, two fp16 values each)."""
    regs = {f"${i + 1}": np.asarray(v, dtype=np.uint32) for i, v in enumerate(inputs)}
    shape = regs["$1"].shape

    def val(token):
        if token.startswith("0x"):
            return np.full(shape, int(token, 16), dtype=np.uint32)
        return regs[token]

    for line in ptx.splitlines():
        line = line.split("//")[0].strip()
        if not line or line in "{}" or line.startswith(".reg"):
            continue
        op, rest = line.split(None, 1)
        d, *args = [a.strip() for a in rest.rstrip(";").split(",")]
        if op == "mov.b32":
            regs[d] = val(args[0]).copy()
        elif op == "and.b32":
            regs[d] = val(args[0]) & val(args[1])
        elif op == "or.b32":
            regs[d] = val(args[0]) | val(args[1])
        elif op == "neg.f16x2":
            regs[d] = val(args[0]) ^ np.uint32(0x80008000)
        elif op == "set.ge.f16x2.f16x2":  # 1.0 where a >= b, else 0.0 (false for NaN)
            regs[d] = _join((_halves(val(args[0])) >= _halves(val(args[1]))).astype(np.float64))
        elif op == "fma.rn.f16x2":  # one rounding: fp16 products are exact in float64
            a, b, c = (_halves(val(x)) for x in args)
            regs[d] = _join(a * b + c)
        elif op == "add.rn.f16x2":
            a, b = (_halves(val(x)) for x in args)
            regs[d] = _join(a + b)
        else:
            raise ValueError(f"instruction not modelled: {op}")
    return regs["$0"]


def pack(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Two fp16 arrays -> uint32 pairs (lo in the low half, as a register holds element 0)."""
    return _join(np.stack([np.asarray(lo, np.float16), np.asarray(hi, np.float16)]).astype(np.float64))
