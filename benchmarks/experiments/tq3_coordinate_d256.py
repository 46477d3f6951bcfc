"""Experiment (not part of the package): tq3 compress at D=256 in the coordinate-order form that tq3 takes
up to D=128, on the TMA loop.

Today tq3 at D=256 compresses with eight slot products of 32 columns each (one program an SM holds the
slots, 128 KB) by pointer loads, 16 row blocks a program; its TMA form was slower (wide_tma_forms.py).
Up to D=128, tq3 instead takes one product with the transposed rotation, its columns in lane-group order
(PackLayout.lane_group_columns), so each byte group's eight codes land in one thread of the accumulator and
the group words are summed there. Here that kernel is taken as generated for D=128 (its source from the
checkout's tq3_d128 module, the TMA loop with the raw fp16 product) and set on the D=256 module's
constants, codebook and search (the module text is joined at run time; the reshape takes 8 groups a lane
instead of 4), the whole transposed rotation (256 x 256 fp16, 128 KB) in shared memory, one program an SM.
Lane-group order for 256 columns assumes one warpgroup holds all of them (4 warps); at 8 warps Triton splits
the columns over two warpgroups, and the sums cross lanes (still correct).
1M fp16 rows, B64 w4 / w8, 2 and 3 stages, against the shipped kernel as the registry launches it (the
committed table), three rounds, timed as `kernelgen bench` times; codes against the fp32 path, norms
against the shipped kernel's.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tq3_coordinate_d256.py
"""
import importlib.util
import tempfile
from pathlib import Path

import torch

import kernelgen
from kernelgen import bench, torch_path
from kernelgen.layout import PackLayout

ROWS = 1 << 20
FORMS = [(64, 4, 3), (64, 8, 3), (64, 4, 2)]  # (BLOCK_ROWS, warps, stages)


def coordinate_module(folder: Path):
    """tq3_d256's module text with tq3_d128's compress kernel appended as `coordinate_compress`."""
    root = Path(kernelgen.__file__).parent.parent / "generated" / "tq3"
    wide, narrow = (root / "tq3_d256.py").read_text(), (root / "tq3_d128.py").read_text()
    start = narrow.index("@triton.autotune(configs=CONFIGS, key=TUNE_KEY)\n@triton.jit(do_not_specialize=[\"n_rows\", "
                         "\"ROW_BUCKET\"])\ndef tq3_d128_compress(")
    kernel = narrow[start:narrow.index("@triton.jit\ndef _load_words(")]
    assert kernel.count("(BLOCK_ROWS, 4, 4, 4, 2)") == 2
    kernel = (kernel.replace("@triton.autotune(configs=CONFIGS, key=TUNE_KEY)\n", "")
              .replace("def tq3_d128_compress(", "def coordinate_compress(")
              .replace("(BLOCK_ROWS, 4, 4, 4, 2)", "(BLOCK_ROWS, GROUPS_PER_LANE, 4, 4, 2)")
              .replace("ROW_CHUNK", "DIM_PAD"))  # the whole row in one product step
    path = folder / "tq3_d256_coordinate.py"
    path.write_text(wide + "\n\nGROUPS_PER_LANE = tl.constexpr(8)\n\n\n" + kernel)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    from triton.tools.tensor_descriptor import TensorDescriptor

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    q = kernelgen.quantizer("tq3", 256, device="cuda")
    kernel = coordinate_module(Path(tempfile.mkdtemp())).coordinate_compress
    columns = PackLayout(3, 256).lane_group_columns()
    rotation_t = q.rotation[columns].t().contiguous().half()  # rotation_t[k, p] = rotation[c(p), k]
    nbytes = bench.op_bytes("compress", 256, q.packed_dim, ROWS, 2)
    sets = bench.input_sets(nbytes)
    xs = [torch.randn(ROWS, 256, device="cuda", dtype=torch.float16) for _ in range(sets)]
    outs = [(torch.empty(ROWS, q.packed_dim, dtype=torch.uint8, device="cuda"), torch.empty(ROWS, 1, device="cuda"))
            for _ in range(sets)]
    ref_packed, _ = torch_path.compress_rows(xs[0], q.rotation, q.boundaries, q.layout)
    shipped = q.compress(xs[0])
    calls = {"shipped": [lambda x=x, o=o: q.compress(x, out=o) for x, o in zip(xs, outs)]}
    print(f"shipped: codes = fp32 path {bench.code_agreement(shipped[0], ref_packed, q.layout):.5f}", flush=True)
    for block, warps, stages in FORMS:
        def call(x, packed, norms, block=block, warps=warps, stages=stages):
            desc = TensorDescriptor(x, [ROWS, 256], [256, 1], [block, 256])
            kernel[(min(sms, -(-ROWS // block)),)](x, rotation_t, packed, norms, ROWS, ROWS, BLOCK_ROWS=block,
                                                   PRECISION="fp16", ROW_BLOCKS=1, TMA_STAGES=stages,
                                                   RAW_PRODUCT=True, x_desc=desc, num_warps=warps,
                                                   num_stages=stages)
        label = f"coordinate B{block} w{warps} s{stages}"
        packed = torch.full((ROWS, q.packed_dim), 0xA5, dtype=torch.uint8, device="cuda")
        norms = torch.full((ROWS, 1), float("nan"), device="cuda")
        try:
            call(xs[0], packed, norms)
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001  (out of resources)
            print(f"{label}: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
            continue
        print(f"{label}: codes = fp32 path {bench.code_agreement(packed, ref_packed, q.layout):.5f}, = shipped "
              f"{bench.code_agreement(packed, shipped[0], q.layout):.5f}; norms = shipped "
              f"{torch.allclose(norms, shipped[1], rtol=1e-6, atol=0)}", flush=True)
        calls[label] = [lambda x=x, o=o, call=call: call(x, *o) for x, o in zip(xs, outs)]
    times = {label: [] for label in calls}
    for _ in range(3):
        for label, c in calls.items():
            times[label].append(bench.graph_time_us(c, rounds=1))
    for label, ts in times.items():
        print(f"tq3 D256 compress {label:24s} " + " / ".join(f"{t:6.1f}" for t in ts)
              + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
