"""Experiment (not part of the package): tq3 decompress with one product a slot instead of one product of
the centroids joined into coordinate order. The shipped kernel gathers the 8 slots' centroids and joins
them (three levels of tl.join and a reshape) into a (rows, DIM_PAD) operand; here slot j's centroids,
(rows, DIM_PAD / 8), multiply rotation rows 8n + j (loaded once a program, a strided gather), and the 8
products accumulate: the same products, no join. Forms, from the checkout's generated module by a text
patch of its one-product decompress (D=128; the fp16 whole-rotation branch at D=256): joined
(the checkout) and slots. At the config the registry picks (run with KERNELGEN_AUTOTUNE=0: the spec's first, B64 w4) and its launch metas, timed
as `kernelgen bench` times, fp16, against the same run's copy; outputs compared with the checkout's.
Usage (CUDA machine, repo root): KERNELGEN_AUTOTUNE=0 PYTHONPATH=$PWD python3 benchmarks/experiments/tq3_slot_decompress.py
"""
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

import kernelgen
from kernelgen import bench, registry

DIMS = (128, 256)  # D=64: slots of 8 coordinates, under tl.dot's K of 16
SHIFTS = (21, 18, 15, 12, 9, 6, 3, 0)  # slot j's code in the group word, first coordinate highest


def slot_products(source: str, head_dim: int) -> str:
    if head_dim <= 128:
        width, pad, load = "K_CHUNK", "        ", "    rotation = tl.load(rotation_ptr + c * DIM_PAD + k)\n"
        out = "OUT_CHUNK"
    else:
        width, pad, out = "DIM_PAD", "            ", "DIM_PAD"
        load = ("        rotation = tl.load(rotation_ptr + tl.arange(0, DIM_PAD)[:, None] * DIM_PAD"
                " + tl.arange(0, DIM_PAD)[None, :])\n")
    assert source.count(load) == 1, "rotation load not found"
    lpad = load[:len(load) - len(load.lstrip())]
    loads = f"{lpad}n = tl.arange(0, {width} // 8)[:, None]\n{lpad}kk = tl.arange(0, {out})[None, :]\n" + "".join(
        f"{lpad}r{j} = tl.load(rotation_ptr + (8 * n + {j}) * DIM_PAD + kk)  # rotation rows of slot {j}\n"
        for j in range(8))
    product = (f"{pad}a = _coordinate_centroids(packed_ptr, centroids_ptr, rows, row_ok, 0, {width} // 8)\n"
               f"{pad}x = _dot(a, rotation, tl.zeros((BLOCK_ROWS, {out}), dtype=tl.float32), PRECISION)\n")
    assert source.count(product) == 1, "product not found"
    slots = (f"{pad}word = _load_words(packed_ptr, rows, row_ok, 0, {width} // 8)\n"
             f"{pad}x = tl.zeros((BLOCK_ROWS, {out}), dtype=tl.float32)\n" + "".join(
                 f"{pad}x = _dot(_centroid(centroids_ptr, (word >> {s}) & CODE_MASK), r{j}, x, PRECISION)\n"
                 for j, s in enumerate(SHIFTS)))
    return source.replace(load, loads).replace(product, slots)


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folder = Path(tempfile.mkdtemp())
    for head_dim in DIMS:
        q = kernelgen.quantizer("tq3", head_dim, device="cuda")
        path = folder / f"slots_tq3_d{head_dim}.py"
        path.write_text(slot_products(Path(q._variant.module.__file__).read_text(), head_dim))
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
        for rows in (1 << 20, 1 << 16):
            bucket = registry.row_bucket(rows)
            nbytes = bench.op_bytes("decompress", head_dim, q.packed_dim, rows, 2)
            sets = bench.input_sets(nbytes)
            xs = [torch.randn(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
            norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
            outs = [torch.empty(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            for i in range(sets):
                q.compress(xs[i], out=(packed[i], norms[i]))
            args = [q._kernel_args("decompress", torch.float16, (packed[i], norms[i]), (outs[i],)) for i in range(sets)]
            kernel = q._kernels["decompress"]
            config = kernel.config(rows, "float16", q.device, args[0])
            meta = kernel.meta(config, "float16", bucket)
            grid = kernel.grid(rows, meta)
            line = f"tq3 D{head_dim} {rows:>7} decompress B{config.block_rows} w{config.num_warps} {meta}"
            reference = None
            for form, fn in (("joined", kernel.fn), ("slots", getattr(module, f"tq3_d{head_dim}_decompress").fn)):
                outs[0].fill_(float("nan"))
                us = bench.graph_time_us([lambda a=a, fn=fn: fn[grid](*a, rows, bucket, **meta) for a in args])
                result = outs[0].clone()
                assert not result.isnan().any(), f"{form} left outputs unwritten"
                if reference is None:
                    reference, same = result, ""
                else:
                    diff = (result.float() - reference.float()).abs().max().item()
                    same = f"max diff {diff:.2e}"
                line += f"  {form} {us:8.1f} us {nbytes / us / 1e3 / copy_gbps * 100:5.1f}% {same}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
