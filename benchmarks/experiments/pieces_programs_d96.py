"""Experiment (not part of the package): programs an SM for the D=96 TMA compress, and tq3 D=96 read in
pieces. tq4 and tq2 at D=96 read each row block in three boxes of 32 columns (53,264 bytes of shared
memory a program for fp16 and bf16 rows, compiled for sm_90; 126 registers a thread for bf16 rows), so 4
programs could share an SM where the registry puts 3. tq3 at D=96 (coordinate-order compress) reads one
box of 128 columns, zeros past 96: bf16 rows then take 81,936 bytes (2 an SM); rendered in boxes of 32 as
bf16_pieces_d128.py renders D=128, 53,264 bytes (bf16) and 50,224 (fp16).
Each form is launched as the registry launches the TMA loop (its descriptor and metas, the grid at the
given programs an SM), B64 w4, 3 stages, 1M rows, three rounds, timed as `kernelgen bench` times; codes
against the fp32 path.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/pieces_programs_d96.py
"""
import os
import sys
import tempfile
from pathlib import Path

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bf16_pieces_d128 import pieces_module  # noqa: E402

ROWS = 1 << 20
HEAD_DIM = 96


def main():
    import kernelgen
    from kernelgen import bench, registry, torch_path, tuning
    from triton.tools.tensor_descriptor import TensorDescriptor

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folder = Path(tempfile.mkdtemp())
    config = tuning.LaunchConfig(64, 4, 1)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for spec in ("tq4", "tq2", "tq3"):
        q = kernelgen.quantizer(spec, HEAD_DIM, device="cuda")
        kernel = q._kernels["compress"]
        if spec == "tq3":  # shipped: one box; k32: boxes of 32
            fn = pieces_module(spec, 32, folder, HEAD_DIM)
            forms = [("shipped", kernel.fn, None, None)] + [(f"k32-p{p}", fn, 32, p) for p in (2, 3, 4)]
        else:  # shipped modules already in boxes of 32: the programs an SM
            forms = [(f"k32-p{p}", kernel.fn, 32, p) for p in (3, 4)]
        for dtype in (torch.bfloat16, torch.float16):
            dname = str(dtype).removeprefix("torch.")
            x = torch.randn(ROWS, HEAD_DIM, device="cuda", dtype=dtype)
            ref_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
            nbytes = bench.op_bytes("compress", HEAD_DIM, q.packed_dim, ROWS, 2)
            calls = {}
            for label, fn, tma_k, per_sm in forms:
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
                except Exception as exc:  # noqa: BLE001  (e.g. out of resources)
                    print(f"{spec} {dname} {label}: {type(exc).__name__}: {str(exc)[:160]}", flush=True)
                    continue
                calls[label] = call
                print(f"{spec} D{HEAD_DIM} {dname} {label:8s} codes = fp32 path "
                      f"{bench.code_agreement(packed, ref_packed, q.layout):.5f}", flush=True)
            times = {label: [] for label in calls}
            for _ in range(3):
                for label, call in calls.items():
                    times[label].append(bench.graph_time_us([call], rounds=1))
            for label, ts in times.items():
                print(f"{spec} D{HEAD_DIM} {dname} {label:8s} " + " / ".join(f"{t:6.1f}" for t in ts)
                      + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
