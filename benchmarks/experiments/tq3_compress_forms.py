"""Experiment (not part of the package): 3-bit compress (tq3), which Nsight Compute shows bound by L1/L2
traffic rather than DRAM (h100-ncu-variants.txt).
1. D=192/256: the one-step form with the whole rotation's slots (8 x 256 x 32 fp16, 128 KB) in shared
   memory once a program and ROW_BLOCKS row blocks, as tq4/tq2 have since commit a5ad1cb (run on commit
   638e883 with render._whole_compress, a function of that commit, forced on; since adopted, so the
   shipped and the rendered kernels are now the same), against the shipped two-pass kernel that re-reads
   the slots from L2 for every block.
2. D=64/96/128: how much of the time the stores take: the shipped kernel, then the same kernel with its
   three one-byte stores a group cut to one (wrong bytes; time only) and to none (norms only).
Timed as `kernelgen bench` times (graph over rotating input sets), fp16 rows, shipped configs of the H100
table for the shipped kernels.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tq3_compress_forms.py
"""
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

import kernelgen
from kernelgen import bench, registry, render
from kernelgen.spec import load_spec


def load_source(name, source):
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(source)
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def whole_module(head_dim):
    render._whole_compress = lambda fp16_search: True
    files = {f.name: f.data for f in render.render_spec(load_spec(Path("specs/tq3.yaml")), Path("."))}
    return load_source(f"whole_tq3_d{head_dim}", files[f"tq3_d{head_dim}.py"].decode())


def cut_stores_module(head_dim, keep):
    source = Path(registry.load_variant("tq3", head_dim).module.__file__).read_text()
    for t in (1, 2):
        line = f"        tl.store(out + {t}, "
        assert source.count(line) == 1
        if t >= keep:
            source = source.replace(line, "        pass  # tl.store(out + {t}, ".replace("{t}", str(t)))
    if keep == 0:
        line = "        tl.store(out, "
        assert source.count(line) == 1
        source = source.replace(line, "        pass  # tl.store(out, ")
    return load_source(f"cut{keep}_tq3_d{head_dim}", source)


def setup(head_dim, rows):
    q = kernelgen.quantizer("tq3", head_dim)
    nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, rows, 2)
    sets = bench.input_sets(nbytes)
    xs = [torch.randn(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
    packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
    norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
    args = [q._kernel_args("compress", torch.float16, (xs[i],), (packed[i], norms[i])) for i in range(sets)]
    return q, nbytes, args, packed


def timed(fn, grid, args, rows, bucket, meta):
    return bench.graph_time_us([lambda a=a: fn[grid](*a, rows, bucket, **meta) for a in args])


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    pct = lambda nbytes, us: f"{us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%"
    for head_dim in (256, 192):
        wide = whole_module(head_dim)
        fn = getattr(wide, f"tq3_d{head_dim}_compress").fn
        for rows in (1 << 20, 1 << 16, 2048, 8):
            q, nbytes, args, packed = setup(head_dim, rows)
            bucket = registry.row_bucket(rows)
            kernel = q._kernels["compress"]
            config = kernel.config(rows, "float16", q.device, args[0])
            meta = kernel.meta(config, "float16", bucket)
            us = timed(kernel.fn, kernel.grid(rows, meta), args, rows, bucket, meta)
            shipped = packed[0].clone()
            print(f"tq3 D{head_dim} {rows:>7} shipped B{config.block_rows} w{config.num_warps}: {pct(nbytes, us)}",
                  flush=True)
            for block_rows, warps in ((32, 4), (64, 4), (64, 8), (128, 8)):
                for blocks in ((4, 8) if rows > 2048 else (1,)):
                    m = {"BLOCK_ROWS": block_rows, "num_warps": warps, "num_stages": 1, "PRECISION": "fp16",
                         "ROW_BLOCKS": blocks}
                    grid = (-(-rows // (block_rows * blocks)), 1)
                    try:
                        us = timed(fn, grid, args, rows, bucket, m)
                    except Exception as exc:  # out of resources
                        print(f"    whole B{block_rows} w{warps} rb{blocks}: {type(exc).__name__}", flush=True)
                        continue
                    same = bench.code_agreement(packed[0], shipped, q.layout) * 100
                    print(f"    whole B{block_rows} w{warps} rb{blocks}: {pct(nbytes, us)}  codes equal {same:.3f}%",
                          flush=True)
    rows = 1 << 20
    bucket = registry.row_bucket(rows)
    for head_dim in (128, 96, 64):
        q, nbytes, args, packed = setup(head_dim, rows)
        kernel = q._kernels["compress"]
        config = kernel.config(rows, "float16", q.device, args[0])
        meta = kernel.meta(config, "float16", bucket)
        grid = kernel.grid(rows, meta)
        us = timed(kernel.fn, grid, args, rows, bucket, meta)
        print(f"tq3 D{head_dim} {rows} shipped B{config.block_rows} w{config.num_warps} rb{meta['ROW_BLOCKS']}: "
              f"{pct(nbytes, us)}", flush=True)
        for keep in (1, 0):
            fn = getattr(cut_stores_module(head_dim, keep), f"tq3_d{head_dim}_compress").fn
            us = timed(fn, grid, args, rows, bucket, meta)
            print(f"    {keep} byte store{'s' if keep != 1 else ''} a group (time only): {pct(nbytes, us)}", flush=True)


if __name__ == "__main__":
    main()
