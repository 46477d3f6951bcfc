"""Experiment (not part of the package): tq3's packed bytes moved as int32 words. Four byte groups of 3
bits x 8 codes are 12 bytes, three little-endian int32 words, so where a row's groups come in fours
(head dim a multiple of 32, rows of PACKED_DIM % 4 == 0 bytes) compress can store three words for four
groups instead of three bytes a group (each word's bytes picked from two group words by shifts and
masks), and decompress can load three words and rebuild the four group words. Forms, each made from the
checkout's generated tq3 module by a text patch:
  compress:    bytes (the checkout: three one-byte stores a group, flattened), words (three (rows, groups/4)
               int32 stores), words-flat (the same flattened, groups fastest);
  decompress and decompress_rotated: bytes (the checkout), words (three (rows, groups/4) int32 loads).
Each at the config the registry picks (run with KERNELGEN_AUTOTUNE=0: the spec's first, B64 w4) and its
launch metas, timed as `kernelgen bench` times, fp16, against the same run's copy; outputs compared byte
for byte with the checkout's.
Ran on commit afc44ec, whose generated tq3 modules store bytes (h100-tq3_words.txt: D=64-128, cut at D=192
by a name clash of the patch, mended for h100-tq3_words-192-256.txt); the checkout since stores words, so
the patch no longer finds the byte stores.
Usage (CUDA machine, repo root): KERNELGEN_AUTOTUNE=0 PYTHONPATH=$PWD python3 benchmarks/experiments/tq3_words.py [dims...]
"""
import importlib.util
import re
import sys
import tempfile
from pathlib import Path

import torch

import kernelgen
from kernelgen import bench, registry

DIMS = (64, 96, 128, 192, 256)

STORES = re.compile(r"(?P<pad> +)groups = tl\.arange\(0, (?P<width>[^)]+)\)\n.*?tl\.store\(out \+ 2, [^\n]*\n", re.S)
LOAD_WORDS = re.compile(r"(def _load_words\(.*?\n    \"\"\".*?\"\"\"\n).*?    return word\n", re.S)


def compress_words(source: str, flat: bool) -> str:
    def stores(m):
        p, width = m.group("pad"), m.group("width")
        lines = [
            f"g = tl.reshape(word, (BLOCK_ROWS, ({width}) // 4, 2, 2))  # [row, q, s, t] = group 4q + 2s + t",
            "g02, g13 = tl.split(g)",
            "g0, g2 = tl.split(g02)",
            "g1, g3 = tl.split(g13)",
            "p0 = ((g0 >> 16) & 0xFF) | (g0 & 0xFF00) | ((g0 & 0xFF) << 16) | ((g1 >> 16) << 24)",
            "p1 = ((g1 >> 8) & 0xFF) | ((g1 & 0xFF) << 8) | (g2 & 0xFF0000) | ((g2 & 0xFF00) << 16)",
            "p2 = (g2 & 0xFF) | ((g3 >> 16) << 8) | ((g3 & 0xFF00) << 8) | (g3 << 24)",
            f"q = tl.arange(0, ({width}) // 4)",
            "out_ok = row_ok[:, None] & (q < GROUPS // 4)[None, :]",
            "out = packed_ptr.to(tl.pointer_type(tl.int32)) + rows[:, None].to(tl.int64) * (PACKED_DIM // 4) + q[None, :] * 3",
        ]
        if flat:
            n = f"BLOCK_ROWS * (({width}) // 4)"
            lines += [f"out = tl.reshape(out, ({n},))",
                      f"out_ok = tl.reshape(out_ok, ({n},))",
                      f"p0 = tl.reshape(p0, ({n},))",
                      f"p1 = tl.reshape(p1, ({n},))",
                      f"p2 = tl.reshape(p2, ({n},))"]
        lines += ["tl.store(out, p0, mask=out_ok)", "tl.store(out + 1, p1, mask=out_ok)",
                  "tl.store(out + 2, p2, mask=out_ok)"]
        return "".join(f"{p}{line}\n" for line in lines)
    patched, count = STORES.subn(stores, source)
    assert count >= 1, "no compress stores found"
    return patched


