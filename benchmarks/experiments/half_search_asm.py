"""Experiment helper (not part of the package): the PTX of the packed-fp16 code search (two values a
register) as the half_* experiments ran it, with numpy checks of its exactness and an emulator.
kernelgen/fp16_search.py is the shipped form (its threshold choice is adjust=True's)."""
import itertools

import numpy as np

def f16(v): return np.float16(v)
def bits(v): return int(np.array(f16(v), dtype=np.float16).view(np.uint16))
def pair(v): b = bits(v); return f"0x{(b << 16) | b:08X}"
def fma16(a, b, c):  # correctly rounded fp16 fma (products of fp16s exact in float64)
    return np.float16(np.float64(a) * np.float64(b) + np.float64(c))

def effective_boundaries(pos):
    """fp16 thresholds P with a >= P (a = fp16(|y|) rounded to nearest) closest to |y| >= b."""
    out = []
    for b in pos:
        c = f16(b)
        cands = [np.nextafter(c, f16(0)), c, np.nextafter(c, f16(1))]
        def eff(p):  # smallest float64 y with fp16(y) >= p: midpoint to the predecessor (ties to even aside)
            return (np.float64(p) + np.float64(np.nextafter(p, f16(0)))) / 2
        out.append(min(cands, key=lambda p: abs(eff(p) - b)))
    return out

def search_asm(pos_boundaries, levels_bits, adjust=True):
    """pos_boundaries: the 2^(bits-1)-1 positive boundaries ascending. Returns (asm body, constants) computing
    $0 = copysign(m + 0.5, y) for the pair in $1, m = number of boundaries <= |y| (fp16 compare)."""
    P = effective_boundaries(pos_boundaries)
    nb = levels_bits  # bits of m
    lines = [".reg .b32 a, a2, s, t, h<%d>, r;" % nb]
    lines.append("and.b32 a, $1, 0x7FFF7FFF;")
    lines.append("and.b32 s, $1, 0x80008000;")
    # level k (from high bit nb-1 down to 0): threshold = P[index - 1] where index = (decided bits) + 2^k
    # build thresholds as fma chains over decided 0/1 bits, checked exact over all combos
    checks = []
    for k in range(nb - 1, -1, -1):
        decided = list(range(nb - 1, k, -1))
        # target for combo: P[base + 2^k - 1] with base = sum(bit_j * 2^j)
        # linear form t = c0 + sum_j bit_j * d_j + products... use nested: for one decided bit: fma; two: 3 fma
        if not decided:
            lines.append(f"set.ge.f16x2.f16x2 h{k}, a, {pair(P[2**k - 1])};")
            continue
        def target(combo):
            return P[sum(b << j for b, j in zip(combo, decided)) + 2**k - 1]
        if len(decided) == 1:
            j = decided[0]
            lo, hi = target((0,)), target((1,))
            d = f16(np.float64(hi) - np.float64(lo))
            assert fma16(1, d, lo) == hi and fma16(0, d, lo) == lo, (lo, hi, d)
            lines.append(f"fma.rn.f16x2 t, h{j}, {pair(d)}, {pair(lo)};")
        elif len(decided) == 2:
            j1, j0 = decided  # j1 higher
            # three multiply-adds, exact for all four bit combinations; where the nearest fp16 thresholds
            # admit none, thresholds one fp16 step away are tried (least total boundary shift first)
            def shift(p, b):
                return abs((np.float64(p) + np.float64(np.nextafter(p, f16(0)))) / 2 - b)
            base = {(b1, b0): target((b1, b0)) for b1 in (0, 1) for b0 in (0, 1)}
            index = {combo: sum(bb << j for bb, j in zip(combo, decided)) + 2**k - 1 for combo in base}
            options = []
            for steps in itertools.product(*([(0, -1, 1) if adjust else (0,)] * 4)):
                cand = {}
                for step, combo in zip(steps, sorted(base)):
                    p = base[combo]
                    for _ in range(abs(step)):
                        p = np.nextafter(p, f16(step))
                    cand[combo] = p
                cost = sum(shift(cand[c], pos_boundaries[index[c]]) for c in cand)
                options.append((cost, steps, cand))
            options.sort(key=lambda o: o[0])
            done = False
            for cost, steps, cand in options:
                for outer, inner in ((j1, j0), (j0, j1)):
                    def T(bo, bi): return cand[(bo, bi)] if outer == j1 else cand[(bi, bo)]
                    p00, p01, p10, p11 = T(0, 0), T(0, 1), T(1, 0), T(1, 1)
                    dlo = f16(np.float64(p01) - np.float64(p00))
                    E = f16(np.float64(p10) - np.float64(p00))
                    DD = f16((np.float64(p11) - np.float64(p10)) - (np.float64(p01) - np.float64(p00)))
                    if all(fma16(bo, fma16(bi, DD, E), fma16(bi, dlo, p00)) == T(bo, bi) for bo in (0, 1) for bi in (0, 1)):
                        lines.append(f"fma.rn.f16x2 r, h{inner}, {pair(dlo)}, {pair(p00)};")
                        lines.append(f"fma.rn.f16x2 t, h{inner}, {pair(DD)}, {pair(E)};")
                        lines.append(f"fma.rn.f16x2 t, h{outer}, t, r;")
                        for c in cand:
                            P[index[c]] = cand[c]
                        done = True
                        break
                if done:
                    break
            if not done:  # exact select: X where h else Y = fma(h, X, fma(h, -Y, Y))
                for bo, reg in ((0, "r"), (1, "t")):
                    lo, hi = target((bo, 0)), target((bo, 1))
                    d = f16(np.float64(hi) - np.float64(lo))
                    assert fma16(1, d, lo) == hi and fma16(0, d, lo) == lo, (lo, hi)
                    lines.append(f"fma.rn.f16x2 {reg}, h{j0}, {pair(d)}, {pair(lo)};")
                lines.append("neg.f16x2 a2, r;")
                lines.append(f"fma.rn.f16x2 r, h{j1}, a2, r;")
                lines.append(f"fma.rn.f16x2 t, h{j1}, t, r;")
        else:
            raise NotImplementedError
        lines.append(f"set.ge.f16x2.f16x2 h{k}, a, t;")
    # m + 0.5
    lines.append(f"add.rn.f16x2 r, h0, {pair(0.5)};")
    for k in range(1, nb):
        lines.append(f"fma.rn.f16x2 r, h{k}, {pair(2.0 ** k)}, r;")
    lines.append("or.b32 $0, r, s;")
    return "{\n" + "\n".join(lines) + "\n}", P

