"""Experiment (not part of the package): compress of rows padded to 256 (D=192, 256) for tq4, tq2 and tq3 in
the forms of the shipped modules, in one process, 1M fp16 rows:
- "tma": the TMA loop as the registry launches it (registry.runs_tma forced on), B64 w8 and B64 w4; at
  D=192 it reads each block in three 64-column boxes (render.WIDE_TMA_K);
- "tma box256" (D=192 only): the same module rendered with one box of 256 columns a block (64 of zeros),
  as tq4 and tq2 shipped before WIDE_TMA_K, loaded from its source and launched the registry's way with
  its own descriptor; B64 w8;
- "pointer": the pointer-load form of the same module (registry.runs_tma forced off, 16 row blocks a
  program), B64 w8 and B128 w8.
Three rounds, timed as `kernelgen bench` times (bench.graph_time_us, one round each); codes against the
fp32 path. tq3 at rows padded to 256 had no TMA form before this experiment.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/wide_tma_forms.py
"""
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402

import kernelgen  # noqa: E402
from kernelgen import bench, registry, render, torch_path, tuning  # noqa: E402
from kernelgen.spec import load_spec  # noqa: E402

ROWS = 1 << 20
SPECS = ("tq4", "tq2", "tq3")


def box256_compress(spec: str, head_dim: int, folder: Path):
    """The compress kernel of the module rendered with one 256-column TMA box a block."""
    shipped = render.WIDE_TMA_K
    render.WIDE_TMA_K = 512  # no head dim is a multiple: one box of DIM_PAD
    try:
        files = render.render_spec(load_spec(f"specs/{spec}.yaml"), Path.cwd())
    finally:
        render.WIDE_TMA_K = shipped
    source = next(f.data for f in files if f.name == f"{spec}_d{head_dim}.py").decode()
    assert "TMA_K = " not in source
    name = f"{spec}_d{head_dim}_box256"
    path = folder / f"{name}.py"
    path.write_text(source)
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return getattr(module, f"{spec}_d{head_dim}_compress").fn


def main():
    from triton.tools.tensor_descriptor import TensorDescriptor

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folder = Path(tempfile.mkdtemp())
    shipped_runs_tma = registry.runs_tma
    bucket = registry.MAX_ROW_BUCKET
    for spec in SPECS:
        for head_dim in (192, 256):
            q = kernelgen.quantizer(spec, head_dim, device="cuda")
            kernel = q._kernels["compress"]
            x = torch.randn(ROWS, head_dim, device="cuda", dtype=torch.float16)
            ref_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
            nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, ROWS, 2)
            forms = [("tma", 64, 8), ("tma", 64, 4), ("pointer", 64, 8), ("pointer", 128, 8)]
            if head_dim == 192:
                forms.insert(2, ("tma box256", 64, 8))
            calls = {}
            for form, block, warps in forms:
                tma = form.startswith("tma")
                registry.runs_tma = (lambda interpreted: True) if tma else (lambda interpreted: False)
                config = tuning.LaunchConfig(block, warps, 1)
                meta = kernel.meta(config, "float16", bucket)
                assert bool(meta["TMA_STAGES"]) == tma
                packed = torch.full((ROWS, q.packed_dim), 0xAB, dtype=torch.uint8, device="cuda")
                norms = torch.full((ROWS, 1), float("nan"), device="cuda")
                args = q._kernel_args("compress", torch.float16, (x,), (packed, norms))
                if form == "tma box256":
                    fn = box256_compress(spec, head_dim, folder)
                    grid, tma_meta = kernel.tma_launch(ROWS, meta, args)
                    tma_meta["x_desc"] = TensorDescriptor(x, [ROWS, head_dim], [head_dim, 1], [block, 256])

                    def call(fn=fn, grid=grid, args=args, tma_meta=tma_meta):
                        fn[grid](*args, ROWS, bucket, **tma_meta)
                else:
                    def call(config=config, args=args, tma=tma):
                        registry.runs_tma = (lambda interpreted: True) if tma else (lambda interpreted: False)
                        kernel.run(config, ROWS, bucket, "float16", args)
                label = f"{form} B{block} w{warps}"
                try:
                    call()
                    torch.cuda.synchronize()
                except Exception as exc:  # noqa: BLE001  (shared memory)
                    print(f"{spec} D{head_dim} {label}: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
                    continue
                print(f"{spec} D{head_dim} {label}: codes = fp32 path "
                      f"{bench.code_agreement(packed, ref_packed, q.layout):.5f}", flush=True)
                calls[label] = call
            times = {label: [] for label in calls}
            for _ in range(3):
                for label, call in calls.items():
                    times[label].append(bench.graph_time_us([call], rounds=1))
            for label, ts in times.items():
                print(f"{spec} D{head_dim} {label:17s} " + " / ".join(f"{t:6.1f}" for t in ts)
                      + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)
    registry.runs_tma = shipped_runs_tma


if __name__ == "__main__":
    main()
