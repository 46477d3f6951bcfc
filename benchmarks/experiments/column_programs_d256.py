"""Experiment (not part of the package): decompress at D=256 (fp16): the generated kernel, one program
per row block looping over the two 128-column output steps, against the same kernel with the output
steps spread over a second grid axis (program (i, c) computes output columns [128c, 128c + 128) of row
block i; the codes are read by both). At 8 rows (decode) the loop runs its products in sequence on one
program; with the second axis two programs share them.
Times: CUDA-graph replay (triton do_bench_cudagraph) at 8 rows, do_bench at 1M rows, against a
device-to-device copy measured in the same run. Outputs are checked against the generated kernel's.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/column_programs_d256.py
"""
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch
from triton.testing import do_bench, do_bench_cudagraph

import kernelgen
from kernelgen import registry

LOOP = "    for k0 in range(0, DIM_PAD, OUT_CHUNK):\n"
AXIS = "    k0 = tl.program_id(1) * OUT_CHUNK  # one output step a program along grid axis 1\n    if True:\n"


def column_module(q, spec, head_dim):
    """The generated module with the decompress output loop replaced by grid axis 1."""
    src = Path(q._variant.module.__file__).read_text()
    head, tail = src.split(f"def {spec}_d{head_dim}_decompress(", 1)
    body, rest = tail.split("@triton.autotune", 1)
    assert body.count(LOOP) == 1, "expected one output loop"
    src = head + f"def {spec}_d{head_dim}_decompress(" + body.replace(LOOP, AXIS) + "@triton.autotune" + rest
    path = Path(tempfile.mkdtemp()) / f"columns_{spec}_d{head_dim}.py"
    path.write_text(src)
    spec_ = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec_)
    sys.modules[path.stem] = mod
    spec_.loader.exec_module(mod)
    return mod


def main():
    torch.manual_seed(0)
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for spec, head_dim in (("tq4", 256), ("tq2", 256), ("tq3", 256), ("tq4", 192)):
        q = kernelgen.quantizer(spec, head_dim)
        mod = q._variant.module
        cols = column_module(q, spec, head_dim)
        steps = mod.DIM_PAD // mod.OUT_CHUNK
        gen_fn = getattr(mod, f"{spec}_d{head_dim}_decompress").fn
        col_fn = getattr(cols, f"{spec}_d{head_dim}_decompress").fn
        for rows in (8, 1 << 20):
            x = torch.randn(rows, head_dim, device="cuda", dtype=torch.float16)
            packed, norms = q.compress(x)
            ref = q.decompress(packed, norms)
            out = torch.empty_like(ref)
            nbytes = rows * (head_dim * 2 + q.packed_dim + 4)
            args = (packed, norms.view(-1), q._slots[torch.float16], q._centroid_table[torch.float16], out)
            shipped = q._kernels["decompress"].config(rows, "float16", q.device, args)
            configs = [(shipped.block_rows, shipped.num_warps)] + [
                c for c in ((16, 4), (32, 4), (32, 8), (64, 4), (128, 4)) if c != (shipped.block_rows, shipped.num_warps)]
            for name, fn, gy in (("loop", gen_fn, 1), ("axis", col_fn, steps)):
                for blk, warps in configs:
                    def launch(fn=fn, blk=blk, warps=warps, gy=gy):
                        fn[(-(-rows // blk), gy)](*args, rows, registry.row_bucket(rows), BLOCK_ROWS=blk,
                                                  PRECISION="fp16", num_warps=warps, num_stages=1)
                    try:
                        out.fill_(float("nan"))
                        launch()
                        err = (out.float() - ref.float()).abs().max().item()
                        if rows == 8:
                            us = do_bench_cudagraph(launch, rep=50) * 1e3
                        else:
                            us = do_bench(launch, warmup=10, rep=100) * 1e3
                        tag = " (shipped config)" if (blk, warps) == configs[0] else ""
                        print(f"{spec} D{head_dim} rows {rows:>7} {name} B{blk} w{warps}: {us:8.1f} us "
                              f"{nbytes / us / 1e3 / copy_gbps * 100:5.1f}% max err {err:.1e}{tag}", flush=True)
                    except Exception as e:
                        print(f"{spec} D{head_dim} rows {rows} {name} B{blk} w{warps}: failed {type(e).__name__}: {str(e)[:100]}", flush=True)


if __name__ == "__main__":
    main()
