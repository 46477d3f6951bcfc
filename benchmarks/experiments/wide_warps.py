"""Experiment (not part of the package): 16 warps a program for the kernels of rows padded to 256 (D=192,
256), which run one program an SM (the whole rotation, 128 KB of fp16, in shared memory), so that an SM
has more warps to switch between while one waits. The specs tune num_warps in {4, 8}; at 8 warps and one
program an SM the tensor pipe, the issue slots and DRAM all sat below half busy
(h100-ncu-gluon-d256.txt). Each kernel is the checkout's generated one, launched through the registry
with the shipped config (the committed H100 table) and with 16 warps at 64 and 128 rows a block, 1M fp16
rows, every other compile-time argument as the registry sets it; three rounds, timed as `kernelgen bench`
times (several input sets, so the rows do not sit in L2); outputs checked against the shipped config's
(compress: bytes equal; decompress: largest difference).
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/wide_warps.py [spec:dim ...]
"""
import sys
import time

import torch

import kernelgen
from kernelgen import bench, registry, tuning

ROWS = 1 << 20
TRIALS = [(64, 16), (128, 16)]  # (BLOCK_ROWS, num_warps) besides the shipped config


def main(variants):
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    start = time.time()
    bucket = registry.row_bucket(ROWS)
    for name in variants:
        spec, head_dim = name.split(":")
        head_dim = int(head_dim)
        q = kernelgen.quantizer(spec, head_dim, device="cuda")
        for op in ("compress", "decompress"):
            nbytes = bench.op_bytes(op, head_dim, q.packed_dim, ROWS, 2)
            sets = bench.input_sets(nbytes)
            xs = [torch.randn(ROWS, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            packed = [torch.empty(ROWS, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
            norms = [torch.empty(ROWS, 1, device="cuda") for _ in range(sets)]
            outs = [torch.empty(ROWS, head_dim, device="cuda", dtype=torch.float16) for _ in range(sets)]
            for i in range(sets):
                q.compress(xs[i], out=(packed[i], norms[i]))
            io = [((xs[i],), (packed[i], norms[i])) if op == "compress" else ((packed[i], norms[i]), (outs[i],))
                  for i in range(sets)]
            args = [q._kernel_args(op, torch.float16, *io[i]) for i in range(sets)]
            kernel = q._kernels[op]
            shipped = kernel.config(ROWS, "float16", q.device, args[0])
            configs = {f"shipped B{shipped.block_rows} w{shipped.num_warps}": shipped}
            for block_rows, warps in TRIALS:
                configs[f"B{block_rows} w{warps}"] = tuning.LaunchConfig(block_rows, warps, shipped.num_stages)
            target = packed[0] if op == "compress" else outs[0]
            reference, calls = None, {}
            for label, config in configs.items():
                target.fill_(0xA5) if op == "compress" else target.fill_(float("nan"))
                try:
                    kernel.run(config, ROWS, bucket, "float16", args[0])
                    torch.cuda.synchronize()
                except Exception as exc:  # noqa: BLE001  (out of resources)
                    print(f"{spec} D{head_dim} {op} {label}: {type(exc).__name__}: {str(exc)[:100]}", flush=True)
                    continue
                result = target.clone()
                if reference is None:
                    reference, check = result, "(reference)"
                elif op == "compress":
                    check = "bytes equal" if torch.equal(result, reference) else \
                        f"codes agree {bench.code_agreement(result, reference, q.layout):.5f}"
                else:
                    check = f"max diff {(result.float() - reference.float()).abs().max().item():.2e}"
                print(f"{spec} D{head_dim} {op} {label}: {check}", flush=True)
                calls[label] = [lambda a=a, c=config: kernel.run(c, ROWS, bucket, "float16", a) for a in args]
            times = {label: [] for label in calls}
            for _ in range(3):
                for label, call in calls.items():
                    times[label].append(bench.graph_time_us(call, rounds=1))
            for label, ts in times.items():
                print(f"{spec} D{head_dim} {op:10s} {label:18s} " + " / ".join(f"{t:6.1f}" for t in ts)
                      + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)  [{time.time() - start:.0f} s]",
                      flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["tq4:256", "tq2:256", "tq3:256", "tq4:192", "tq2:192", "tq3:192"])
