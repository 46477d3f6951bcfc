"""Experiment (not part of the package): compress with the rotation product taken on the raw 16-bit rows as
TMA left them in shared memory (wgmma reads its A operand there), instead of on the normalized row
converted to fp16 (which Triton writes back to shared memory and reloads for the product). The norm is
still the row's, in fp32; the rotated values are then put on the unit scale either by a multiply with
1 / (norm + eps) ("normed") or, tq3 only, by scaling the search's thresholds by norm + eps per row
("scaled"). For tq3 at rows padded to 128, also "perm": the rotation's columns permuted so that each
thread of the product's (wgmma) accumulator holds whole byte groups, column 32a + 8b + 2q + e holding
coordinate 8(4q + a) + 2b + e (a thread holds the columns of one q: the 8 codes of groups 4q..4q+3), so
the weighted group sums need no shuffles; "perm2d" stores its three words a quad in two dims, without the
flattening (and its layout conversion). Then every form again with 3 programs an SM (p3). fp16 rows only (they are exact fp16 operands; bf16 rows would need a conversion). The TMA loop,
grid and descriptor are the registry's (BoundKernel.tma_launch), B64 w4, 1M rows; three rounds each, the
shipped module first, timed as `kernelgen bench` times (bench.graph_time_us, one round each). Codes
compared with the shipped kernel and with the fp32 PyTorch path (torch_path.compress_rows), norms bit for bit.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/raw_product_compress.py
"""
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402

ROWS = 1 << 20
CASES = [("tq3", 128), ("tq3", 96), ("tq3", 64), ("tq4", 128), ("tq4", 96), ("tq4", 64), ("tq2", 128)]
CASES = CASES[:int(os.environ.get("CASES", len(CASES)))]
TMA_LOAD = "x = x_desc.load([block * BLOCK_ROWS, 0])"
NORMALIZE = "xf = xf * (1.0 / (norm + NORM_EPS))[:, None]"


def _scaled_search(source: str) -> str:
    """_signed_code with each threshold scaled by s (the row's norm + eps, shape (rows, 1))."""
    body = source[source.index("def _signed_code(y):"):]
    body = body[:body.index("\n\n\n")]
    out = ["@triton.jit", "def _signed_code_scaled(y, s):"]
    for line in body.splitlines()[1:]:
        m = re.match(r"    (h\d+) = a >= (.+)$", line)
        if m:
            expr = m.group(2)
            if " + " in expr:
                first, rest = expr.split(" + ", 1)
                bit, weight = rest.split(" * ")
                expr = f"{first} * s + {bit} * ({weight} * s)"
            else:
                expr = f"{expr} * s"
            out.append(f"    {m.group(1)} = a >= {expr}")
        elif re.match(r"    (a|m\d*|sign) = |    return ", line):
            out.append(line)
    return "\n".join(out) + "\n\n\n"


def variant_source(source: str, form: str) -> str:
    """The module's source with its TMA loop's product taken on the raw rows (see the docstring)."""
    start = source.index(TMA_LOAD)
    head, tma = source[:start], source[start:]
    end = tma.index("    else:  # pointer loads")
    tma, tail = tma[:end], tma[end:]
    assert NORMALIZE in tma
    if form == "scaled":
        tma = tma.replace(NORMALIZE, "s = (norm + NORM_EPS)[:, None]")
        tma = tma.replace("_signed_code(y)", "_signed_code_scaled(y, s)")
    else:
        tma = tma.replace(NORMALIZE, "inv = (1.0 / (norm + NORM_EPS))[:, None]")
    products = re.findall(r"_dot\(xf, (\w+), tl\.zeros\([^)]*\), dtype=tl\.float32\), PRECISION\)", tma)
    assert products, "no product found"
    for w in products:
        pattern = re.compile(r"_dot\(xf, " + w + r", tl\.zeros\([^)]*\), dtype=tl\.float32\), PRECISION\)")
        tma = pattern.sub(f"tl.dot(x, {w})" if form == "scaled" else f"(tl.dot(x, {w}) * inv)", tma)
    source = head + tma + tail
    if form == "scaled":
        source = source.replace("@triton.jit\ndef _dot(", _scaled_search(source) + "@triton.jit\ndef _dot(", 1)
    return source


PERM_WORD = """            # columns permuted (see the experiment): column 32a + 8b + 2q + e is coordinate 8(4q + a) + 2b + e
            jj = 2 * ((c // 8) % 4) + c % 2
            scale = (1 << (3 * (7 - jj))).to(tl.float32)
            v = tl.reshape(_signed_code_scaled(y, s) * scale[None, :], (BLOCK_ROWS, 4, 4, 4, 2))
            word = (tl.sum(tl.sum(v, axis=4), axis=2) + 8388607.5).to(tl.int32)  # (rows, a, q): group 4q + a
            word = tl.permute(word, (0, 2, 1))  # (rows, q, a): quad q
"""


