"""Experiment (not part of the package): decompress at D=256 with each row block's output dims shared out
over SPLIT programs, each a persistent loop over every (num_programs / SPLIT)-th row block with its share of
the rotation (256 x 256/SPLIT of fp16: 64 KB at SPLIT 2, 32 KB at 4) loaded once, so that PER_SM programs
fit an SM instead of one. Every program gathers all of its rows' centroids (SPLIT times the gathers of
one program a block). persistent_decompress_d256.py showed that one program an SM with the whole rotation
loaded once gains a few percent at most; this asks whether more programs an SM do.
The kernel is appended to each shipped module's source (its own _coordinate_centroids and _dot).
tq4 and tq3 at D=256, 1M fp16 rows; (SPLIT, programs an SM) in (1, 1), (2, 2), (2, 3), (4, 3), (4, 4) x
BLOCK_ROWS 64/128 x warps 4/8, 2 stages (those that fit), against the shipped kernel as the registry
launches it, three rounds each, timed as `kernelgen bench` times (bench.graph_time_us, one round each);
outputs against shipped.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/column_share_decompress_d256.py
"""
import importlib.util
import itertools
import os
import sys
import tempfile
from pathlib import Path

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402

import kernelgen  # noqa: E402
from kernelgen import bench  # noqa: E402

ROWS = 1 << 20
SPECS = ("tq4", "tq3")
SHARES = ((1, 1), (2, 2), (2, 3), (4, 3), (4, 4))
KERNEL = '''

@triton.jit
def decompress_shared(packed_ptr, norms_ptr, rotation_ptr, centroids_ptr, out_ptr, n_rows,
                      BLOCK_ROWS: tl.constexpr, STAGES: tl.constexpr, SPLIT: tl.constexpr):
    """(experiment) output dims [part * COLS, part * COLS + COLS) of every (num_programs / SPLIT)-th row block."""
    COLS: tl.constexpr = DIM_PAD // SPLIT
    part = tl.program_id(0) % SPLIT
    dims = part * COLS + tl.arange(0, COLS)
    rotation = tl.load(rotation_ptr + tl.arange(0, DIM_PAD)[:, None] * DIM_PAD + dims[None, :])
    for block in tl.range(tl.program_id(0) // SPLIT, tl.cdiv(n_rows, BLOCK_ROWS), tl.num_programs(0) // SPLIT,
                          num_stages=STAGES):
        rows = block * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        norm = tl.load(norms_ptr + rows, mask=row_ok, other=0.0)[:, None]
        a = {CENTROIDS_CALL}
        x = _dot(a, rotation, tl.zeros((BLOCK_ROWS, COLS), dtype=tl.float32), "fp16")
        tl.store(out_ptr + rows[:, None].to(tl.int64) * HEAD_DIM + dims[None, :], (x * norm).to(out_ptr.dtype.element_ty),
                 mask=row_ok[:, None])
'''


def load(spec: str, folder: Path):
    source = Path(f"generated/{spec}/{spec}_d256.py").read_text()
    call = next(line.strip().removeprefix("a = ") for line in source.splitlines()
                if line.strip().startswith("a = _coordinate_centroids(packed_ptr, centroids_ptr, rows, row_ok, 0, "
                                            "DIM_PAD //"))
    name = f"{spec}_d256_shared"
    path = folder / f"{name}.py"
    path.write_text(source + KERNEL.replace("{CENTROIDS_CALL}", call))
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folder = Path(tempfile.mkdtemp())
    for spec in SPECS:
        q = kernelgen.quantizer(spec, 256, device="cuda")
        fn = load(spec, folder).decompress_shared
        x = torch.randn(ROWS, 256, device="cuda", dtype=torch.float16)
        packed, norms = q.compress(x)
        shipped = q.decompress(packed, norms, dtype=torch.float16)
        nbytes = bench.op_bytes("decompress", 256, q.packed_dim, ROWS, 2)
        args = q._kernel_args("decompress", torch.float16, (packed, norms), ())
        assert args[2].dtype == torch.float16, "fp16 products"
        calls = {"shipped": lambda q=q, p=packed, n=norms, o=shipped: q.decompress(p, n, dtype=torch.float16, out=o)}
        for (split, per_sm), block, warps in itertools.product(SHARES, (64, 128), (4, 8)):
            out = torch.full((ROWS, 256), float("nan"), dtype=torch.float16, device="cuda")
            grid = (split * min(ROWS // block, per_sm * sms // split),)

            def call(out=out, grid=grid, block=block, warps=warps, split=split):
                fn[grid](*args, out, ROWS, BLOCK_ROWS=block, STAGES=2, SPLIT=split, num_warps=warps, num_stages=2)
            label = f"split {split} x{per_sm}/SM B{block} w{warps}"
            try:
                call()
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001  (shared memory)
                print(f"{spec} {label}: {type(exc).__name__}: {str(exc)[:100]}", flush=True)
                continue
            diff = (out.float() - shipped.float()).abs().max().item()
            print(f"{spec} {label}: max |out - shipped| {diff:.3g}", flush=True)
            calls[label] = call
        times = {label: [] for label in calls}
        for _ in range(3):
            for label, call in calls.items():
                times[label].append(bench.graph_time_us([call], rounds=1))
        for label, ts in times.items():
            print(f"{spec} D256 {label:26s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
