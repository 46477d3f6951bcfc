"""Experiment (not part of the package): the Hopper decompress (the modules' WS_DECOMPRESS, rendered only
for rows padded to 256: render.WS_DECOMPRESS_DIM_PAD) at D=128. At D=128 decompress runs the Triton kernel,
tq4 at about 77% of copy and tq3 / tq2 at 66-70% (benchmarks/h100-d128-pieces.md), where the Gluon kernel put
D=256 at 83-85%. The three specs are rendered with WS_DECOMPRESS_DIM_PAD = 128 into a temporary kernel
path; their WS_DECOMPRESS runs through the quantizer (BoundKernel.launch_ws) at 1 and 2 programs an SM;
the Triton kernel runs at its shipped 1M-row config (the same code in both modules). The Gluon kernel
gathers from the fp16 codebook, which it is handed in place of tq3's pair table. 1M rows, fp16 and bf16
output, three rounds, timed as `kernelgen bench` times (bench.graph_time_us, one round each); outputs
against the fp32 path.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/ws_decompress_d128.py
"""
import json
import os
import tempfile
from pathlib import Path

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402

ROWS = 1 << 20


def shipped_config(spec: str, op: str, dtype: str):
    from kernelgen import tuning

    table = next(Path(f"generated/{spec}/tuned").glob("*.json"))
    entries = json.loads(table.read_text())["entries"]
    value = next(v for k, v in entries.items() if k.startswith(f"{spec}_d128_{op}|") and k.endswith(f"|1048576|{dtype}"))
    return tuning.LaunchConfig(value["block_rows"], value["num_warps"], value["num_stages"])


def main():
    import kernelgen
    from kernelgen import bench, registry, render, torch_path
    from kernelgen.spec import load_spec

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folder = Path(tempfile.mkdtemp())
    render.WS_DECOMPRESS_DIM_PAD = 128  # (before the render rule took D=128)
    for spec in ("tq4", "tq3", "tq2"):
        render.apply_build(render.plan_build(load_spec(Path(f"specs/{spec}.yaml")), folder))
    registry.add_kernel_path(folder)
    for spec in ("tq4", "tq3", "tq2"):
        q = kernelgen.quantizer(spec, 128, device="cuda")
        assert q._kernels["decompress"].variant.folder.parent == folder.resolve()
        assert hasattr(q._kernels["decompress"].variant.module, "WS_DECOMPRESS")
        for dtype in (torch.float16, torch.bfloat16):
            dname = str(dtype).removeprefix("torch.")
            packed, norms = q.compress(torch.randn(ROWS, 128, device="cuda", dtype=dtype))
            ref = torch_path.decompress_rows(packed, norms.view(-1), q.rotation, q.centroids, q.layout,
                                             torch.float32, False)
            kernel = q._kernels["decompress"]
            calls, outs = {}, {}
            config = shipped_config(spec, "decompress", dname)
            out = torch.full((ROWS, 128), float("nan"), device="cuda", dtype=dtype)
            args = q._kernel_args("decompress", dtype, (packed, norms), (out,))

            def triton_call(args=args, config=config):
                kernel.run(config, ROWS, registry.MAX_ROW_BUCKET, dname, args)
            calls[f"triton B{config.block_rows} w{config.num_warps}"], outs["triton"] = triton_call, out
            for per_sm in (1, 2):
                out = torch.full((ROWS, 128), float("nan"), device="cuda", dtype=dtype)
                args = q._kernel_args("decompress", dtype, (packed, norms), (out,))
                # the Gluon kernel gathers from the fp16 codebook; tq3's Triton kernel at D<=128 takes the
                # pair table (CENTROID_PAIRS) instead
                args = (*args[:3], q.centroids.to("cuda", torch.float16).contiguous(), args[4])

                def ws_call(args=args, per_sm=per_sm):
                    state = kernel._ws_state(out.device)
                    state["sms"] = per_sm * torch.cuda.get_device_properties(0).multi_processor_count
                    assert kernel.launch_ws(ROWS, registry.MAX_ROW_BUCKET, dname, out.device, args)
                calls[f"ws p{per_sm}"], outs[f"ws p{per_sm}"] = ws_call, out
            for label, call in calls.items():
                try:
                    call()
                    torch.cuda.synchronize()
                except Exception as exc:  # noqa: BLE001
                    print(f"{spec} {dname} {label}: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                    return
            for label, out in outs.items():
                err = (out.float() - ref).abs().max().item()
                print(f"{spec} D128 {dname} {label:8s} max |out - fp32 path| {err:.2e}", flush=True)
            nbytes = bench.op_bytes("decompress", 128, q.packed_dim, ROWS, 2)
            times = {label: [] for label in calls}
            for _ in range(3):
                for label, call in calls.items():
                    times[label].append(bench.graph_time_us([call], rounds=1))
            for label, ts in times.items():
                print(f"{spec} D128 {dname} {label:14s} " + " / ".join(f"{t:6.1f}" for t in ts)
                      + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
