"""Experiment (not part of the package): bf16 rows padded to 256 (D=192, 256) on the TMA compress loop.

Today only fp16 rows take the TMA loop at these widths (registry.TMA_COMPRESS lists 256 in the raw-product
entry only): bf16 rows, which are normalized before the product, keep the pointer loads with 16 row blocks
a program. The generated kernels already hold the normalized form of the loop (the `else` of
RAW_PRODUCT); compiled for sm_90 on the CPU machine it fits shared memory at B64 w8 with 3 stages at D=256
(229,392 bytes) and at B128 w8 with 3 stages at D=192 (in pieces, 213,008), the normalized rows going
into the product from registers. Here the registry's rule is widened for the run (256: 1 in the
normalized-form entry, one program an SM), and each kernel of the checkout (tq4 and tq2 at D=192 and 256,
tq3 at D=192) runs through the registry at the shipped bf16 config and at B64 w8, B64 w4 and B128 w8 on
the TMA loop; 1M bf16 rows, three rounds, timed as `kernelgen bench` times (several input sets); bytes
and norms against the shipped form's.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/bf16_wide_tma.py
"""
import time

import torch

import kernelgen
from kernelgen import bench, registry, tuning

ROWS = 1 << 20
SHIPPED_RULE = registry.TMA_COMPRESS
WIDE_RULE = (*SHIPPED_RULE[:2], {**SHIPPED_RULE[2], 256: 1}, SHIPPED_RULE[3])
VARIANTS = [("tq4", 256), ("tq2", 256), ("tq4", 192), ("tq2", 192), ("tq3", 192)]
TRIALS = [(64, 8), (64, 4), (128, 8)]


def run_with(rule, kernel, config, bucket, args):
    registry.TMA_COMPRESS = rule
    try:
        kernel.run(config, ROWS, bucket, "bfloat16", args)
    finally:
        registry.TMA_COMPRESS = SHIPPED_RULE


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    start = time.time()
    bucket = registry.row_bucket(ROWS)
    for spec, head_dim in VARIANTS:
        q = kernelgen.quantizer(spec, head_dim, device="cuda")
        kernel = q._kernels["compress"]
        nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, ROWS, 2)
        sets = bench.input_sets(nbytes)
        xs = [torch.randn(ROWS, head_dim, device="cuda", dtype=torch.bfloat16) for _ in range(sets)]
        packed = [torch.empty(ROWS, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
        norms = [torch.empty(ROWS, 1, device="cuda") for _ in range(sets)]
        args = [q._kernel_args("compress", torch.bfloat16, (xs[i],), (packed[i], norms[i])) for i in range(sets)]
        shipped = kernel.config(ROWS, "bfloat16", q.device, args[0])
        trials = {f"shipped B{shipped.block_rows} w{shipped.num_warps}": (SHIPPED_RULE, shipped)}
        for block_rows, warps in TRIALS:
            trials[f"TMA B{block_rows} w{warps}"] = (WIDE_RULE, tuning.LaunchConfig(block_rows, warps, 1))
        reference, calls = None, {}
        for label, (rule, config) in trials.items():
            packed[0].fill_(0xA5)
            norms[0].fill_(float("nan"))
            try:
                run_with(rule, kernel, config, bucket, args[0])
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001  (out of resources)
                print(f"{spec} D{head_dim} {label}: {type(exc).__name__}: {str(exc)[:100]}", flush=True)
                continue
            registry.TMA_COMPRESS = rule
            stages = kernel.meta(config, "bfloat16", bucket).get("TMA_STAGES")
            registry.TMA_COMPRESS = SHIPPED_RULE
            result = (packed[0].clone(), norms[0].clone())
            if reference is None:
                reference, check = result, "(reference)"
            else:
                check = (f"bytes equal {torch.equal(result[0], reference[0])}, "
                         f"norms equal {torch.equal(result[1], reference[1])}")
            print(f"{spec} D{head_dim} {label} (TMA_STAGES {stages}): {check}", flush=True)
            calls[label] = [lambda a=a, rule=rule, config=config: run_with(rule, kernel, config, bucket, a)
                            for a in args]
        times = {label: [] for label in calls}
        for _ in range(3):
            for label, call in calls.items():
                times[label].append(bench.graph_time_us(call, rounds=1))
        for label, ts in times.items():
            print(f"{spec} D{head_dim} bf16 compress {label:16s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)  [{time.time() - start:.0f} s]",
                  flush=True)


if __name__ == "__main__":
    main()
