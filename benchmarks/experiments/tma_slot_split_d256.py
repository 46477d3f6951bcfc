"""Experiment (not part of the package): tq4 D=256 compress on the TMA loop with its slot columns shared
by two programs (SLOT_SPLIT = 2: each program the same rows, half of every slot's columns, half of the
rotation, 64 KB, in shared memory) so that two programs fit an SM and one's products overlap the other's
search, against the shipped loop (one program an SM, all 128 KB of the rotation, SLOT_SPLIT = 1).

Why: with one program an SM, Triton waits for each product right after issuing it, so the SM alternates
between the tensor cores and the search (the products ~2,000 clocks a block of 64 rows, the rest of the
loop ~2,200 issue clocks at 8 warps; a block takes ~4,900). Two programs an SM could overlap them. Cost:
each block's rows are read by both programs (the second read most likely from L2), and one row buffer
(2 stages) or 4 warps a program to fit shared memory and registers.

The kernel is the generated module's own (generated/tq4/tq4_d256.py), its TMA loop patched as this script
runs: the SLOT_SPLIT == 1 assert dropped, and the loop's first block and stride divided by SLOT_SPLIT (the
rest of the kernel already takes SLOT_SPLIT: the slot columns from first_group, the bytes stored there,
the norms by the first program of a pair). Bytes and norms are compared with the shipped kernel's.

Usage (CUDA machine of compute capability 9, repo root):
PYTHONPATH=$PWD python3 benchmarks/experiments/tma_slot_split_d256.py
"""
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

import kernelgen
from kernelgen import bench

LOOP = "for block in tl.range(tl.program_id(0), tl.cdiv(n_rows, BLOCK_ROWS), tl.num_programs(0), num_stages=TMA_STAGES):"
SPLIT_LOOP = ("for block in tl.range(tl.program_id(0) // SLOT_SPLIT, tl.cdiv(n_rows, BLOCK_ROWS), "
              "tl.num_programs(0) // SLOT_SPLIT, num_stages=TMA_STAGES):")
ASSERT = 'tl.static_assert(SLOT_SPLIT == 1, "the TMA loop takes every slot column in one program")'

# (SLOT_SPLIT, warps, stages, programs an SM)
FORMS = [(1, 8, 3, 1), (2, 4, 2, 2), (2, 8, 2, 2), (2, 4, 3, 2), (2, 4, 2, 1)]


def patched_module(d: int):
    source = Path(f"generated/tq4/tq4_d{d}.py").read_text()
    assert source.count(LOOP) == 1 and source.count(ASSERT) == 1
    source = source.replace(LOOP, SPLIT_LOOP).replace(ASSERT, "pass  # " + ASSERT)
    path = Path(tempfile.mkdtemp()) / f"tq4_d{d}_split.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    from triton.tools.tensor_descriptor import TensorDescriptor

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    d, n, bm = 256, 1 << 20, 64
    q = kernelgen.quantizer("tq4", d, device="cuda")
    module = patched_module(d)
    fn = module.tq4_d256_compress
    while type(fn).__name__ != "JITFunction":
        fn = fn.fn
    slots = q._compress_rotation[torch.float16].contiguous()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    x = torch.randn(n, d, device="cuda", dtype=torch.float16)
    shipped = q.compress(x)
    torch.cuda.synchronize()
    calls = {"shipped": lambda: q.compress(x, out=shipped)}
    desc = TensorDescriptor(x, [n, d], [d, 1], [bm, d])
    for split, warps, stages, per_sm in FORMS:
        packed = torch.full((n, d // 2), 0xA5, device="cuda", dtype=torch.uint8)
        norms = torch.full((n, 1), float("nan"), device="cuda")
        grid = (sms * per_sm - (sms * per_sm) % split,)

        def call(packed=packed, norms=norms, split=split, warps=warps, stages=stages, grid=grid):
            fn[grid](x, slots, packed, norms, n, n, BLOCK_ROWS=bm, PRECISION="fp16", INLINE_PTX=True, ROW_BLOCKS=1,
                     SLOT_SPLIT=split, TMA_STAGES=stages, RAW_PRODUCT=True, x_desc=desc, num_warps=warps,
                     num_stages=stages)
        label = f"split {split} w{warps} s{stages} {per_sm}/SM grid {grid[0]}"
        try:
            call()
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001
            print(f"{label}: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            continue
        calls[label] = call
        print(f"{label}: bytes equal shipped {torch.equal(packed, shipped[0])}, norms equal "
              f"{torch.equal(norms, shipped[1])}", flush=True)
    nbytes = bench.op_bytes("compress", d, q.packed_dim, n, 2)
    times = {label: [] for label in calls}
    for _ in range(3):
        for label, call in calls.items():
            times[label].append(bench.graph_time_us([call], rounds=1))
    for label, ts in times.items():
        print(f"tq4 D256 1M compress {label:30s} " + " / ".join(f"{t:6.1f}" for t in ts)
              + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
