"""Experiment (not part of the package): bf16 rows into the TMA compress product as they are, like fp16
rows since raw_product_compress.py, with the rotation split in two bf16 parts (hi = bf16(R), lo =
bf16(R - hi)) and two wgmma a product (x @ hi + x @ lo, fp32 accumulation), scaled by 1/(norm + eps)
after. fp16 may not hold bf16 rows (past 65504, or their small values), so today they are normalized
first, converted to fp16 and go back through shared memory for the product, at 2 programs an SM. With
hi + lo the rotation carries about 16 significant bits, so codes should agree with the fp32 path more
often than the fp16 form's (a CPU emulation of tq4 D=128 over 200,000 bf16 rows: 99.999% against 99.919%).
The shipped module's source is rewritten as it runs: its normalized branch becomes the split product, and
the rotation's lo part is loaded before the loop from the second half of a stacked (hi, lo) tensor.
tq4 / tq2 / tq3 at D=128, 1M bf16 rows, B64 w4, 2 and 3 programs an SM, three rounds each, timed as
`kernelgen bench` times (bench.graph_time_us, one round each); codes against the fp32 path, norms bit for bit.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/bf16_split_compress.py
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
CASES = [("tq4", 128), ("tq2", 128), ("tq3", 128)]
TMA_LOAD = "x = x_desc.load([block * BLOCK_ROWS, 0])"
PRODUCT = re.compile(r"_dot\(xf, (\w+), tl\.zeros\([^)]*\), dtype=tl\.float32\), PRECISION\)")


def split_source(source: str) -> str:
    """The module with its TMA loop's normalized branch turned into the split bf16 product."""
    start = source.index("        for block in tl.range(")
    head, loop = source[:start], source[start:]
    end = loop.index("    else:  # pointer loads")
    loop, tail = loop[:end], loop[end:]
    assert TMA_LOAD in loop and "                xf = xf * inv\n" in loop
    loop = loop.replace("                xf = xf * inv\n", "")
    names = PRODUCT.findall(loop)
    assert names, "no product"
    loop = PRODUCT.sub(lambda m: f"tl.dot(x, {m.group(1)}, acc=tl.dot(x, {m.group(1)}_lo)) * inv", loop)
    if "rotation_t" in names:
        lo = "        rotation_t_lo = tl.load(rotation_t_ptr + DIM_PAD * DIM_PAD + k * DIM_PAD + c[None, :])\n"
    else:
        lo = "".join(f"        {w}_lo = tl.load(w + ({len(names)} + {int(w[1:])}) * DIM_PAD * SLOT_PAD)\n"
                     for w in names)
    return head + "        # the rotation's lo part (experiment: bf16 rows, split product)\n" + lo + loop + tail


def split_operand(rotation_fp32: torch.Tensor) -> torch.Tensor:
    """(hi, lo) stacked along the first axis, bf16: hi = bf16(R), lo = bf16(R - hi)."""
    hi = rotation_fp32.to(torch.bfloat16)
    lo = (rotation_fp32 - hi.float()).to(torch.bfloat16)
    if rotation_fp32.dim() == 2:
        return torch.stack([hi, lo]).contiguous()
    return torch.cat([hi, lo]).contiguous()


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
    original = registry.TMA_COMPRESS
    for spec, head_dim in CASES:
        q = kernelgen.quantizer(spec, head_dim, device="cuda")
        kernel = q._kernels["compress"]
        source = Path(f"generated/{spec}/{spec}_d{head_dim}.py").read_text()
        split_fn = getattr(load(split_source(source), f"{spec}_d{head_dim}_split", folder),
                           f"{spec}_d{head_dim}_compress").fn
        operand = split_operand(kernel.variant.compress_rotation("fp32")).cuda()
        x = torch.randn(ROWS, head_dim, device="cuda", dtype=torch.bfloat16)
        x[:3] = 0
        ref_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
        nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, ROWS, 2)
        calls, outs = {}, {}
        for label, fn, per_sm in (("shipped", kernel.fn, 2), ("split-p2", split_fn, 2), ("split-p3", split_fn, 3)):
            registry.TMA_COMPRESS = (*original[:2], {128: per_sm, 64: 4}, original[3])
            packed = torch.full((ROWS, q.packed_dim), 0xAB, dtype=torch.uint8, device="cuda")
            norms = torch.full((ROWS,), float("nan"), device="cuda")
            args = q._kernel_args("compress", torch.bfloat16, (x,), (packed, norms))
            if label != "shipped":
                args = (args[0], operand, *args[2:])
            meta = kernel.meta(config, "bfloat16", registry.MAX_ROW_BUCKET)
            assert meta["TMA_STAGES"] > 0
            grid, tma_meta = kernel.tma_launch(ROWS, meta, args)

            def call(fn=fn, grid=grid, args=args, tma_meta=tma_meta):
                fn[grid](*args, ROWS, registry.MAX_ROW_BUCKET, **tma_meta)
            try:
                call()
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001  (e.g. out of shared memory at 3 an SM)
                print(f"{spec} D{head_dim} {label}: {type(exc).__name__}: {str(exc)[:160]}", flush=True)
                continue
            calls[label], outs[label] = call, (packed, norms)
        registry.TMA_COMPRESS = original
        for label, (packed, norms) in outs.items():
            print(f"{spec} D{head_dim} {label:8s} codes = fp32 path "
                  f"{bench.code_agreement(packed, ref_packed, q.layout):.5f}, norms = shipped "
                  f"{torch.equal(norms, outs['shipped'][1])}", flush=True)
        times = {label: [] for label in calls}
        for _ in range(3):
            for label, call in calls.items():
                times[label].append(bench.graph_time_us([call], rounds=1))
        for label, ts in times.items():
            print(f"{spec} D{head_dim} {label:8s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