def perm_source(source: str, two_d: bool) -> str:
    """The "scaled" tq3 source with permuted columns (PERM_WORD), and optionally two-dimensional stores."""
    source = variant_source(source, "scaled")
    start = source.index(TMA_LOAD)
    head, tma = source[:start], source[start:]
    end = tma.index("    else:  # pointer loads")
    tma, tail = tma[:end], tma[end:]
    lines = tma.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.strip().startswith("scale = "))
    assert lines[first + 1].strip().startswith("word = ")
    lines[first:first + 2] = [PERM_WORD]
    tma = "".join(lines)
    if two_d:
        tma = re.sub(r"tl\.reshape\((.*), \(BLOCK_ROWS \* QUADS,\)\)\n", r"\1\n", tma)
        tma = "".join(line for line in tma.splitlines(keepends=True)
                      if not line.strip().startswith(("out = tl.reshape(", "out_ok = tl.reshape(")))
    return head + tma + tail


def permuted_columns(rotation_t: torch.Tensor) -> torch.Tensor:
    """rotation_t (128, 128) with column p = 32a + 8b + 2q + e taken from column 8(4q + a) + 2b + e."""
    p = torch.arange(128)
    a, b, q, e = p // 32, (p // 8) % 4, (p // 2) % 4, p % 2
    return rotation_t[:, (8 * (4 * q + a) + 2 * b + e).to(rotation_t.device)].contiguous()


def load(source: str, name: str, folder: Path):
    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main():
    import kernelgen
    from kernelgen import bench, registry, torch_path, tuning

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folder = Path(tempfile.mkdtemp())
    config = tuning.LaunchConfig(64, 4, 1)
    for spec, head_dim in CASES:
        q = kernelgen.quantizer(spec, head_dim, device="cuda")
        kernel = q._kernels["compress"]
        source = Path(f"generated/{spec}/{spec}_d{head_dim}.py").read_text()
        forms = {"shipped": kernel.fn}
        for form in (("normed", "scaled") if "def _signed_code(y)" in source and "rotation_t_ptr" in source
                     else ("normed",)):
            module = load(variant_source(source, form), f"{spec}_d{head_dim}_{form}", folder)
            forms[form] = getattr(module, f"{spec}_d{head_dim}_compress").fn
        if spec == "tq3" and q.layout.dim_pad == 128:
            for form, two_d in (("perm", False), ("perm2d", True)):
                module = load(perm_source(source, two_d), f"{spec}_d{head_dim}_{form}", folder)
                forms[form] = getattr(module, f"{spec}_d{head_dim}_compress").fn
        x = torch.randn(ROWS, head_dim, device="cuda", dtype=torch.float16)
        x[:4] = 0  # zero rows: codes by the sign rule, norms 0
        ref_packed, ref_norms = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
        nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, ROWS, 2)
        outs, calls = {}, {}
        original = registry.TMA_COMPRESS
        for label, fn, per_sm in [(label, fn, per_sm) for per_sm in (2, 3) for label, fn in forms.items()]:
            registry.TMA_COMPRESS = (original[0], original[1], {128: per_sm, 64: 2 * per_sm})
            if per_sm == 3:
                label += "-p3"
            packed = torch.full((ROWS, q.packed_dim), 0xAB, dtype=torch.uint8, device="cuda")
            norms = torch.full((ROWS,), float("nan"), device="cuda")
            args = q._kernel_args("compress", torch.float16, (x,), (packed, norms))
            if label.startswith("perm"):
                args = (args[0], permuted_columns(args[1]), *args[2:])
            meta = kernel.meta(config, "float16", registry.MAX_ROW_BUCKET)
            assert meta["TMA_STAGES"] > 0
            grid, tma_meta = kernel.tma_launch(ROWS, meta, args)

            def call(fn=fn, grid=grid, args=args, tma_meta=tma_meta):
                fn[grid](*args, ROWS, registry.MAX_ROW_BUCKET, **tma_meta)
            call()
            torch.cuda.synchronize()
            outs[label], calls[label] = (packed, norms), call
        registry.TMA_COMPRESS = original
        base = outs["shipped"]
        for label, (packed, norms) in outs.items():
            print(f"{spec} D{head_dim} {label:9s} codes = shipped {bench.code_agreement(packed, base[0], q.layout):.5f}"
                  f" = fp32 path {bench.code_agreement(packed, ref_packed, q.layout):.5f}"
                  f" norms equal {torch.equal(norms, base[1])}"
                  f" zero rows {torch_path.unpack_codes(packed[:4], q.layout).unique().tolist()}", flush=True)
        times = {label: [] for label in calls}
        for _ in range(3):
            for label, call in calls.items():
                times[label].append(bench.graph_time_us([call], rounds=1))
        for label, ts in times.items():
            print(f"{spec} D{head_dim} {label:9s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
