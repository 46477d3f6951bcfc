"""Experiment (not part of the package): does tma_ws_tq4_d128.py's faster form carry over to other
variants? Compress with the rows read by TMA (a host tensor descriptor, block BLOCK_ROWS x DIM_PAD, columns
past the head dim zero-filled) in a Triton-pipelined persistent loop (`tl.range` over row blocks strided
by the grid, `num_stages` 3 or 4), against the shipped kernel at its table config, for tq4 D=64/96/128 and
tq2 D=64/128 (1-byte groups, the fp16 search; tq3's coordinate-order compress is another body).
Each variant's kernel is written from a template into a temporary module that imports the generated
module's helpers (_dot, _byte_groups_fp16); B64 w4; outputs checked against the shipped kernel's (bytes and
norms equal). Timed as `kernelgen bench` times (1M fp16 rows), three rounds, each timing the shipped
kernel first; a case that does not compile or launch prints its error.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tma_persistent_dims.py
"""
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch
from triton.tools.tensor_descriptor import TensorDescriptor

ROWS = 1 << 20
CASES = [("tq4", 128), ("tq4", 96), ("tq4", 64), ("tq2", 128), ("tq2", 64)]

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
'''


def kernel_module(spec, head_dim, folder: Path):
    from kernelgen.layout import PackLayout

    lay = PackLayout({"tq4": 4, "tq2": 2}[spec], head_dim)
    g = lay.codes_per_group
    text = SOURCE.format(
        spec=spec, head_dim=head_dim, dim_pad=lay.dim_pad, slot_pad=lay.slot_pad, packed_dim=lay.packed_dim,
        groups=lay.groups, ys=", ".join(f"y{j}" for j in range(g)),
        loads="\n".join(f"    w{j} = tl.load(w + {j * lay.dim_pad * lay.slot_pad})" for j in range(g)),
        products="\n".join(f"        y{j} = m._dot(xf, w{j}, tl.zeros((BLOCK_ROWS, {lay.slot_pad}), dtype=tl.float32), "
                           f'"fp16")' for j in range(g)))
    path = folder / f"tma_{spec}_d{head_dim}.py"
    path.write_text(text)
    spec_ = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[path.stem] = module
    spec_.loader.exec_module(module)
    return module, lay


def main():
    import kernelgen
    from kernelgen import bench

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    folder = Path(tempfile.mkdtemp())
    for spec, head_dim in CASES:
        module, lay = kernel_module(spec, head_dim, folder)
        q = kernelgen.quantizer(spec, head_dim, device="cuda")
        x = torch.randn(ROWS, head_dim, device="cuda", dtype=torch.float16)
        slots = q._kernel_args("compress", torch.float16, (x,), ())[1]
        ref_packed, ref_norms = q.compress(x)
        packed, norms = torch.empty_like(ref_packed), torch.empty_like(ref_norms)
        nbytes = bench.op_bytes("compress", head_dim, q.packed_dim, ROWS, 2)
        desc = TensorDescriptor.from_tensor(x, [64, lay.dim_pad])

        def report(label, fn):
            packed.fill_(0xA5)
            norms.fill_(float("nan"))
            try:
                us = bench.graph_time_us([fn], rounds=1)
            except Exception as error:  # noqa: BLE001 - an experiment: print and go on
                print(f"  {label:34s} failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}", flush=True)
                return
            same = torch.equal(packed, ref_packed) and torch.equal(norms, ref_norms)
            print(f"  {label:34s} {us:7.1f} us ({nbytes / us / 1e3 / copy_gbps * 100:5.1f}%)  equal {same}",
                  flush=True)

        print(f"{spec} D={head_dim}", flush=True)
        per_sm_options = (2, 3) if lay.dim_pad == 128 else (2, 3, 4)
        for round_ in range(3):
            report(f"round {round_} shipped", lambda: q.compress(x, out=(packed, norms)))
            for stages in (3, 4):
                for per_sm in per_sm_options:
                    report(f"round {round_} stages {stages} {per_sm}/SM",
                           lambda stages=stages, grid=(sms * per_sm,): module.compress_tma[grid](
                               desc, slots, packed, norms, ROWS, BLOCK_ROWS=64, STAGES=stages, num_warps=4))


if __name__ == "__main__":
    main()
