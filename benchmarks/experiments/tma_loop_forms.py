"""Experiment (not part of the package): why the registry's TMA compress (branch tma-compress: a loop of
TMA_ITERS row blocks from 0, a constexpr count, n_rows not specialized) was no faster than the pointer loads
at tq4 D=128/96 while tma_persistent_dims.py's kernel (a loop from the program id to the block count by the
grid, n_rows specialized) was. Four forms of that kernel: runtime loop or constexpr count, n_rows
specialized or not; with the pointer loads and the registry's TMA launch. Three rounds, as the bench times.
Usage (CUDA machine, repo root, branch tma-compress): PYTHONPATH=$PWD python3 benchmarks/experiments/tma_loop_forms.py
"""
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import torch
from triton.tools.tensor_descriptor import TensorDescriptor

os.environ["KERNELGEN_AUTOTUNE"] = "0"
ROWS = 1 << 20
SOURCE = '''import triton
import triton.language as tl

from generated.{spec} import {spec}_d{head_dim} as m


@triton.jit
def compress_tma(x_desc, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, STAGES: tl.constexpr):
    k = tl.arange(0, {dim_pad})[:, None]
    n = tl.arange(0, {slot_pad})[None, :]
    w = slots_ptr + k * {slot_pad} + n
{loads}
    groups = tl.arange(0, {slot_pad})
    n_blocks = tl.cdiv(n_rows, BLOCK_ROWS)
    for b in tl.range(tl.program_id(0), n_blocks, tl.num_programs(0), num_stages=STAGES):
        rows = b * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        xf = x_desc.load([b * BLOCK_ROWS, 0]).to(tl.float32)
        norm = tl.sqrt(tl.sum(xf * xf, axis=1))
        xf = xf * (1.0 / (norm + 1e-10))[:, None]
{products}
        tl.store(norms_ptr + rows, norm, mask=row_ok)
        word = m._byte_groups_fp16({ys}, True)
        out = packed_ptr + rows[:, None].to(tl.int64) * {packed_dim} + groups[None, :]
        tl.store(out, (word & 0xFF).to(tl.uint8), mask=row_ok[:, None] & (groups < {groups})[None, :])


@triton.jit(do_not_specialize=["n_rows"])
def compress_nospec(x_desc, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, STAGES: tl.constexpr):
    k = tl.arange(0, {dim_pad})[:, None]
    n = tl.arange(0, {slot_pad})[None, :]
    w = slots_ptr + k * {slot_pad} + n
{loads}
    groups = tl.arange(0, {slot_pad})
    n_blocks = tl.cdiv(n_rows, BLOCK_ROWS)
    for b in tl.range(tl.program_id(0), n_blocks, tl.num_programs(0), num_stages=STAGES):
        rows = b * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        xf = x_desc.load([b * BLOCK_ROWS, 0]).to(tl.float32)
        norm = tl.sqrt(tl.sum(xf * xf, axis=1))
        xf = xf * (1.0 / (norm + 1e-10))[:, None]
{products}
        tl.store(norms_ptr + rows, norm, mask=row_ok)
        word = m._byte_groups_fp16({ys}, True)
        out = packed_ptr + rows[:, None].to(tl.int64) * {packed_dim} + groups[None, :]
        tl.store(out, (word & 0xFF).to(tl.uint8), mask=row_ok[:, None] & (groups < {groups})[None, :])


@triton.jit
def compress_iters(x_desc, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, STAGES: tl.constexpr, ITERS: tl.constexpr):
    k = tl.arange(0, {dim_pad})[:, None]
    n = tl.arange(0, {slot_pad})[None, :]
    w = slots_ptr + k * {slot_pad} + n
{loads}
    groups = tl.arange(0, {slot_pad})
    n_blocks = tl.cdiv(n_rows, BLOCK_ROWS)
    for t in tl.range(0, ITERS, num_stages=STAGES):
        b = tl.program_id(0) + t * tl.num_programs(0)
        rows = b * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        xf = x_desc.load([b * BLOCK_ROWS, 0]).to(tl.float32)
        norm = tl.sqrt(tl.sum(xf * xf, axis=1))
        xf = xf * (1.0 / (norm + 1e-10))[:, None]
{products}
        tl.store(norms_ptr + rows, norm, mask=row_ok)
        word = m._byte_groups_fp16({ys}, True)
        out = packed_ptr + rows[:, None].to(tl.int64) * {packed_dim} + groups[None, :]
        tl.store(out, (word & 0xFF).to(tl.uint8), mask=row_ok[:, None] & (groups < {groups})[None, :])


@triton.jit(do_not_specialize=["n_rows"])
def compress_iters_nospec(x_desc, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr, STAGES: tl.constexpr, ITERS: tl.constexpr):
    k = tl.arange(0, {dim_pad})[:, None]
    n = tl.arange(0, {slot_pad})[None, :]
    w = slots_ptr + k * {slot_pad} + n
{loads}
    groups = tl.arange(0, {slot_pad})
    n_blocks = tl.cdiv(n_rows, BLOCK_ROWS)
    for t in tl.range(0, ITERS, num_stages=STAGES):
        b = tl.program_id(0) + t * tl.num_programs(0)
        rows = b * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        xf = x_desc.load([b * BLOCK_ROWS, 0]).to(tl.float32)
        norm = tl.sqrt(tl.sum(xf * xf, axis=1))
        xf = xf * (1.0 / (norm + 1e-10))[:, None]
{products}
        tl.store(norms_ptr + rows, norm, mask=row_ok)
        word = m._byte_groups_fp16({ys}, True)
        out = packed_ptr + rows[:, None].to(tl.int64) * {packed_dim} + groups[None, :]
        tl.store(out, (word & 0xFF).to(tl.uint8), mask=row_ok[:, None] & (groups < {groups})[None, :])
'''


