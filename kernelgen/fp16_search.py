"""The compress code search on packed fp16 pairs: the inline PTX that compress kernels run when their
rotation products take fp16 operands, and the thresholds it compares against.

Why: the search is most of compress's instructions. Rounded to fp16, two rotated values share one
32-bit register (f16x2), so each compare, multiply-add and bit operation serves two values.
Measured on an H100 (tq4, D=128, 1M fp16 rows, benchmarks/experiments/half_forms_tq4_d128.py):
156.1 µs against 173.0 µs for the fp32 search at one row block a program.

What it computes, for a byte group of `g` codes (a byte holds them all: bits 1, 2 and 4) and two
neighbouring groups a register: each slot's value y (fp16), m = the number of positive thresholds
<= |y| by a branchless binary search (one `set.ge` a bit of m; each level's threshold picked from
the bits above it by exact fp16 multiply-adds of those 0/1 bits), the signed code copysign(m + 0.5, y)
(the sign is y's bit, so -0.0 takes the code below the middle boundary as the fp32 search does), the
group's byte as sum_j signed_j * 2^shift_j + offset (exact small half-integers in fp16), and 1024 +
that byte, whose fp16 bits are 0x6400 + byte: the byte is the low 8 bits, no conversion needed.

The thresholds: y is rounded to fp16 first, so each fp32 boundary b becomes the fp16 threshold P whose
rounding boundary (the midpoint between P and the fp16 value below it) lies closest to b. Where a
level's threshold cannot be an exact multiply-add of the bits above it, thresholds one fp16 step
away are tried (the least total shift first); failing that, an exact select
(t = h * X + (Y - h * Y)). Every choice is checked here in numpy's fp16 arithmetic.

The same thresholds in fp32 arithmetic (render's fp32 search with these thresholds, on y rounded to
fp16) give bit-identical codes: the kernels run that form under the Triton interpreter, which cannot
run PTX, and the tests check the two against each other.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


def _fp16_bits(value) -> int:
    return int(np.array(value, dtype=np.float16).view(np.uint16))


def _pair(value) -> str:
    """A 32-bit f16x2 constant holding `value` in both halves."""
    bits = _fp16_bits(value)
    return f"0x{(bits << 16) | bits:08X}"


def _fma16(a, b, c) -> np.float16:
    """fp16 fused multiply-add, rounded once (products of fp16 values are exact in float64)."""
    return np.float16(np.float64(a) * np.float64(b) + np.float64(c))


def _rounding_edge(p: np.float16) -> float:
    """The smallest real y whose fp16 rounding is >= p (ties aside): the midpoint below p."""
    return (np.float64(p) + np.float64(np.nextafter(p, np.float16(0)))) / 2


def nearest_thresholds(positive: list[float]) -> list[np.float16]:
    """For each positive fp32 boundary, the fp16 threshold whose rounding edge is closest to it."""
    out = []
    for b in positive:
        c = np.float16(b)
        candidates = (np.nextafter(c, np.float16(0)), c, np.nextafter(c, np.float16(1)))
        out.append(min(candidates, key=lambda p: abs(_rounding_edge(p) - b)))
    return out


@dataclass(frozen=True)
class Fp16Search:
    thresholds: tuple[float, ...]  # the positive fp16 thresholds (as floats, exact), ascending
    ptx: str  # the inline PTX body for one byte group (see byte_group_search)
    moved: tuple[float, ...]  # the thresholds one fp16 step off the nearest, so the multiply-adds are exact


class _Program:
    """PTX lines with the f16x2 constants moved into registers (f16x2 arithmetic takes no immediates)."""

    def __init__(self):
        self.lines: list[str] = []
        self.constants: dict[str, str] = {}

    def const(self, value) -> str:
        return self.constants.setdefault(_pair(value), f"k{len(self.constants)}")

    def emit(self, line: str, comment: str = "") -> None:
        self.lines.append(f"{line:<34s}// {comment}" if comment else line)


def _moves(values: list[np.float16], targets: list[float]):
    """The thresholds themselves, then with some moved one fp16 step, least total shift of their rounding
    edges from the fp32 boundaries first."""
    options = []
    for steps in itertools.product((0, -1, 1), repeat=len(values)):
        moved = [np.nextafter(v, np.float16(step)) if step else v for v, step in zip(values, steps)]
        options.append((sum(abs(_rounding_edge(m) - t) for m, t in zip(moved, targets)), steps, moved))
    options.sort(key=lambda o: (o[0], o[1]))
    return [moved for _, _, moved in options]


def _one_bit(lo, hi, bit: int, target_lo: float, target_hi: float, out: str):
    """(lines, lo, hi): `out` = lo or hi as bit h<bit> is 0 or 1. One exact multiply-add lo + h * (hi - lo),
    the thresholds moved one step if that makes it exact; else two (h * hi + (lo - h * lo))."""
    for mlo, mhi in _moves([lo, hi], [target_lo, target_hi]):
        d = np.float16(np.float64(mhi) - np.float64(mlo))
        if _fma16(1, d, mlo) == mhi and _fma16(0, d, mlo) == mlo:
            return [("fma.rn.f16x2 {out}, h{bit}, {d}, {lo};", dict(out=out, bit=bit, d=d, lo=mlo))], mlo, mhi
    return [("fma.rn.f16x2 u, h{bit}, {nlo}, {lo};", dict(bit=bit, nlo=-lo, lo=lo)),
            ("fma.rn.f16x2 {out}, h{bit}, {hi}, u;", dict(out=out, bit=bit, hi=hi))], lo, hi


def _threshold_levels(positive: list[float], levels: int):
    """The binary search's thresholds (fp16, positive, ascending) and, for each level k (bit k of m, from
    levels-1 down to 0), the instructions that put its threshold in register t from the bits decided
    above (h<bit>: 1.0 or 0.0): a list of (format, values), constants still to be named."""
    p = nearest_thresholds(positive)
    plans = {}
    for k in range(levels - 1, -1, -1):
        decided = list(range(levels - 1, k, -1))  # higher bits first

        def index(combo):  # combo: the decided bits' values, in `decided` order
            return sum(bit << j for bit, j in zip(combo, decided)) + (1 << k) - 1

        if not decided:
            plans[k] = [("set.ge.f16x2.f16x2 h{k}, a, {p};", dict(k=k, p=p[index(())]))]
            continue
        if len(decided) == 1:
            i0, i1 = index((0,)), index((1,))
            lines, p[i0], p[i1] = _one_bit(p[i0], p[i1], decided[0], positive[i0], positive[i1], "t")
        elif len(decided) == 2:
            lines = _two_bits(p, positive, decided, index)
        else:
            raise ValueError("the fp16 search covers codes of at most 4 bits")
        plans[k] = lines + [("set.ge.f16x2.f16x2 h{k}, a, t;", dict(k=k))]
    return p, plans


def _two_bits(p, positive, decided, index):
    """Three exact multiply-adds over the two decided bits (thresholds moved one step where that makes
    them exact); else each side of the higher bit by _one_bit and an exact select between them.
    Updates p with the thresholds chosen."""
    combos = [(b1, b0) for b1 in (0, 1) for b0 in (0, 1)]
    high, low = decided
    for moved in _moves([p[index(c)] for c in combos], [positive[index(c)] for c in combos]):
        chosen = dict(zip(combos, moved))
        for outer, inner in ((high, low), (low, high)):
            def at(o, i):  # threshold with the outer bit o and the inner bit i
                return chosen[(o, i)] if outer == high else chosen[(i, o)]
            p00, p01, p10, p11 = at(0, 0), at(0, 1), at(1, 0), at(1, 1)
            dlo = np.float16(np.float64(p01) - np.float64(p00))
            e = np.float16(np.float64(p10) - np.float64(p00))
            dd = np.float16((np.float64(p11) - np.float64(p10)) - (np.float64(p01) - np.float64(p00)))
            if all(_fma16(o, _fma16(i, dd, e), _fma16(i, dlo, p00)) == at(o, i) for o in (0, 1) for i in (0, 1)):
                for combo in combos:
                    p[index(combo)] = chosen[combo]
                return [("fma.rn.f16x2 r, h{inner}, {dlo}, {p00};", dict(inner=inner, dlo=dlo, p00=p00)),
                        ("fma.rn.f16x2 t, h{inner}, {dd}, {e};", dict(inner=inner, dd=dd, e=e)),
                        ("fma.rn.f16x2 t, h{outer}, t, r;", dict(outer=outer))]
    lines = []
    for b1, out in ((0, "r"), (1, "t")):
        i0, i1 = index((b1, 0)), index((b1, 1))
        side, p[i0], p[i1] = _one_bit(p[i0], p[i1], low, positive[i0], positive[i1], out)
        lines += side
    return lines + [("neg.f16x2 n, r;", {}), ("fma.rn.f16x2 r, h{high}, n, r;", dict(high=high)),
                    ("fma.rn.f16x2 t, h{high}, t, r;", dict(high=high))]


def byte_group_search(boundaries: tuple[float, ...], bits: int, codes_per_group: int,
                      shifts: list[int], offset: float) -> Fp16Search:
    """The PTX for one byte group: inputs $1..$g, slot j's rotated values of two neighbouring groups as
    an fp16 pair; output $0, the pair of 16-bit values 0x6400 + byte. `shifts[j]` is slot j's bit
    shift in the byte, `offset` what the sum of signed codes needs added to become the byte."""
    if bits * codes_per_group != 8:
        raise ValueError("the fp16 search packs one-byte groups (bits 1, 2 or 4)")
    half = 1 << (bits - 1)
    positive = [float(b) for b in boundaries[half:]]
    levels = bits - 1
    p, plans = _threshold_levels(positive, levels)
    prog = _Program()
    for j in range(codes_per_group):
        y = f"${j + 1}"
        prog.emit(f"and.b32 a, {y}, 0x7FFF7FFF;", f"slot {j}: |y|")
        for k in range(levels - 1, -1, -1):
            for n, (form, values) in enumerate(plans[k]):
                named = {key: prog.const(v) if isinstance(v, np.floating) else v for key, v in values.items()}
                comment = f"bit {k} of m" if form.startswith("set.") else (f"threshold of bit {k}" if n == 0 else "")
                if form.startswith("set.") and "p" in values:
                    comment += f": |y| >= {float(values['p']):.6g}"
                prog.emit(form.format(**named), comment)
        if levels:
            prog.emit(f"add.rn.f16x2 r, h0, {prog.const(0.5)};", "m + 0.5")
            for k in range(1, levels):
                prog.emit(f"fma.rn.f16x2 r, h{k}, {prog.const(2.0 ** k)}, r;")
        else:
            prog.emit(f"mov.b32 r, {prog.const(0.5)};", "m + 0.5 (no boundary but 0)")
        prog.emit(f"and.b32 s, {y}, 0x80008000;", "y's sign")
        prog.emit("or.b32 r, r, s;", "copysign(m + 0.5, y)")
        if j == 0:
            prog.emit("mov.b32 acc, r;")
        else:
            prog.emit(f"fma.rn.f16x2 acc, acc, {prog.const(2.0 ** (shifts[j - 1] - shifts[j]))}, r;",
                      f"byte so far, then slot {j}")
    prog.emit(f"add.rn.f16x2 acc, acc, {prog.const(offset)};", "the byte, 0..255 (exact)")
    prog.emit(f"add.rn.f16x2 $0, acc, {prog.const(1024.0)};", "1024 + byte: fp16 bits 0x6400 + byte")
    regs = [".reg .b32 a, s, t, r, n, u, acc, h<%d>;" % max(levels, 1), f".reg .b32 k<{len(prog.constants)}>;"]
    consts = [f"mov.b32 {name}, {value};" for value, name in prog.constants.items()]
    body = "\n".join(["{", *regs, *consts, *prog.lines, "}"])
    nearest = nearest_thresholds(positive)
    return Fp16Search(thresholds=tuple(float(v) for v in p), ptx=body,
                      moved=tuple(float(v) for v, n in zip(p, nearest) if v != n))
