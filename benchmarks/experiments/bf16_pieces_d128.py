"""Experiment (not part of the package): the D=128 TMA compress with each row block read as two boxes of 64
columns (or four of 32) and each product taken in as many K steps, the form D=96 and D=192 already take
(render._tma_k). bf16 rows are normalized before the product, and the normalized tile goes to the wgmma
through a shared-memory buffer that Triton allocates for the conversion to the operand layout: one box of
128 columns takes 16 KB for it and the program 81,936 bytes, so an SM holds 2 programs where fp16 rows
(raw product, no conversion) take 3. In boxes of 64 the buffer is 8 KB (73,744 bytes a program, compiled
for sm_90 here), so 3 fit. fp16 rows are timed in pieces too, since the change would reach them.
The modules are rendered from the templates with render._tma_k patched, loaded, and launched as the
registry launches the TMA loop (its grid, descriptor and metas), B64 w4, 3 stages, 1M rows, three rounds,
timed as `kernelgen bench` times (bench.graph_time_us, one round each); codes against the fp32 path,
norms against the shipped kernel's bit for bit.
With `d96`: tq4 and tq2 at D=96, whose modules already read bf16 rows in boxes of 32 columns, at 2 and 3
programs an SM (the registry gives them 2), the same way.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/bf16_pieces_d128.py [spec ... | d96]
"""
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402

ROWS = 1 << 20
HEAD_DIM = 128


def pieces_module(spec_name: str, tma_k: int, folder: Path, head_dim: int = HEAD_DIM):
    """The spec's module at head_dim rendered with its TMA compress reading boxes of tma_k columns."""
    from kernelgen import render
    from kernelgen.spec import load_spec

    original = render._tma_k

    def patched(tma_rows, pieces, layout):  # render._tma_k's signature (it took `coordinate` too when this ran)
        if tma_rows and layout.head_dim == head_dim:
            return tma_k
        return original(tma_rows, pieces, layout)

    render._tma_k = patched
    try:
        files = render.render_spec(load_spec(Path(f"specs/{spec_name}.yaml")), Path.cwd())
    finally:
        render._tma_k = original
    source = next(f.data for f in files if f.name == f"{spec_name}_d{head_dim}.py").decode()
    assert f"TMA_K = tl.constexpr({tma_k})" in source, "the render did not take the pieces"
    name = f"{spec_name}_d{head_dim}_k{tma_k}"
    path = folder / f"{name}.py"
    path.write_text(source)
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return getattr(module, f"{spec_name}_d{head_dim}_compress").fn


