"""Experiment (not part of the package): the warp-specialized decompress (the template's WS_DECOMPRESS) with
its g products issued asynchronously and waited for once, instead of each waited for as it is issued.

Why: `warpgroup_mma` without is_async waits for its product before the next is issued, so a block's g
products (2 for tq4, 4 for tq2, 8 for tq3, each K = 256 / g) drain the tensor pipe g times; tq3, with 8,
ran 18% below tq4 at D=256 (h100-ws_decompress_sizes*.txt). Here the module's source is rewritten as it
runs: each slot's centroids are named, every product is issued with is_async=True, chained through the
accumulator, and one warpgroup_mma_wait keeps the register operands alive until all are done.

Usage (CUDA machine of compute capability 9, repo root):
PYTHONPATH=$PWD python3 benchmarks/experiments/ws_async_products.py
"""
import importlib.util
import re
import sys
import tempfile

import torch

import kernelgen
from kernelgen import bench, registry, torch_path


def async_module(variant):
    """The variant's module with its WS products asynchronous (see above), imported from a temporary file."""
    source = open(variant.module.__file__).read()
    lines, names = [], []
    for line in source.splitlines():
        m = re.match(r"(\s+)x = warpgroup_mma\((gl\.load\(centroids_ptr \+ .*\)), (pieces\.index\((\d+)\)), (.*?)\)  # slot \d+$",
                     line)
        if m:
            pad, operand, piece, j, acc = m.groups()
            lines.append(f"{pad}a{j} = {operand}")
            lines.append(f"{pad}x = warpgroup_mma(a{j}, {piece}, {acc}, is_async=True)")
            names.append(f"a{j}")
            continue
        if names and line.strip().startswith("y = (x * gl.expand_dims(norm, 1))"):
            pad = line[: len(line) - len(line.lstrip())]
            lines.append(f"{pad}x = warpgroup_mma_wait(0, deps=[x, {', '.join(names)}])[0]")
            names = []
        lines.append(line)
    text = "\n".join(lines) + "\n"
    text = text.replace("import fence_async_shared, mbarrier, tma, warpgroup_mma\n",
                        "import fence_async_shared, mbarrier, tma, warpgroup_mma, warpgroup_mma_wait\n")
    assert "is_async=True" in text and "warpgroup_mma_wait(0" in text
    path = tempfile.NamedTemporaryFile(suffix=".py", delete=False, mode="w")
    path.write(text)
    path.close()
    spec = importlib.util.spec_from_file_location(f"async_{variant.spec_name}_{variant.layout.head_dim}", path.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main():
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for spec, d in (("tq3", 256), ("tq4", 256), ("tq2", 256), ("tq3", 192)):
        q = kernelgen.quantizer(spec, d, device="cuda")
        kernel = q._kernels["decompress"]
        shipped_ws = kernel.ws_kernel
        module = async_module(q._variant)
        async_ws = getattr(module, module.WS_DECOMPRESS)
        for n in (63, 70001, 1 << 20):
            x = torch.randn(n, d, device="cuda", dtype=torch.float16)
            packed, norms = q.compress(x)
            ref = torch_path.decompress_rows(packed, norms.view(-1), q.rotation, q.centroids, q.layout, torch.float32,
                                             False)
            outs = {}
            for label, fn in (("shipped", shipped_ws), ("async", async_ws)):
                kernel.ws_kernel = fn
                registry.WS_DECOMPRESS_FROM = 1
                out = torch.full((n, d), float("nan"), device="cuda", dtype=torch.float16)
                q.decompress(packed, norms, out=out)
                torch.cuda.synchronize()
                outs[label] = out
            print(f"{spec} D{d} rows {n}: async equals shipped {torch.equal(outs['async'], outs['shipped'])}, nan "
                  f"{outs['async'].isnan().sum().item()}, max |async - fp32| {(outs['async'].float() - ref).abs().max().item():.2e}",
                  flush=True)
        n = 1 << 20
        x = torch.randn(n, d, device="cuda", dtype=torch.float16)
        packed, norms = q.compress(x)
        out = torch.empty(n, d, device="cuda", dtype=torch.float16)
        nbytes = bench.op_bytes("decompress", d, q.packed_dim, n, 2)
        times = {"shipped": [], "async": []}
        for _ in range(3):
            for label, fn in (("shipped", shipped_ws), ("async", async_ws)):
                kernel.ws_kernel = fn
                times[label].append(bench.graph_time_us([lambda: q.decompress(packed, norms, out=out)], rounds=1))
        kernel.ws_kernel = shipped_ws
        registry.WS_DECOMPRESS_FROM = 1 << 16
        for label, ts in times.items():
            print(f"{spec} D{d} 1M {label:8s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
