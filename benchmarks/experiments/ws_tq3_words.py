"""Experiment (not part of the package): tq3's Hopper decompress (the module's WS_DECOMPRESS) reading its
packed bytes as 8-byte words, a quarter of a row a thread (the operand's columns in WS_GROUP_ORDER, the
pieces' rows to match), against the form it replaced, which loaded a byte at a time (48 byte loads a thread
a block, against 6 words).

Both kernels are launched here as the registry launches them (one program an SM, 4 warps a partition),
from the committed module (words) and from a copy of the module before (bytes) in BEFORE_DIR, on the same
1M rows of fp16 output. Outputs are compared with each other (max |difference| over the largest value of a
row: the sums run in another order) and the time is the median of CUDA graph replays, against a
device-to-device copy measured in the same process.

Usage (CUDA machine of compute capability 9, repo root; BEFORE_DIR holds tq3_d192.py and tq3_d256.py as
generated before the change, e.g. from `git show 908185e:generated/tq3/tq3_d256.py`):
PYTHONPATH=$PWD python3 benchmarks/experiments/ws_tq3_words.py BEFORE_DIR
"""
import importlib.util
import sys
from pathlib import Path

import torch

from kernelgen import bench, registry


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ws_call(module, variant, packed, norms, centroids, out):
    """A launch of module's WS_DECOMPRESS as registry.BoundKernel.launch_ws makes it."""
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    lay = variant.layout
    block = module.WS_BLOCK_ROWS.value
    g = lay.codes_per_group
    padded = variant.padded_rotation("fp16")
    order = list(getattr(module, "WS_GROUP_ORDER", range(lay.slot_pad)))
    pieces = torch.cat([padded[j::g][order] for j in range(g)]).contiguous().cuda()
    box = [lay.slot_pad, lay.dim_pad]
    pieces_desc = TensorDescriptor(pieces, list(pieces.shape), [lay.dim_pad, 1], box,
                                   gl.NVMMASharedLayout.get_default_for(box, gl.float16))
    n = packed.shape[0]
    out_desc = TensorDescriptor(out, [n, lay.head_dim], [lay.head_dim, 1], [block, lay.dim_pad],
                                gl.NVMMASharedLayout.get_default_for([block, lay.dim_pad], gl.float16))
    kernel = getattr(module, module.WS_DECOMPRESS)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    grid = (min(sms, -(-n // block)), 1)

    def call():
        kernel[grid](packed, pieces_desc, out_desc, norms, centroids, n, num_warps=4)
    call._keep = pieces  # alive with its descriptor
    return call


def main():
    before_dir = Path(sys.argv[1])
    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    n = 1 << 20
    for d in (256, 192):
        variant = registry.load_variant("tq3", d)
        lay = variant.layout
        packed = torch.randint(0, 256, (n, lay.packed_dim), device="cuda", dtype=torch.uint8)
        norms = torch.rand(n, device="cuda") * 10
        centroids = variant.centroids.to(torch.float16).cuda()
        forms = {"bytes (before)": load_module(before_dir / f"tq3_d{d}.py", f"before_tq3_d{d}"),
                 "words (now)": variant.module}
        outs, calls = {}, {}
        for label, module in forms.items():
            out = torch.full((n, d), float("nan"), device="cuda", dtype=torch.float16)
            calls[label] = ws_call(module, variant, packed, norms, centroids, out)
            calls[label]()
            torch.cuda.synchronize()
            outs[label] = out
        a, b = outs.values()
        scale = a.float().abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
        diff = ((a.float() - b.float()).abs() / scale).max().item()
        print(f"tq3 D{d}: NaN left {[bool(o.isnan().any()) for o in outs.values()]}, max diff {diff:.1e}", flush=True)
        nbytes = bench.op_bytes("decompress", d, lay.packed_dim, n, 2)
        times = {label: [] for label in calls}
        for _ in range(3):
            for label, call in calls.items():
                times[label].append(bench.graph_time_us([call], rounds=1))
        for label, ts in times.items():
            print(f"tq3 D{d} 1M decompress fp16 {label:15s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
