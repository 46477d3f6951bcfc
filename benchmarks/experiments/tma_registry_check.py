"""Experiment (not part of the package): the TMA compress as the registry launches it (branch tma-compress:
registry.TMA_COMPRESS, `tma_launch`, a few programs an SM looping over every num_programs-th row block), against the same generated kernel's
pointer loads (registry.runs_tma patched off), at 1M fp16 rows and the spec's first config (B64 w4,
KERNELGEN_AUTOTUNE=0: the tables predate the TMA form). Timed as `kernelgen bench` times
(bench.graph_time_us, one round each), three rounds each timing the pointer loads first; bytes and norms
compared between the two, fp16 and bf16.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tma_registry_check.py
"""
import os

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402

ROWS = 1 << 20
CASES = [("tq4", 128), ("tq4", 96), ("tq4", 64), ("tq2", 128), ("tq2", 64), ("tq4", 80), ("tq4", 112)]
CASES = CASES[:int(os.environ.get("CASES", len(CASES)))]
if os.environ.get("SPEC_DIMS"):  # e.g. "tq3:128,tq3:96": these cases instead
    CASES = [(s, int(d)) for s, d in (case.split(":") for case in os.environ["SPEC_DIMS"].split(","))]


def main():
    import kernelgen
    from kernelgen import bench, registry

    tma = registry.runs_tma
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s; TMA here {tma(False)}", flush=True)
    for spec, head_dim in CASES:
        rules = {"pointer": lambda interpreted: False, "tma": tma}
        forms = {label: kernelgen.quantizer(spec, head_dim, device="cuda") for label in rules}  # a memo each
        nbytes = bench.op_bytes("compress", head_dim, forms["tma"].packed_dim, ROWS, 2)
        for dtype in (torch.float16, torch.bfloat16):
            x = torch.randn(ROWS, head_dim, device="cuda", dtype=dtype)
            outs = {}
            for label, q in forms.items():  # the first launch of a (bucket, dtype) fixes its metas
                registry.runs_tma = rules[label]
                outs[label] = q.compress(x)
            same = all(torch.equal(a, b) for a, b in zip(outs["pointer"], outs["tma"]))
            meta = [m[1] for m in forms["tma"]._kernels["compress"]._memo.values()][0]
            line = f"{spec} D{head_dim:<3} {str(dtype)[6:]:8s} equal {same} TMA_STAGES {meta['TMA_STAGES']}"
            if dtype == torch.float16:
                packed, norms = outs["tma"]
                times = {label: [] for label in forms}
                for _ in range(3):
                    for label, q in forms.items():
                        times[label].append(bench.graph_time_us([lambda q=q: q.compress(x, out=(packed, norms))],
                                                                rounds=1))
                line += "  " + "  ".join(f"{label} " + " / ".join(f"{t:6.1f}" for t in ts)
                                         + f" ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)"
                                         for label, ts in times.items())
            print(line, flush=True)
    registry.runs_tma = tma


if __name__ == "__main__":
    main()