def group_asm(pos_boundaries, bits, codes_per_group, offset, adjust=True):
    """$0 = the fp16 pair (1024 + byte) for two neighbouring byte groups, from the codes_per_group fp16 pairs
    $1.. (slot j's rotated values of the two groups)."""
    body, P = search_asm(pos_boundaries, bits - 1, adjust)
    inner = body.strip("{}\n").split("\n")
    lines = [".reg .b32 a, a2, s, t, h<%d>, r, acc;" % max(bits - 1, 1)]
    for j in range(codes_per_group):
        for ln in inner[1:]:
            ln = ln.replace("$1", f"${j + 1}")
            if ln.startswith("or.b32 $0"):
                ln = "or.b32 r, r, s;"
            lines.append(ln)
        if j == 0:
            lines.append("mov.b32 acc, r;")
        else:
            lines.append(f"fma.rn.f16x2 acc, acc, {pair(2.0 ** bits)}, r;")
    lines.append(f"add.rn.f16x2 acc, acc, {pair(offset)};")  # the byte, exact
    lines.append(f"add.rn.f16x2 $0, acc, {pair(1024)};")  # bits 0x6400 + byte
    return registers_for_constants("{\n" + "\n".join(lines) + "\n}"), P


def search_only_asm(pos_boundaries, bits):
    """$0 = copysign(m + 0.5, y) for the fp16 pair $1 (constants in registers)."""
    body, _ = search_asm(pos_boundaries, bits - 1)
    return registers_for_constants(body)


def registers_for_constants(asm):
    """f16x2 arithmetic takes no immediates: each distinct constant goes to a register once."""
    body = asm.strip("{}\n").split("\n")
    consts, out = {}, []
    for ln in body:
        op = ln.split(" ", 1)[0]
        if op.endswith("f16x2") or op.startswith("set."):
            head, rest = ln.split(" ", 1)
            args = [a.strip() for a in rest.rstrip(";").split(",")]
            for i, a in enumerate(args):
                if a.startswith("0x"):
                    consts.setdefault(a, f"k{len(consts)}")
                    args[i] = consts[a]
            ln = head + " " + ", ".join(args) + ";"
        out.append(ln)
    decl = [f".reg .b32 k<{len(consts)}>;"] + [f"mov.b32 {r}, {v};" for v, r in consts.items()]
    return "{\n" + "\n".join(out[:1] + decl + out[1:]) + "\n}"


def emulate(asm, inputs):
    """Run the asm on uint32 numpy arrays (two fp16 lanes each)."""
    regs = {f"${i + 1}": v.astype(np.uint32) for i, v in enumerate(inputs)}
    def val(tok):
        tok = tok.strip().rstrip(";")
        if tok.startswith("0x"):
            return np.full(inputs[0].shape, int(tok, 16), dtype=np.uint32)
        return regs[tok]
    def lanes(u):
        return np.stack([(u & 0xFFFF).astype(np.uint16).view(np.float16), (u >> 16).astype(np.uint16).view(np.float16)])
    def unl(l):
        lo = l[0].astype(np.float16).view(np.uint16).astype(np.uint32)
        hi = l[1].astype(np.float16).view(np.uint16).astype(np.uint32)
        return lo | (hi << 16)
    for line in asm.strip("{}\n").split("\n"):
        line = line.strip()
        if line.startswith(".reg") or not line:
            continue
        op, rest = line.split(" ", 1)
        args = [a.strip() for a in rest.rstrip(";").split(",")]
        d = args[0]
        if op == "and.b32": regs[d] = val(args[1]) & val(args[2])
        elif op == "or.b32": regs[d] = val(args[1]) | val(args[2])
        elif op == "mov.b32": regs[d] = val(args[1]).copy()
        elif op == "set.ge.f16x2.f16x2":
            a, b = lanes(val(args[1])), lanes(val(args[2]))
            regs[d] = unl((a.astype(np.float64) >= b.astype(np.float64)).astype(np.float16))
        elif op == "fma.rn.f16x2":
            a, b, c = (lanes(val(x)).astype(np.float64) for x in args[1:])
            regs[d] = unl((a * b + c).astype(np.float16))
        elif op == "neg.f16x2":
            regs[d] = val(args[1]) ^ np.uint32(0x80008000)
        elif op == "add.rn.f16x2":
            a, b = (lanes(val(x)).astype(np.float64) for x in args[1:])
            regs[d] = unl((a + b).astype(np.float16))
        else:
            raise ValueError(op)
    return regs["$0"]
