"""Experiment (not part of the package): head dims padded to 256 (D=192, 256) in one step. Run on commit
ac13b0b, whose generated compress reads such a row twice (a norm pass, then 64-dim product chunks) and loads the
rotation slots from L2 for every block of rows; decompress loops over two 128-column output steps,
each over two 128-coordinate chunks, loading the rotation from L2 the same way. Rendered with
render.ROW_CHUNK = K_CHUNK = OUT_CHUNK = 256, both ops load the whole rotation (128 KB in fp16) into
shared memory once a program and take ROW_BLOCKS blocks of rows: is that faster at 1M rows and at 8?
Timed as `kernelgen bench` times (kernelgen.bench.graph_time_us over its rotating input sets,
against kernelgen.bench.copy_bandwidth_gbps in the same run); the shipped kernels at the configs of
the shipped H100 tables, the one-step forms over a grid of configs. Codes compared with the shipped
kernel's (fraction equal), decompress outputs by the largest difference.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/wide_rows_one_step.py [second]
"""
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

import kernelgen
from kernelgen import bench, registry, render
from kernelgen.spec import load_spec

CASES = (("tq4", 256), ("tq2", 256), ("tq3", 256), ("tq4", 192))
CONFIGS = [(b, w) for b in (32, 64) for w in (4, 8)]
# second run (`second`): the 3-bit compress (the first run passed it INLINE_PTX, which it lacks), the
# middle row counts, 128-row blocks and 16 row blocks
SECOND_CASES = (("tq3", 256), ("tq3", 192), ("tq4", 256), ("tq2", 192))
SECOND_CONFIGS = [(64, 8), (128, 8)]


def one_step_module(spec: str, head_dim: int):
    render.ROW_CHUNK = render.K_CHUNK = render.OUT_CHUNK = 256
    folder = Path(tempfile.mkdtemp())
    for f in render.render_spec(load_spec(Path(f"specs/{spec}.yaml")), Path(".")):
        (folder / f.name).write_bytes(f.data)
    name = f"one_step_{spec}_d{head_dim}"
    module_spec = importlib.util.spec_from_file_location(name, folder / f"{spec}_d{head_dim}.py")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def time_calls(fn, grid, args, rows, bucket, meta):
    calls = [lambda a=a: fn[grid](*a, rows, bucket, **meta) for a in args]
    return bench.graph_time_us(calls)


def main(second=False):
    cases, configs = (SECOND_CASES, SECOND_CONFIGS) if second else (CASES, CONFIGS)
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for spec, head_dim in cases:
        q = kernelgen.quantizer(spec, head_dim)
        wide = one_step_module(spec, head_dim)
        for rows in ((1 << 20, 1 << 16, 2048) if second else (1 << 20, 8)):
            bucket = registry.row_bucket(rows)
            nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, rows, 2)
            sets = bench.input_sets(nbytes)
            xs = [torch.randn(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
            norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
            outs = [torch.empty(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            for op in ("compress", "decompress"):
                io = [((xs[i],), (packed[i], norms[i])) if op == "compress" else ((packed[i], norms[i]), (outs[i],))
                      for i in range(sets)]
                args = [q._kernel_args(op, torch.float16, *io[i]) for i in range(sets)]
                kernel = q._kernels[op]
                config = kernel.config(rows, "float16", q.device, args[0])
                meta = kernel.meta(config, "float16", bucket)
                us = time_calls(kernel.fn, kernel.grid(rows, meta), args, rows, bucket, meta)
                shipped = (packed[0] if op == "compress" else outs[0]).clone()
                print(f"{spec} D{head_dim} {rows:>7} {op:10s} shipped B{config.block_rows} w{config.num_warps}: "
                      f"{us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%", flush=True)
                fn = getattr(wide, f"{spec}_d{head_dim}_{op}").fn
                for block_rows, warps in configs:
                    for blocks in ((4, 8, 16) if second and rows > 2048 else (1, 4, 8) if rows > 8 else (1,)):
                        m = {"BLOCK_ROWS": block_rows, "num_warps": warps, "num_stages": 1, "PRECISION": "fp16",
                             "ROW_BLOCKS": blocks}
                        if "INLINE_PTX" in fn.arg_names:
                            m["INLINE_PTX"] = True
                        grid = (-(-rows // (block_rows * blocks)), 1)
                        try:
                            us = time_calls(fn, grid, args, rows, bucket, m)
                        except Exception as exc:  # out of resources
                            print(f"    one step B{block_rows} w{warps} rb{blocks}: {type(exc).__name__}", flush=True)
                            continue
                        if op == "compress":
                            check = f"codes equal {bench.code_agreement(packed[0], shipped, q.layout) * 100:.3f}%"
                        else:
                            check = f"max diff {(outs[0].float() - shipped.float()).abs().max().item():.2e}"
                        print(f"    one step B{block_rows} w{warps} rb{blocks}: {us:8.1f} us "
                              f"{nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  {check}", flush=True)


if __name__ == "__main__":
    main(second=sys.argv[1:] == ["second"])