def decompress_words(source: str) -> str:
    body = """\
    q = first_group // 4 + tl.arange(0, WIDTH // 4)
    ok = row_ok[:, None] & (q < GROUPS // 4)[None, :]
    src = packed_ptr.to(tl.pointer_type(tl.int32)) + rows[:, None].to(tl.int64) * (PACKED_DIM // 4) + q[None, :] * 3
    w0 = tl.load(src, mask=ok, other=0)
    w1 = tl.load(src + 1, mask=ok, other=0)
    w2 = tl.load(src + 2, mask=ok, other=0)
    g0 = ((w0 & 0xFF) << 16) | (w0 & 0xFF00) | ((w0 >> 16) & 0xFF)
    g1 = ((w0 >> 8) & 0xFF0000) | ((w1 & 0xFF) << 8) | ((w1 >> 8) & 0xFF)
    g2 = (w1 & 0xFF0000) | ((w1 >> 16) & 0xFF00) | (w2 & 0xFF)
    g3 = ((w2 & 0xFF00) << 8) | ((w2 >> 8) & 0xFF00) | ((w2 >> 24) & 0xFF)
    word = tl.reshape(tl.join(tl.join(g0, g2), tl.join(g1, g3)), (rows.shape[0], WIDTH))
    return word
"""
    patched, count = LOAD_WORDS.subn(lambda m: m.group(1) + body, source)
    assert count == 1, "no _load_words found"
    return patched


def load(path: Path, name: str):
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def word_modules(head_dim: int, source: str) -> dict:
    folder = Path(tempfile.mkdtemp())
    forms = {"words": decompress_words(compress_words(source, flat=False)),
             "words-flat": decompress_words(compress_words(source, flat=True))}
    modules = {}
    for form, text in forms.items():
        path = folder / f"{form.replace('-', '_')}_tq3_d{head_dim}.py"
        path.write_text(text)
        modules[form] = load(path, path.stem)
    return modules


def main():
    dims = tuple(int(a) for a in sys.argv[1:]) or DIMS
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    copy_gbps = bench.copy_bandwidth_gbps() if device == "cuda" else float("nan")
    print(f"device {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}; copy {copy_gbps:.0f} GB/s",
          flush=True)
    row_counts = (1 << 20, 1 << 16, 8) if device == "cuda" else (200,)
    for head_dim in dims:
        q = kernelgen.quantizer("tq3", head_dim, device=device)
        modules = word_modules(head_dim, Path(q._variant.module.__file__).read_text())
        for rows in row_counts:
            bucket = registry.row_bucket(rows)
            nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, rows, 2)
            sets = bench.input_sets(nbytes) if device == "cuda" else 1
            xs = [torch.randn(rows, head_dim, device=device, dtype=torch.float16) for _ in range(sets)]
            packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device=device) for _ in range(sets)]
            norms = [torch.empty(rows, 1, device=device) for _ in range(sets)]
            outs = [torch.empty(rows, head_dim, device=device, dtype=torch.float16) for _ in range(sets)]
            for i in range(sets):  # decompress inputs: real codes
                q.compress(xs[i], out=(packed[i], norms[i]))
            for op in ("compress", "decompress", "decompress_rotated"):
                io = [((xs[i],), (packed[i], norms[i])) if op == "compress" else ((packed[i], norms[i]), (outs[i],))
                      for i in range(sets)]
                args = [q._kernel_args(op, torch.float16, *io[i]) for i in range(sets)]
                kernel = q._kernels[op]
                config = kernel.config(rows, "float16", q.device, args[0])
                meta = kernel.meta(config, "float16", bucket)
                grid = kernel.grid(rows, meta)
                line = f"tq3 D{head_dim} {rows:>7} {op:18s} B{config.block_rows} w{config.num_warps}"
                forms = [("bytes", kernel.fn)] + [(form, getattr(m, f"tq3_d{head_dim}_{op}").fn)
                                                 for form, m in modules.items()
                                                 if op == "compress" or form == "words"]
                reference = None
                for form, fn in forms:
                    target = packed[0] if op == "compress" else outs[0]
                    target.fill_(0xA5) if op == "compress" else target.fill_(float("nan"))
                    launches = [lambda a=a, fn=fn: fn[grid](*a, rows, bucket, **meta) for a in args]
                    if device == "cuda":
                        us = bench.graph_time_us(launches)
                    else:
                        launches[0]()
                        us = float("nan")
                    result = target.clone()
                    if reference is None:
                        reference, same = result, ""
                        written = (result != 0xA5).float().mean() if op == "compress" else (~result.isnan()).float().mean()
                        assert written > 0.9, f"the checkout's kernel left {1 - written:.0%} unwritten"
                    else:
                        same = "same" if torch.equal(result.nan_to_num(7.0) if op != "compress" else result,
                                                     reference.nan_to_num(7.0) if op != "compress" else reference) \
                            else "DIFFERENT"
                    line += f"  {form} {us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}% {same}"
                if op == "compress":  # the decompress inputs were written by the checkout's compress
                    for i in range(sets):
                        q.compress(xs[i], out=(packed[i], norms[i]))
                print(line, flush=True)


if __name__ == "__main__":
    main()
