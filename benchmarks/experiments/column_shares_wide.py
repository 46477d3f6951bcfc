"""Experiment (not part of the package): rows padded to 256 (D=192, 256) with the rotation's columns shared
out over neighbouring programs. The one-step kernels of these rows hold the whole rotation (128 KB of fp16)
in shared memory, so one program fits an SM. Here a row block's columns go to 2 or 4 programs, each with
that share of the rotation, each reading the rows itself (all but the first from L2): compress's SLOT_SPLIT
(SLOT_PAD // SLOT_SPLIT of every slot's columns a program).
Each kernel is the checkout's generated one with the registry's metas (ROW_BLOCKS by bucket), the config
from the shipped H100 table's entry of the kernel's name (read by name: the module's hash changed with
SLOT_SPLIT) or B64 w4, and SLOT_SPLIT overridden. Timed as `kernelgen bench` times, fp16, against the same
run's copy; each output checked against SLOT_SPLIT = 1 (codes and norms equal). Every launch form is
compiled first by a pool of processes.
Runs (h100-column_shares_wide.txt, -small.txt):
- no argument: 1M rows and 8 rows. That run also timed decompress at 1M rows with an OUT_SPLIT form (a
  program taking DIM_PAD // OUT_SPLIT output dims with those columns of the rotation, every code gathered
  by each); it was slower or even everywhere, was not kept in the template, and the script no longer times it.
- `small`: 8, 2,048 and 65,536 rows, the lower of two timings in a row.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/column_shares_wide.py [small]
"""
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import torch

os.environ["KERNELGEN_AUTOTUNE"] = "0"  # the decompress inputs come from the registry's untuned compress
VARIANTS = [("tq4", 256), ("tq2", 256), ("tq3", 256), ("tq4", 192), ("tq2", 192), ("tq3", 192)]
BIG, SMALL = 1 << 20, 8
# first run: compress and decompress, 1M rows (and 8 rows compress); `small`: compress at 8, 2,048 and
# 65,536 rows (the other buckets of the table), each trial timed in two rounds
SMALL_RUN = len(sys.argv) > 1 and sys.argv[1] == "small"
OPS = ("compress",)  # see the docstring: the decompress form measured in the first run is gone
ROWS = (8, 2048, 65536) if SMALL_RUN else (BIG, SMALL)
ROUNDS = 2 if SMALL_RUN else 1


def shipped_config(spec, name, rows):
    table = json.loads(Path(f"generated/{spec}/tuned/nvidia-h100-80gb-hbm3-sm90.json").read_text())["entries"]
    for key, value in table.items():
        kname, _, bucket, dtype = key.split("|")
        if kname == name and int(bucket) == rows and dtype == "float16":
            return value["block_rows"], value["num_warps"]
    raise LookupError(name)


def trials(spec, head_dim, op, rows):
    """(label, BLOCK_ROWS, num_warps, shares) to time."""
    from kernelgen.layout import PackLayout

    layout = PackLayout({"tq4": 4, "tq3": 3, "tq2": 2}[spec], head_dim)
    cols = layout.slot_pad if op == "compress" else layout.dim_pad
    b, w = shipped_config(spec, f"{spec}_d{head_dim}_{op}", rows)
    out = []
    if op == "decompress" and rows == SMALL:  # small row counts split the output steps already (COLUMN_SPLIT)
        return out
    for shares in (1, 2, 4):
        if cols // shares < 16:
            continue
        out.append(("shipped", b, w, shares))
        if rows == BIG and not SMALL_RUN and shares > 1 and (b, w) != (64, 4):
            out.append(("B64w4", 64, 4, shares))
    return out


def setup(spec, head_dim, rows, sets):
    import kernelgen

    q = kernelgen.quantizer(spec, head_dim, device="cuda")
    xs = [torch.randn(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
    packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
    norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
    outs = [torch.empty(rows, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
    return q, xs, packed, norms, outs


def metas(q, op, rows, trial):
    from kernelgen import registry, tuning

    _, b, w, shares = trial
    kernel = q._kernels[op]
    meta = kernel.meta(tuning.LaunchConfig(b, w, 1), "float16", registry.row_bucket(rows))
    meta["SLOT_SPLIT"] = shares
    return kernel, meta


def compile_job(job):
    spec, head_dim, op, rows, trial = job
    torch.manual_seed(0)
    q, xs, packed, norms, outs = setup(spec, head_dim, 64, 1)
    kernel, meta = metas(q, op, rows, trial)
    io = ((xs[0],), (packed[0], norms[0])) if op == "compress" else ((packed[0], norms[0]), (outs[0],))
    from kernelgen import registry

    kernel.fn[kernel.grid(64, meta)](*q._kernel_args(op, torch.float16, *io), 64, registry.row_bucket(rows), **meta)
    torch.cuda.synchronize()
    return job


def main():
    from kernelgen import bench, registry

    jobs = [(s, d, op, rows, t) for s, d in VARIANTS for op in OPS for rows in ROWS
            for t in trials(s, d, op, rows)]
    start = time.time()
    with mp.get_context("spawn").Pool(14) as pool:
        for _ in pool.imap_unordered(compile_job, jobs):
            pass
    print(f"compiled {len(jobs)} launch forms in {time.time() - start:.0f} s", flush=True)
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for spec, head_dim in VARIANTS:
        for rows in ROWS:
            packed_dim = head_dim * {"tq4": 4, "tq3": 3, "tq2": 2}[spec] // 8
            nbytes = bench.op_bytes("compress", head_dim, packed_dim, rows, 2)
            sets = bench.input_sets(nbytes)
            q, xs, packed, norms, outs = setup(spec, head_dim, rows, sets)
            for i in range(sets):
                q.compress(xs[i], out=(packed[i], norms[i]))
            bucket = registry.row_bucket(rows)
            for op in OPS:
                reference = None
                for trial in trials(spec, head_dim, op, rows):
                    kernel, meta = metas(q, op, rows, trial)
                    grid = kernel.grid(rows, meta)
                    io = [((xs[i],), (packed[i], norms[i])) if op == "compress" else ((packed[i], norms[i]), (outs[i],))
                          for i in range(sets)]
                    args = [q._kernel_args(op, torch.float16, *io[i]) for i in range(sets)]
                    target = packed[0] if op == "compress" else outs[0]
                    target.fill_(0xFF if op == "compress" else float("nan"))
                    if op == "compress":
                        norms[0].fill_(float("nan"))
                    us = min(bench.graph_time_us([lambda a=a: kernel.fn[grid](*a, rows, bucket, **meta) for a in args])
                             for _ in range(ROUNDS))
                    got = (target.clone(), norms[0].clone())
                    if reference is None:
                        reference, check = got, "reference"
                    elif op == "compress":
                        check = (f"codes equal {torch.equal(got[0], reference[0])}, "
                                 f"norms equal {torch.equal(got[1], reference[1])}")
                    else:
                        diff = (got[0].float() - reference[0].float()).abs().max().item()
                        check = f"max diff {diff:.3g}, nan {got[0].isnan().any().item()}"
                    label, b, w, shares = trial
                    frac = nbytes / us / 1e3 / copy_gbps * 100
                    print(f"{spec} D{head_dim} {rows:>8} {op:10s} {label:7s} B{b:<3} w{w} RB{meta['ROW_BLOCKS']:<2} "
                          f"shares {shares}: {us:8.1f} us ({frac:5.1f}%)  {check}", flush=True)
                if op == "compress":  # decompress reads the shipped-shares compress output
                    for i in range(sets):
                        q.compress(xs[i], out=(packed[i], norms[i]))
            del xs, packed, norms, outs
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
