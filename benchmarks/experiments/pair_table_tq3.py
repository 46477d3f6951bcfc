"""Experiment (not part of the package): tq3 decompress (L1-bound on its 8 centroid gathers a 3-byte group,
h100-ncu-decompress.txt) with one gather a pair of codes instead: a 64-entry table of int32 words, entry
(a << 3) | b holding the fp16 centroids of codes a (low half) and b (high half), so 4 gathers a group.
The generated module's `_coordinate_centroids` is rewritten in a copy of its source; both kernels run on
the same packed rows at 1M rows, fp16 products, ROW_BLOCKS 4 (the registry's at 2^20), every config of the
module's search space, three rounds each timing the shipped form first. Outputs compared bit for bit.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/pair_table_tq3.py
"""
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import torch

os.environ["KERNELGEN_AUTOTUNE"] = "0"
ROWS = 1 << 20
PAIRS = '''    p01 = tl.load(centroids_ptr + ((word >> 18) & 63))  # codes 0 and 1: one int32 of two fp16
    p23 = tl.load(centroids_ptr + ((word >> 12) & 63))
    p45 = tl.load(centroids_ptr + ((word >> 6) & 63))
    p67 = tl.load(centroids_ptr + (word & 63))
    v0 = (p01 & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True)
    v1 = (p01 >> 16).to(tl.int16).to(tl.float16, bitcast=True)
    v2 = (p23 & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True)
    v3 = (p23 >> 16).to(tl.int16).to(tl.float16, bitcast=True)
    v4 = (p45 & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True)
    v5 = (p45 >> 16).to(tl.int16).to(tl.float16, bitcast=True)
    v6 = (p67 & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True)
    v7 = (p67 >> 16).to(tl.int16).to(tl.float16, bitcast=True)
'''


def pair_module(head_dim: int, folder: Path):
    source = Path(f"generated/tq3/tq3_d{head_dim}.py").read_text()
    lines = source.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith("    v0 = _centroid(centroids_ptr"))
    assert all(lines[first + j].startswith(f"    v{j} = _centroid(") for j in range(8))
    path = folder / f"tq3_pairs_d{head_dim}.py"
    path.write_text("".join(lines[:first]) + PAIRS + "".join(lines[first + 8:]))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def pair_table(centroids: torch.Tensor) -> torch.Tensor:
    bits = centroids.to(torch.float16).view(torch.int16).to(torch.int32) & 0xFFFF
    a = torch.arange(64, device=centroids.device) >> 3
    b = torch.arange(64, device=centroids.device) & 7
    return (bits[a] | (bits[b] << 16)).contiguous()


def main():
    import kernelgen
    from kernelgen import bench

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    folder = Path(tempfile.mkdtemp())
    for head_dim in (128, 64, 96):
        q = kernelgen.quantizer("tq3", head_dim, device="cuda")
        x = torch.randn(ROWS, head_dim, device="cuda", dtype=torch.float16)
        packed, norms = q.compress(x)
        rotation, table = q._padded_rotation[torch.float16], q._centroid_table[torch.float16]
        assert table.dtype == torch.float16
        pairs = pair_table(table)
        shipped = q._kernels["decompress"].fn
        module = pair_module(head_dim, folder)
        paired = getattr(module, f"tq3_d{head_dim}_decompress").fn
        nbytes = bench.op_bytes("decompress", head_dim, q.packed_dim, ROWS, 2)
        forms = {"shipped": (shipped, table), "pairs": (paired, pairs)}
        for config in q._kernels["decompress"].configs:
            block, warps = config.kwargs["BLOCK_ROWS"], config.num_warps
            meta = dict(BLOCK_ROWS=block, PRECISION="fp16", ROW_BLOCKS=4, num_warps=warps, num_stages=1)
            grid = (-(-ROWS // (block * 4)), 1)
            outs, calls = {}, {}
            for label, (fn, tab) in forms.items():
                out = torch.full((ROWS, head_dim), float("nan"), device="cuda", dtype=torch.float16)
                call = (lambda fn=fn, tab=tab, out=out:
                        fn[grid](packed, norms, rotation, tab, out, ROWS, ROWS, **meta))
                try:
                    call()
                except Exception as exc:  # noqa: BLE001 (a config that does not fit)
                    print(f"D{head_dim} B{block} w{warps} {label}: {type(exc).__name__}", flush=True)
                    break
                torch.cuda.synchronize()
                outs[label], calls[label] = out, call
            if len(outs) < 2:
                continue
            same = torch.equal(outs["shipped"], outs["pairs"])
            times = {label: [] for label in calls}
            for _ in range(3):
                for label, call in calls.items():
                    times[label].append(bench.graph_time_us([call], rounds=1))
            print(f"tq3 D{head_dim} B{block} w{warps} equal {same}  " + "  ".join(
                f"{label} " + " / ".join(f"{t:6.1f}" for t in ts) + f" ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)"
                for label, ts in times.items()), flush=True)


if __name__ == "__main__":
    main()
