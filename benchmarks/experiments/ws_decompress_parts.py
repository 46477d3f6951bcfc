"""Experiment (not part of the package): compute partitions of the Hopper decompress (WS_DECOMPRESS) at
D=96 and 128, tq2 D=96 on it, and tq3's codes gathered in pairs. One program an SM ran two compute
partitions of one warpgroup each (8 warps, plus the ring's loader): at D=128 the 3-bit kernel reached
72.5% of copy, at D=96 it was no faster than the Triton kernel (128.8 against 127.7 µs), and its time fell
less than its bytes from D=128 to D=96 (benchmarks/h100-d128-pieces.md) - as though a block's latency, not
memory, bounded it. Each form renders the three specs into a temporary folder with its
(partitions, registers a thread, async, pairs) for every module of rows padded to 128
(render._ws_decompress_form; registers chosen so that the sm_90 compile spills none): 2, 3 or 4 compute
partitions; the products issued asynchronously and waited for once (`:a`); tq3's codes gathered two groups
a load from its pair table (`:p`). tq2 D=96, whose 24-byte packed rows are no TMA box, reads them by the
pointer loads of tq3's kernel (a quarter of a row a thread, 8-byte words); forms of four partitions skip
the modules whose rows come by TMA (their loader makes them spill). Each form runs as the registry
launches it (BoundKernel.launch_ws, one program an SM); "triton" is the tree's Triton kernel at its tuned
config, "shipped" the tree's Hopper kernel. 1M and 65,536 rows, fp16 and bf16 output, three rounds, timed
as `kernelgen bench` times; outputs against the fp32 path, poisoned with NaN first. NCU=1 launches each
form twice, untimed, for Nsight Compute.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/ws_decompress_parts.py
with FORMS="2:232 3:160 4:128 3:160:a 4:128:a:p" CASES="tq3:96 tq2:96 ..." ROWS="1048576 65536"
DTYPES="float16 bfloat16" (the runs: h100-ws_decompress_parts.txt, -async.txt, -pairs.txt)
"""
import os
import tempfile
from pathlib import Path

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402

# parts:regs, :a for products issued asynchronously and waited for once, :p for 3-bit codes gathered in
# pairs of groups from the pair table (render.WS_DECOMPRESS_PARTS's fields)
FORMS = [(int(f.split(":")[0]), int(f.split(":")[1]), ":a" in f, ":p" in f)
         for f in os.environ.get("FORMS", "2:232 3:160 4:128").split()]
NCU = os.environ.get("NCU") == "1"  # each Gluon form launched twice, untimed (under Nsight Compute)
CASES = [(c.split(":")[0], int(c.split(":")[1])) for c in
         os.environ.get("CASES", "tq3:96 tq2:96 tq3:128 tq4:96 tq4:128 tq2:128").split()]
ROWS = [int(r) for r in os.environ.get("ROWS", "1048576 65536").split()]
DTYPES = [getattr(torch, d) for d in os.environ.get("DTYPES", "float16 bfloat16").split()]
RING_PARTS = 3  # with the ring's loader, 4 partitions spill (sm_90 compile)


def render_forms():
    """{(parts, regs, async, pairs): folder} of the three specs rendered with that form at rows padded to 128."""
    from kernelgen import render
    from kernelgen.spec import load_spec

    folders = {}
    shipped_form = render._ws_decompress_form
    for parts, regs, issued, pairs in FORMS:
        render._ws_decompress_form = lambda layout, form=(parts, regs, issued, pairs): (
            (*form[:3], form[3] and layout.bytes_per_group == 3) if layout.dim_pad == 128 else shipped_form(layout))
        folder = Path(tempfile.mkdtemp())
        for spec in ("tq4", "tq3", "tq2"):
            render.apply_build(render.plan_build(load_spec(Path(f"specs/{spec}.yaml")), folder))
        folders[(parts, regs, issued, pairs)] = folder
    return folders


def main():
    import kernelgen
    from kernelgen import bench, registry, torch_path

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folders = render_forms()
    registry.WS_DECOMPRESS_PADDED_128_FROM = registry.WS_DECOMPRESS_FROM = 1
    for spec, head_dim in CASES:
        q = kernelgen.quantizer(spec, head_dim, device="cuda")
        shipped = q._kernels["decompress"]
        kernels = {}
        for (parts, regs, issued, pairs), folder in folders.items():
            variant = registry._load(folder.resolve() / spec, spec, head_dim)
            if not hasattr(variant.module, "WS_DECOMPRESS"):
                continue
            ring = "packed_desc" in getattr(variant.module, variant.module.WS_DECOMPRESS).arg_names
            if ring and parts > RING_PARTS:
                continue
            kernels[f"ws p{parts} r{regs}{' async' if issued else ''}{' pairs' if pairs else ''}"] = registry.BoundKernel(variant, "decompress")
        for dtype in DTYPES:
            dname = str(dtype).removeprefix("torch.")
            for rows in ROWS:
                packed, norms = q.compress(torch.randn(rows, head_dim, device="cuda", dtype=dtype))
                ref = torch_path.decompress_rows(packed, norms.view(-1), q.rotation, q.centroids, q.layout,
                                                 torch.float32, False)
                calls, outs = {}, {}
                for label, first in (("triton", 1 << 40), ("shipped", 1)):
                    if label == "shipped" and not hasattr(shipped.variant.module, "WS_DECOMPRESS"):
                        continue
                    out = torch.full((rows, head_dim), float("nan"), device="cuda", dtype=dtype)

                    def call(out=out, first=first):
                        registry.WS_DECOMPRESS_PADDED_128_FROM = registry.WS_DECOMPRESS_FROM = first
                        q.decompress(packed, norms, dtype=dtype, out=out)
                    calls[label], outs[label] = call, out
                for label, kernel in kernels.items():
                    out = torch.full((rows, head_dim), float("nan"), device="cuda", dtype=dtype)
                    args = q._kernel_args("decompress", dtype, (packed, norms), (out,))

                    def call(kernel=kernel, args=args, out=out):
                        registry.WS_DECOMPRESS_PADDED_128_FROM = registry.WS_DECOMPRESS_FROM = 1
                        assert kernel.launch_ws(rows, registry.row_bucket(rows), dname, out.device, args)
                    calls[label], outs[label] = call, out
                for label, call in list(calls.items()):
                    try:
                        call()
                        torch.cuda.synchronize()
                    except Exception as exc:  # noqa: BLE001
                        print(f"{spec} D{head_dim} {label}: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
                        del calls[label]
                if NCU:
                    for label, call in calls.items():
                        print(f"ncu order: {spec} D{head_dim} {dname} rows {rows} {label}", flush=True)
                        call()
                        call()
                    torch.cuda.synchronize()
                    continue
                for label in calls:
                    err = (outs[label].float() - ref).abs().max().item()
                    print(f"{spec} D{head_dim} {dname} rows {rows} {label:14s} max |out - fp32 path| {err:.2e}, "
                          f"nan {outs[label].isnan().sum().item()}", flush=True)
                nbytes = bench.op_bytes("decompress", head_dim, q.packed_dim, rows, 2)
                times = {label: [] for label in calls}
                for _ in range(3):
                    for label, call in calls.items():
                        times[label].append(bench.graph_time_us([call], rounds=1))
                for label, ts in times.items():
                    print(f"{spec} D{head_dim} {dname} rows {rows:>7} {label:14s} " + " / ".join(f"{t:6.1f}" for t in ts)
                          + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