def d96_programs(copy_gbps: float) -> None:
    """tq4 and tq2 at D=96, bf16 rows, the shipped module at 2 and 3 programs an SM (see the docstring)."""
    import kernelgen
    from kernelgen import bench, registry, torch_path, tuning

    config = tuning.LaunchConfig(64, 4, 1)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for spec in ("tq4", "tq2"):
        q = kernelgen.quantizer(spec, 96, device="cuda")
        kernel = q._kernels["compress"]
        x = torch.randn(ROWS, 96, device="cuda", dtype=torch.bfloat16)
        ref_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
        nbytes = bench.op_bytes("compress", 96, q.packed_dim, ROWS, 2)
        calls = {}
        for per_sm in (2, 3):
            packed = torch.full((ROWS, q.packed_dim), 0xAB, dtype=torch.uint8, device="cuda")
            norms = torch.full((ROWS,), float("nan"), device="cuda")
            args = q._kernel_args("compress", torch.bfloat16, (x,), (packed, norms))
            meta = kernel.meta(config, "bfloat16", registry.MAX_ROW_BUCKET)
            _, tma_meta = kernel.tma_launch(ROWS, meta, args)
            grid = (min(-(-ROWS // 64), per_sm * sms), 1)

            def call(grid=grid, args=args, tma_meta=tma_meta):
                kernel.fn[grid](*args, ROWS, registry.MAX_ROW_BUCKET, **tma_meta)
            call()
            torch.cuda.synchronize()
            print(f"{spec} D96 bfloat16 p{per_sm} codes = fp32 path "
                  f"{bench.code_agreement(packed, ref_packed, q.layout):.5f}", flush=True)
            calls[per_sm] = call
        times = {per_sm: [] for per_sm in calls}
        for _ in range(3):
            for per_sm, call in calls.items():
                times[per_sm].append(bench.graph_time_us([call], rounds=1))
        for per_sm, ts in times.items():
            print(f"{spec} D96 bfloat16 p{per_sm} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


def main():
    import kernelgen
    from kernelgen import bench, registry, torch_path, tuning
    from triton.tools.tensor_descriptor import TensorDescriptor

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    if sys.argv[1:] == ["d96"]:
        d96_programs(copy_gbps)
        return
    folder = Path(tempfile.mkdtemp())
    config = tuning.LaunchConfig(64, 4, 1)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for spec in sys.argv[1:] or ["tq4", "tq2", "tq3"]:
        q = kernelgen.quantizer(spec, HEAD_DIM, device="cuda")
        kernel = q._kernels["compress"]
        forms = [("shipped", kernel.fn, None, None)]
        for tma_k in (64, 32):
            fn = pieces_module(spec, tma_k, folder)
            forms += [(f"k{tma_k}-p{per_sm}", fn, tma_k, per_sm) for per_sm in (2, 3)]
        for dtype in (torch.bfloat16, torch.float16):
            dname = str(dtype).removeprefix("torch.")
            x = torch.randn(ROWS, HEAD_DIM, device="cuda", dtype=dtype)
            x[:3] = 0
            ref_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
            nbytes = bench.op_bytes("compress", HEAD_DIM, q.packed_dim, ROWS, 2)
            calls, outs = {}, {}
            for label, fn, tma_k, per_sm in forms:
                if dtype == torch.float16 and per_sm == 2:
                    continue
                packed = torch.full((ROWS, q.packed_dim), 0xAB, dtype=torch.uint8, device="cuda")
                norms = torch.full((ROWS,), float("nan"), device="cuda")
                args = q._kernel_args("compress", dtype, (x,), (packed, norms))
                meta = kernel.meta(config, dname, registry.MAX_ROW_BUCKET)
                assert meta["TMA_STAGES"] > 0
                grid, tma_meta = kernel.tma_launch(ROWS, meta, args)
                if tma_k:
                    grid = (min(-(-ROWS // 64), per_sm * sms), 1)
                    tma_meta["x_desc"] = TensorDescriptor(x, [ROWS, HEAD_DIM], [HEAD_DIM, 1], [64, tma_k])

                def call(fn=fn, grid=grid, args=args, tma_meta=tma_meta):
                    fn[grid](*args, ROWS, registry.MAX_ROW_BUCKET, **tma_meta)
                try:
                    call()
                    torch.cuda.synchronize()
                except Exception as exc:  # noqa: BLE001  (e.g. out of shared memory)
                    print(f"{spec} {dname} {label}: {type(exc).__name__}: {str(exc)[:160]}", flush=True)
                    continue
                calls[label], outs[label] = call, (packed, norms)
            for label, (packed, norms) in outs.items():
                print(f"{spec} {dname} {label:8s} codes = fp32 path "
                      f"{bench.code_agreement(packed, ref_packed, q.layout):.5f}, norms = shipped "
                      f"{torch.equal(norms, outs['shipped'][1])}", flush=True)
            times = {label: [] for label in calls}
            for _ in range(3):
                for label, call in calls.items():
                    times[label].append(bench.graph_time_us([call], rounds=1))
            for label, ts in times.items():
                print(f"{spec} {dname} {label:8s} " + " / ".join(f"{t:6.1f}" for t in ts)
                      + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
