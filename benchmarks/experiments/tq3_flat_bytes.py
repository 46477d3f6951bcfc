"""Experiment (not part of the package): tq3's packed bytes read and written through flattened pointer
tensors. In two dims ((rows, byte groups), a stride of 3 bytes) Triton 3.6 lays the one-byte stores of
compress and the one-byte loads of decompress out with each lane of a warp on its own row (TTGIR:
threadsPerWarp [32, 1]), so each access touches 32 sectors for 32 bytes. Flattened to one dim, groups
fastest, a warp's lanes take neighbouring groups of a row. The modules rendered from the working tree's
template (the flattened form) against the generated modules of the checkout (run on commit a33c1cd, whose
generated/tq3 is the two-dim form, with a template that flattened both the stores of compress and the
loads of `_load_words`), each at the config of the shipped H100 table and the registry's launch metas;
timed as `kernelgen bench` times, fp16, against the same run's copy. Outcome: compress faster (adopted),
decompress slower (the loads went back to two dims).
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tq3_flat_bytes.py
"""
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

import kernelgen
from kernelgen import bench, registry, render
from kernelgen.spec import load_spec

DIMS = (64, 96, 128, 192, 256)


def flat_modules():
    folder = Path(tempfile.mkdtemp())
    for f in render.render_spec(load_spec(Path("specs/tq3.yaml")), Path(".")):
        (folder / f.name).write_bytes(f.data)
    modules = {}
    for head_dim in DIMS:
        name = f"flat_tq3_d{head_dim}"
        module_spec = importlib.util.spec_from_file_location(name, folder / f"tq3_d{head_dim}.py")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        modules[head_dim] = module
    return modules


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    flat = flat_modules()
    for head_dim in DIMS:
        q = kernelgen.quantizer("tq3", head_dim)
        assert "tl.reshape(out, (BLOCK_ROWS" not in Path(q._variant.module.__file__).read_text(), "checkout is flat"
        for rows in (1 << 20, 1 << 16):
            bucket = registry.row_bucket(rows)
            nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, rows, 2)
            sets = bench.input_sets(nbytes)
            xs = [torch.randn(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
            norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
            outs = [torch.empty(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            for op in ("compress", "decompress", "decompress_rotated"):
                io = [((xs[i],), (packed[i], norms[i])) if op == "compress" else ((packed[i], norms[i]), (outs[i],))
                      for i in range(sets)]
                args = [q._kernel_args(op, torch.float16, *io[i]) for i in range(sets)]
                kernel = q._kernels[op]
                config = kernel.config(rows, "float16", q.device, args[0])
                meta = kernel.meta(config, "float16", bucket)
                grid = kernel.grid(rows, meta)
                line = f"tq3 D{head_dim} {rows:>7} {op:18s} B{config.block_rows} w{config.num_warps}"
                times = {}
                for form, fn in (("2-D", kernel.fn), ("flat", getattr(flat[head_dim], f"tq3_d{head_dim}_{op}").fn)):
                    if op == "compress":
                        packed[0].fill_(0xA5)
                    else:
                        outs[0].fill_(float("nan"))
                    times[form] = bench.graph_time_us([lambda a=a, fn=fn: fn[grid](*a, rows, bucket, **meta)
                                                       for a in args])
                    result = (packed[0] if op == "compress" else outs[0]).clone()
                    if form == "2-D":
                        reference = result
                    else:
                        same = torch.equal(result, reference) if op == "compress" else \
                            torch.equal(result.nan_to_num(7.0), reference.nan_to_num(7.0))
                line += "  ".join(f"  {form} {us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}%"
                                  for form, us in times.items())
                print(f"{line}  same output {same}", flush=True)


if __name__ == "__main__":
    main()
