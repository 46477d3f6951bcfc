"""Experiment (not part of the package): decompress at D=256 (rows padded to 256) as a persistent loop,
like compress by TMA: a few programs an SM (one: the rotation is 128 KB of fp16 in shared memory), each
loading the rotation once and taking every num_programs-th row block in a loop Triton pipelines (STAGES
deep: the packed bytes and norms of the blocks ahead read while this block's work runs); the output by
pointer stores or by a TMA store through a descriptor (TMA_OUT). Today's kernel (whole rotation, 4 row
blocks a program at 1M rows) loads the rotation from L2 for each of its rows/(4 * BLOCK_ROWS) programs.
The kernel below is appended to each shipped module's source, so it calls the module's own
_coordinate_centroids (the same unpacking and gathers as shipped) and _dot.
tq4, tq2, tq3 at D=256, 1M fp16 rows; BLOCK_ROWS 64/128 x warps 4/8 x stages 2/3 x pointer/TMA stores
(those that fit shared memory), against the shipped kernel as the registry launches it, three rounds
each, timed as `kernelgen bench` times (bench.graph_time_us, one round each); outputs against shipped.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/persistent_decompress_d256.py
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
SPECS = ("tq4", "tq2", "tq3")
KERNEL = '''

@triton.jit
def decompress_persistent(packed_ptr, norms_ptr, rotation_ptr, centroids_ptr, out_ptr, n_rows, out_desc,
                          BLOCK_ROWS: tl.constexpr, STAGES: tl.constexpr, TMA_OUT: tl.constexpr):
    """(experiment) the whole rotation loaded once a program, then every num_programs-th row block."""
    rotation = tl.load(rotation_ptr + tl.arange(0, DIM_PAD)[:, None] * DIM_PAD + tl.arange(0, DIM_PAD)[None, :])
    dims = tl.arange(0, DIM_PAD)
    for block in tl.range(tl.program_id(0), tl.cdiv(n_rows, BLOCK_ROWS), tl.num_programs(0), num_stages=STAGES):
        rows = block * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        norm = tl.load(norms_ptr + rows, mask=row_ok, other=0.0)[:, None]
        a = {CENTROIDS_CALL}
        x = _dot(a, rotation, tl.zeros((BLOCK_ROWS, DIM_PAD), dtype=tl.float32), "fp16")
        y = (x * norm).to(out_ptr.dtype.element_ty)
        if TMA_OUT:
            out_desc.store([block * BLOCK_ROWS, 0], y)
        else:
            tl.store(out_ptr + rows[:, None].to(tl.int64) * HEAD_DIM + dims[None, :], y, mask=row_ok[:, None])
'''


def load(spec: str, folder: Path):
    source = Path(f"generated/{spec}/{spec}_d256.py").read_text()
    call = next(line.strip().removeprefix("a = ") for line in source.splitlines()
                if line.strip().startswith("a = _coordinate_centroids(packed_ptr, centroids_ptr, rows, row_ok, 0, "
                                            "DIM_PAD //"))
    name = f"{spec}_d256_persistent"
    path = folder / f"{name}.py"
    path.write_text(source + KERNEL.replace("{CENTROIDS_CALL}", call))
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def main():
    from triton.tools.tensor_descriptor import TensorDescriptor

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folder = Path(tempfile.mkdtemp())
    for spec in SPECS:
        q = kernelgen.quantizer(spec, 256, device="cuda")
        fn = load(spec, folder).decompress_persistent
        x = torch.randn(ROWS, 256, device="cuda", dtype=torch.float16)
        packed, norms = q.compress(x)
        shipped = q.decompress(packed, norms, dtype=torch.float16)
        nbytes = bench.op_bytes("decompress", 256, q.packed_dim, ROWS, 2)
        args = q._kernel_args("decompress", torch.float16, (packed, norms), ())
        assert args[2].dtype == torch.float16, "fp16 products"
        calls = {"shipped": lambda q=q, p=packed, n=norms, o=shipped: q.decompress(p, n, dtype=torch.float16, out=o)}
        for block, warps, stages, tma_out in itertools.product((64, 128), (4, 8), (2, 3), (False, True)):
            out = torch.full((ROWS, 256), float("nan"), dtype=torch.float16, device="cuda")
            desc = TensorDescriptor(out, [ROWS, 256], [256, 1], [block, 256])
            grid = (min(ROWS // block, sms),)

            def call(out=out, desc=desc, grid=grid, block=block, warps=warps, stages=stages, tma_out=tma_out):
                fn[grid](*args, out, ROWS, desc, BLOCK_ROWS=block, STAGES=stages, TMA_OUT=tma_out,
                         num_warps=warps, num_stages=stages)
            label = f"B{block} w{warps} s{stages} {'tma' if tma_out else 'ptr'}"
            try:
                call()
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001  (shared memory)
                print(f"{spec} {label}: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
                continue
            diff = (out.float() - shipped.float()).abs().max().item()
            print(f"{spec} {label}: max |out - shipped| {diff:.3g}, equal {torch.equal(out, shipped)}", flush=True)
            calls[label] = call
        times = {label: [] for label in calls}
        for _ in range(3):
            for label, call in calls.items():
                times[label].append(bench.graph_time_us([call], rounds=1))
        for label, ts in times.items():
            print(f"{spec} D256 {label:15s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
