"""Experiment (not part of the package): decompress of 3-bit and 2-bit codes with each centroid picked by
selects among the codebook's positive values instead of a gather from the table passed to the kernel.
The codebook is symmetric, so a code is a sign (its top bit) and a magnitude index (the rest, mirrored below
the middle): 2 selects and a sign bit at 3 bits, none but the sign at 2 bits. tq3 decompress is L1-bound
(benchmarks/experiments/h100-ncu-decompress.txt: L1 85.8% busy, 8 gathers a byte group); the selects move
that work to the ALUs. (At 4 bits, 7 selects a code were slower than the gather:
gather_loop_tq4_d128.py.)
Each case: the checkout's generated module against a copy whose `_centroid` is replaced (written to a
temporary folder and imported), both at the shipped H100 table's config of the kernel (read by name) with
the registry's metas; fp16 rows; outputs compared (max difference, 0 expected). Timed as `kernelgen bench`
times against the same run's copy, each the lower of two timings.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/centroid_select.py
"""
import importlib.util
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import torch

os.environ["KERNELGEN_AUTOTUNE"] = "0"  # inputs from the registry's untuned compress; configs set below
CASES = [("tq3", d) for d in (64, 96, 128, 256)] + [("tq2", d) for d in (64, 128, 256)]
OPS = ("decompress", "decompress_rotated")
ROWS = (1 << 20, 8)

SELECT = '''@triton.jit
def _centroid(centroids_ptr, code):
    """Centroid of each code by selects among the positive centroids (symmetric codebook): the top bit of
    the code is the sign, the rest mirrored below the middle the magnitude index. (Experiment.)"""
    HALF: tl.constexpr = {half}
    neg = code < HALF
    m = tl.where(neg, HALF - 1 - code, code - HALF)
{pick}
    sign = neg.to(tl.int32) << 31
    return (mag.to(tl.int32, bitcast=True) | sign).to(tl.float32, bitcast=True)
'''


def select_source(source: str, centroids: list[float]) -> str:
    half = len(centroids) // 2
    positive = centroids[half:]
    if half == 2:
        pick = f"    mag = tl.where(m == 1, {positive[1]!r}, {positive[0]!r})"
    elif half == 4:
        pick = (f"    mag = tl.where(m >= 2, tl.where(m == 3, {positive[3]!r}, {positive[2]!r}),\n"
                f"                   tl.where(m == 1, {positive[1]!r}, {positive[0]!r}))")
    else:
        raise ValueError(half)
    new = SELECT.format(half=half, pick=pick)
    patched, count = re.subn(r"@triton\.jit\ndef _centroid\(centroids_ptr, code\):\n(?:    .*\n|\n(?=    ))*", new,
                             source)
    assert count == 1, "the module's _centroid was not found"
    return patched


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def shipped_config(spec, name, rows):
    table = json.loads(Path(f"generated/{spec}/tuned/nvidia-h100-80gb-hbm3-sm90.json").read_text())["entries"]
    for key, value in table.items():
        kname, _, bucket, dtype = key.split("|")
        if kname == name and int(bucket) == rows and dtype == "float16":
            return value["block_rows"], value["num_warps"]
    raise LookupError(name)


def main():
    import kernelgen
    from kernelgen import bench, registry, tuning

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folder = Path(tempfile.mkdtemp())
    for spec, head_dim in CASES:
        q = kernelgen.quantizer(spec, head_dim, device="cuda")
        source = Path(f"generated/{spec}/{spec}_d{head_dim}.py").read_text()
        path = folder / f"select_{spec}_d{head_dim}.py"
        path.write_text(select_source(source, [float(c) for c in q.centroids.cpu()]))
        patched = load_module(path, path.stem)
        for rows in ROWS:
            nbytes = bench.op_bytes("decompress", head_dim, q.packed_dim, rows, 2)
            sets = bench.input_sets(nbytes)
            xs = [torch.randn(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
            norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
            outs = [torch.empty(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            for i in range(sets):
                q.compress(xs[i], out=(packed[i], norms[i]))
            del xs
            bucket = registry.row_bucket(rows)
            for op in OPS:
                kernel = q._kernels[op]
                name = f"{spec}_d{head_dim}_{op}"
                b, w = shipped_config(spec, name, rows)
                meta = kernel.meta(tuning.LaunchConfig(b, w, 1), "float16", bucket)
                grid = kernel.grid(rows, meta)
                args = [q._kernel_args(op, torch.float16, (packed[i], norms[i]), (outs[i],)) for i in range(sets)]
                line, results = [], []
                for label, fn in (("gather", kernel.fn), ("select", getattr(patched, name).fn)):
                    outs[0].fill_(float("nan"))
                    us = min(bench.graph_time_us([lambda a=a, fn=fn: fn[grid](*a, rows, bucket, **meta) for a in args])
                             for _ in range(2))
                    results.append(outs[0].clone())
                    line.append(f"{label} {us:8.1f} us ({nbytes / us / 1e3 / copy_gbps * 100:5.1f}%)")
                diff = (results[0].float() - results[1].float()).abs().max().item()
                print(f"{spec} D{head_dim:<3} {rows:>8} {op:18s} B{b:<3} w{w}  " + "  ".join(line)
                      + f"  max diff {diff:.3g}", flush=True)
            del packed, norms, outs
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