def load(spec, head_dim):
    from kernelgen.layout import PackLayout

    lay = PackLayout({"tq4": 4, "tq2": 2}[spec], head_dim)
    g = lay.codes_per_group
    text = SOURCE.format(
        spec=spec, head_dim=head_dim, dim_pad=lay.dim_pad, slot_pad=lay.slot_pad, packed_dim=lay.packed_dim,
        groups=lay.groups, ys=", ".join(f"y{j}" for j in range(g)),
        loads="\n".join(f"    w{j} = tl.load(w + {j * lay.dim_pad * lay.slot_pad})" for j in range(g)),
        products="\n".join(f"        y{j} = m._dot(xf, w{j}, tl.zeros((BLOCK_ROWS, {lay.slot_pad}), dtype=tl.float32), "
                           f'"fp16")' for j in range(g)))
    path = Path(tempfile.mkdtemp()) / f"loop_forms_{spec}_d{head_dim}.py"
    path.write_text(text)
    spec_ = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[path.stem] = module
    spec_.loader.exec_module(module)
    return module, lay


def main():
    import kernelgen
    from kernelgen import bench, registry

    torch.manual_seed(0)
    copy = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy:.0f} GB/s", flush=True)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for spec, d in (("tq4", 128), ("tq4", 96)):
        module, lay = load(spec, d)
        tma = registry.runs_tma
        qp, qt = kernelgen.quantizer(spec, d, device="cuda"), kernelgen.quantizer(spec, d, device="cuda")
        x = torch.randn(ROWS, d, device="cuda", dtype=torch.float16)
        registry.runs_tma = lambda interpreted: False
        qp.compress(x)
        registry.runs_tma = tma
        ref = qt.compress(x)
        slots = qt._kernel_args("compress", torch.float16, (x,), ())[1]
        packed, norms = torch.empty_like(ref[0]), torch.empty_like(ref[1])
        desc = TensorDescriptor.from_tensor(x, [64, lay.dim_pad])
        grid = (2 * sms,)
        iters = -(-(ROWS // 64) // grid[0])
        cases = {
            "pointer": lambda: qp.compress(x, out=(packed, norms)),
            "registry": lambda: qt.compress(x, out=(packed, norms)),
            "runtime-spec": lambda: module.compress_tma[grid](desc, slots, packed, norms, ROWS, BLOCK_ROWS=64,
                                                            STAGES=3, num_warps=4),
            "runtime-nospec": lambda: module.compress_nospec[grid](desc, slots, packed, norms, ROWS, BLOCK_ROWS=64,
                                                                 STAGES=3, num_warps=4),
            "iters-spec": lambda: module.compress_iters[grid](desc, slots, packed, norms, ROWS, BLOCK_ROWS=64,
                                                            STAGES=3, ITERS=iters, num_warps=4),
            "iters-nospec": lambda: module.compress_iters_nospec[grid](desc, slots, packed, norms, ROWS,
                                                                     BLOCK_ROWS=64, STAGES=3, ITERS=iters,
                                                                     num_warps=4),
        }
        for name, fn in cases.items():
            packed.fill_(0xA5)
            fn()
            torch.cuda.synchronize()
            assert torch.equal(packed, ref[0]) and torch.equal(norms, ref[1]), name
        for r in range(3):
            print(f"{spec} D{d} round {r}: " + "  ".join(f"{k} {bench.graph_time_us([f], rounds=1):6.1f}"
                                                          for k, f in cases.items()), flush=True)


if __name__ == "__main__":
    main()
