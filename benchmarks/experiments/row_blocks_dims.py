"""Experiment (not part of the package): row blocks a program at 1M fp16 rows, per spec and head dim. The
registry takes ROW_BLOCKS from the row bucket alone (compress 8, decompress 4 at 2^20 rows); earlier runs
hinted that D=64 compress prefers fewer (compress_row_blocks_bench.py) and D=256 compress more
(wide_rows_one_step.py, config_sweep.py). Each generated kernel at the shipped H100 table's config (run
without KERNELGEN_AUTOTUNE=0) and the registry's metas with ROW_BLOCKS overridden; every value timed twice,
in two rounds (all values, then all again), as `kernelgen bench` times, against the same run's copy.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/row_blocks_dims.py
"""
import torch

import kernelgen
from kernelgen import bench, registry

ROWS = 1 << 20
BLOCKS = {"compress": (4, 8, 16), "decompress": (2, 4, 8)}


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    bucket = registry.row_bucket(ROWS)
    for head_dim in (64, 96, 128, 256):
        for spec in ("tq4", "tq3", "tq2"):
            q = kernelgen.quantizer(spec, head_dim, device="cuda")
            nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, ROWS, 2)
            sets = bench.input_sets(nbytes)
            xs = [torch.randn(ROWS, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            packed = [torch.empty(ROWS, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
            norms = [torch.empty(ROWS, 1, device="cuda") for _ in range(sets)]
            outs = [torch.empty(ROWS, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            for i in range(sets):
                q.compress(xs[i], out=(packed[i], norms[i]))
            for op in ("compress", "decompress"):
                io = [((xs[i],), (packed[i], norms[i])) if op == "compress" else ((packed[i], norms[i]), (outs[i],))
                      for i in range(sets)]
                args = [q._kernel_args(op, torch.float16, *io[i]) for i in range(sets)]
                kernel = q._kernels[op]
                config = kernel.config(ROWS, "float16", q.device, args[0])
                base = kernel.meta(config, "float16", bucket)
                blocks = BLOCKS[op] if not (op == "decompress" and head_dim > 128) else (2, 4)
                times = {n: [] for n in blocks}
                for _ in range(2):
                    for n in blocks:
                        meta = dict(base, ROW_BLOCKS=n)
                        grid = kernel.grid(ROWS, meta)
                        times[n].append(bench.graph_time_us(
                            [lambda a=a, meta=meta, grid=grid: kernel.fn[grid](*a, ROWS, bucket, **meta) for a in args]))
                if op == "compress":  # the decompress inputs stay the registry's own compress output
                    for i in range(sets):
                        q.compress(xs[i], out=(packed[i], norms[i]))
                line = "  ".join(f"x{n}{'*' if n == base['ROW_BLOCKS'] else ' '} "
                                 + " / ".join(f"{t:7.1f}" for t in ts)
                                 + f" ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)" for n, ts in times.items())
                print(f"{spec} D{head_dim:<3} {op:10s} B{config.block_rows:<3} w{config.num_warps}  {line}", flush=True)


if __name__ == "__main__":
    main()
