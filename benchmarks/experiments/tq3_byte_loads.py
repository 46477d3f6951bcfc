"""Experiment (not part of the package): tq3 decompress's byte loads laid out along the row. The shipped
`_load_words` loads each group's three bytes as three (rows, groups) uint8 tensors at a stride of 3 bytes,
which Triton 3.6 lays out with each lane of a warp on its own row (a sector a lane); Nsight Compute has
tq3 D=128 decompress L1-bound (85.8% against 75.6% for tq4: `h100-ncu-decompress.txt`). Here one
(rows, groups, 4) uint8 load at byte 3n + t (t < 3; t = 3 masked, so nothing past a row is read): the
bytes of a group are neighbours, so a warp's lanes read a run of neighbouring bytes of one row. The group
word from its bytes either by a sum over t of the bytes shifted (`sum`), or by splitting t into its four
bytes (`split`). Forms, from the checkout's generated tq3 modules by a text patch of `_load_words`:
bytes (the checkout), sum, split. At the config of the shipped H100 table (run without
KERNELGEN_AUTOTUNE=0) and the registry's metas, timed as `kernelgen bench` times, fp16, against the same
run's copy; outputs compared with the checkout's (equal: the same codes). Ran on commit f364588, whose
`_load_words` loads a byte a load; since then the checkout's kernels take ALONG_ROW (the patch still
replaces the body, but the "bytes" column is then the shipped mix of forms).
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tq3_byte_loads.py [dims...]
"""
import importlib.util
import re
import sys
import tempfile
from pathlib import Path

import torch

import kernelgen
from kernelgen import bench, registry

DIMS = (64, 96, 128, 256)
LOAD_WORDS = re.compile(r"(def _load_words\(.*?\n    \"\"\".*?\"\"\"\n).*?    return word\n", re.S)
HEAD = """\
    groups = first_group + tl.arange(0, WIDTH)
    t = tl.arange(0, 4)  # byte t of a group; t = 3 is masked off
    ok = row_ok[:, None, None] & (groups < GROUPS)[None, :, None] & (t < BYTES_PER_GROUP)[None, None, :]
    src = (packed_ptr + rows[:, None, None].to(tl.int64) * PACKED_DIM + groups[None, :, None] * BYTES_PER_GROUP
           + t[None, None, :])
    b = tl.load(src, mask=ok, other=0).to(tl.int32)
"""
BODIES = {
    "sum": HEAD + """\
    word = tl.sum(b << tl.where(t < BYTES_PER_GROUP, 8 * (BYTES_PER_GROUP - 1 - t), 0)[None, None, :], axis=2)
    return word
""",
    "split": HEAD + """\
    b02, b13 = tl.split(tl.reshape(b, (rows.shape[0], WIDTH, 2, 2)))  # [row, group, a, c]: byte 2a + c
    b0, b2 = tl.split(b02)
    b1, b3 = tl.split(b13)
    word = (b0 << 16) | (b1 << 8) | b2
    return word
""",
}


def patched(source: str, body: str) -> str:
    text, count = LOAD_WORDS.subn(lambda m: m.group(1) + body, source)
    assert count == 1, "no _load_words found"
    return text


def main():
    dims = tuple(int(a) for a in sys.argv[1:]) or DIMS
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folder = Path(tempfile.mkdtemp())
    for head_dim in dims:
        q = kernelgen.quantizer("tq3", head_dim, device="cuda")
        source = Path(q._variant.module.__file__).read_text()
        modules = {}
        for form, body in BODIES.items():
            path = folder / f"{form}_tq3_d{head_dim}.py"
            path.write_text(patched(source, body))
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            modules[form] = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = modules[form]
            module_spec.loader.exec_module(modules[form])
        for rows in (1 << 20, 1 << 16, 8):
            bucket = registry.row_bucket(rows)
            nbytes = bench.op_bytes("decompress", head_dim, q.packed_dim, rows, 2)
            sets = bench.input_sets(nbytes)
            xs = [torch.randn(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
            norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
            outs = [torch.empty(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            for i in range(sets):
                q.compress(xs[i], out=(packed[i], norms[i]))
            for op in ("decompress", "decompress_rotated"):
                args = [q._kernel_args(op, torch.float16, (packed[i], norms[i]), (outs[i],)) for i in range(sets)]
                kernel = q._kernels[op]
                config = kernel.config(rows, "float16", q.device, args[0])
                meta = kernel.meta(config, "float16", bucket)
                grid = kernel.grid(rows, meta)
                line = f"tq3 D{head_dim:<3} {rows:>7} {op:18s} B{config.block_rows} w{config.num_warps}"
                reference = None
                for form, fn in [("bytes", kernel.fn)] + [(f, getattr(m, f"tq3_d{head_dim}_{op}").fn)
                                                         for f, m in modules.items()]:
                    outs[0].fill_(float("nan"))
                    us = bench.graph_time_us([lambda a=a, fn=fn: fn[grid](*a, rows, bucket, **meta) for a in args])
                    result = outs[0].clone()
                    assert not result.isnan().any(), f"{form} left outputs unwritten"
                    if reference is None:
                        reference, same = result, ""
                    else:
                        same = " same" if torch.equal(result, reference) else " DIFFERENT"
                    line += f"  {form} {us:7.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%{same}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
