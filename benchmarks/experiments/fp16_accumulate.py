"""Experiment (not part of the package): tq4 / tq2 compress with the slot products accumulated in fp16
(`tl.dot(..., out_dtype=tl.float16)`) instead of fp32. The fp16 search rounds each product to fp16
anyway; an fp16 accumulator takes half the registers (the kernel is latency-bound at 3 blocks of 4 warps
an SM, 162 registers a thread: `h100-ncu-variants.txt`), at the cost of rounding every partial sum.
Forms, each from the checkout's generated module by a text patch of its fp16 one-step compress: fp32
(the checkout) and fp16-acc. At the config the registry picks (run with KERNELGEN_AUTOTUNE=0: the spec's first, B64 w4) and its launch metas,
timed as `kernelgen bench` times, fp16 rows, against the same run's copy; with the code agreement of each
against the fp32 PyTorch path (as `kernelgen bench` counts it).
Usage (CUDA machine, repo root): KERNELGEN_AUTOTUNE=0 PYTHONPATH=$PWD python3 benchmarks/experiments/fp16_accumulate.py
"""
import importlib.util
import re
import sys
import tempfile
from pathlib import Path

import torch

import kernelgen
from kernelgen import bench, registry, torch_path

VARIANTS = (("tq4", 128), ("tq4", 64), ("tq4", 96), ("tq2", 128))
PRODUCT = re.compile(r"(y\d) = _dot\(xf, (w\d), tl\.zeros\(\(BLOCK_ROWS, SLOT_PAD\), dtype=tl\.float32\), PRECISION\)")


def fp16_accumulate(source: str) -> str:
    patched, count = PRODUCT.subn(r"\1 = tl.dot(xf.to(tl.float16), \2, out_dtype=tl.float16)", source)
    assert count >= 2, "no slot products found"
    return patched


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folder = Path(tempfile.mkdtemp())
    for spec, head_dim in VARIANTS:
        q = kernelgen.quantizer(spec, head_dim, device="cuda")
        path = folder / f"acc16_{spec}_d{head_dim}.py"
        path.write_text(fp16_accumulate(Path(q._variant.module.__file__).read_text()))
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
        for rows in (1 << 20, 1 << 16):
            bucket = registry.row_bucket(rows)
            nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, rows, 2)
            sets = bench.input_sets(nbytes)
            xs = [torch.randn(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
            norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
            reference = torch_path.compress_rows(xs[0], q.rotation, q.boundaries, q.layout)[0]
            args = [q._kernel_args("compress", torch.float16, (xs[i],), (packed[i], norms[i])) for i in range(sets)]
            kernel = q._kernels["compress"]
            config = kernel.config(rows, "float16", q.device, args[0])
            meta = kernel.meta(config, "float16", bucket)
            grid = kernel.grid(rows, meta)
            line = f"{spec} D{head_dim} {rows:>7} compress B{config.block_rows} w{config.num_warps} " \
                   f"blocks {meta.get('ROW_BLOCKS', 1)}"
            for form, fn in (("fp32-acc", kernel.fn), ("fp16-acc", getattr(module, f"{spec}_d{head_dim}_compress").fn)):
                packed[0].fill_(0xA5)
                us = bench.graph_time_us([lambda a=a, fn=fn: fn[grid](*a, rows, bucket, **meta) for a in args])
                agree = bench.code_agreement(packed[0], reference, q.layout)
                line += f"  {form} {us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}% agree {100 * agree:.3f}%"
            print(line, flush=True)


if __name__ == "__main__":
    main()
