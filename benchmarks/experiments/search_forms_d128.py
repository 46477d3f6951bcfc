"""Experiment (not part of the package): compress at D=128, 1M rows, fp16 and bf16 rows, tq4/tq3/tq2, on
an H100: the search's last form in the template against the one before it, and the raw fp16 rows
against normalizing first, each module at each config (generated modules of the day saved under
search_forms_modules/: signed_* = the search with 0/1 bits and multiply-adds (commit b141743),
weighted_* = each compare selecting its bit's weight; weightednoraw = weighted_* with its RAW line
made False, every row normalized first, derived when the script runs), and
for tq3 `coord`: one 128-column product in coordinate order (the rotation transposed) instead of eight
16-column slot products, the weighted search, the group words by a reshape (B, 16, 8) and a weighted
sum over the last axis (raw fp16 rows).
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/search_forms_d128.py
"""
import importlib.util
import os
import sys
import tempfile

import torch
import triton
import triton.language as tl
from triton.testing import do_bench

import kernelgen


MODULES = "benchmarks/experiments/search_forms_modules"
RAW_LINE = '    RAW: tl.constexpr = x_ptr.dtype.element_ty == tl.float16 and PRECISION == "fp16"\n'


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # triton reads the kernels' source through their module
    spec.loader.exec_module(module)
    return module


def load_form(form, spec_name):
    """signed / weighted: the saved module; weightednoraw: the weighted module, rows normalized first."""
    if form != "weightednoraw":
        return load(f"{MODULES}/{form}_{spec_name}_d128.py", f"exp_{form}_{spec_name}")
    with open(f"{MODULES}/weighted_{spec_name}_d128.py") as handle:
        source = handle.read()
    assert source.count(RAW_LINE) == 1
    path = os.path.join(tempfile.mkdtemp(), f"weightednoraw_{spec_name}_d128.py")
    with open(path, "w") as handle:
        handle.write(source.replace(RAW_LINE, "    RAW: tl.constexpr = False\n"))
    return load(path, f"exp_{form}_{spec_name}")


_signed3 = load(f"{MODULES}/weighted_tq3_d128.py", "exp_coord_tq3")._signed_code


@triton.jit
def coord_tq3(x_ptr, rt_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    c = tl.arange(0, 128)
    rt = tl.load(rt_ptr + c[:, None] * 128 + c[None, :])
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * 128 + c[None, :], mask=row_ok[:, None], other=0.0)
    xf = x.to(tl.float32)
    norm = tl.sqrt(tl.sum(xf * xf, axis=1))
    y = tl.dot(x, rt) * (1.0 / (norm + 1e-10))[:, None]
    tl.store(norms_ptr + rows, norm, mask=row_ok)
    colw = (1 << (3 * (7 - c % 8))).to(tl.float32)
    word = (tl.sum(tl.reshape(_signed3(y) * colw[None, :], (BLOCK_ROWS, 16, 8)), axis=2) + 8388607.5).to(tl.int32)
    groups = tl.arange(0, 16)
    out = packed_ptr + rows[:, None].to(tl.int64) * 48 + groups[None, :] * 3
    for t in tl.static_range(3):
        tl.store(out + t, ((word >> (8 * (2 - t))) & 0xFF).to(tl.uint8), mask=row_ok[:, None])


def main():
    torch.manual_seed(0)
    rows = 1 << 20
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    big2 = torch.empty_like(big)
    copy_us = do_bench(lambda: big2.copy_(big), warmup=25, rep=200) * 1e3
    copy_gbps = 2 * big.numel() / copy_us / 1e3
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for spec in ("tq4", "tq3", "tq2"):
        q = kernelgen.quantizer(spec, 128)
        slots = q._variant.slots("fp16").cuda()  # every form here takes the slots
        nbytes = rows * (128 * 2 + q.packed_dim + 4)
        for dt in (torch.float16, torch.bfloat16):
            x = torch.randn(rows, 128, device="cuda", dtype=dt)
            ref_p, ref_n = q.compress(x)
            p, n = torch.empty_like(ref_p), torch.empty_like(ref_n)
            for form in ("signed", "weighted", "weightednoraw"):
                if form == "weightednoraw" and dt == torch.bfloat16:
                    continue  # bf16 rows are normalized first in every form
                module = load_form(form, spec)
                kernel = getattr(module, f"{spec}_d128_compress").fn
                for blk, warps in ((32, 4), (64, 4), (32, 8), (128, 8)):
                    def run():
                        kernel[(rows // blk,)](x, slots, p, n, rows, rows, BLOCK_ROWS=blk, PRECISION="fp16",
                                               num_warps=warps, num_stages=1)
                    try:
                        run()
                        same = (p == ref_p).double().mean().item()
                        us = do_bench(run, warmup=10, rep=100) * 1e3
                        print(f"{spec} {str(dt)[6:]:9s} {form:14s} B{blk:<3d} w{warps}  {us:7.1f} us "
                              f"{nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  same bytes as shipped {same:.5f}",
                              flush=True)
                    except Exception as e:
                        print(f"{spec} {form} B{blk} w{warps} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
            if spec == "tq3" and dt == torch.float16:
                rt = q.rotation.to("cuda", torch.float16).T.contiguous()
                for blk, warps in ((32, 4), (64, 4), (32, 8), (128, 8)):
                    def run():
                        coord_tq3[(rows // blk,)](x, rt, p, n, rows, BLOCK_ROWS=blk, num_warps=warps)
                    try:
                        run()
                        same = (p == ref_p).double().mean().item()
                        us = do_bench(run, warmup=10, rep=100) * 1e3
                        print(f"tq3 float16   coord          B{blk:<3d} w{warps}  {us:7.1f} us "
                              f"{nbytes / us / 1e3 / copy_gbps * 100:5.1f}%  same bytes as shipped {same:.5f}",
                              flush=True)
                    except Exception as e:
                        print(f"tq3 coord B{blk} w{warps} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)


if __name__ == "__main__":
    main()
