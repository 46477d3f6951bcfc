"""Experiment (not part of the package): tq4 compress at D=256 written in Gluon (Triton's explicit-layout
dialect), so that the rotation product of one row block runs on the tensor cores while the code search
and packing of the block before it run on the other units.

Why: the shipped D=256 compress holds the whole rotation (128 KB of fp16 slots) in shared memory, so one
program fits an SM, and Triton waits for each product right after issuing it (`warp_group_dot_wait
{pendings = 0}` in its TTGIR), so within that one program the product and the search never overlap. At
D=128, where two programs fit an SM, one program an SM ran 190 us against 137 us for two
(h100-tma_ws_tq4_d128-second.txt). Triton 3.6's `warp_specialize` does nothing on Hopper for this loop (its TTGIR
is unchanged); Gluon's `warpgroup_mma(is_async=True)` lets the kernel wait later.

The kernel (tq4; D=256 at one program an SM, D=128 at two): both slots loaded once by TMA; the rows by TMA into a ring of STAGES
buffers with mbarriers; in each step the products of block i are issued asynchronously, then block
i - 1's products (already waited) are scaled by 1 / (norm + eps), searched (the generated module's
BYTE_SEARCH_PTX) and stored, then block i's products are waited for and its buffer refilled. The
products take the raw fp16 rows, as the shipped kernel's RAW_PRODUCT form does, so the bytes and norms
should equal the shipped kernel's exactly.

The shipped kernel runs as the registry launches it, with the committed tuned table (B64 w8 at D=256,
B64 w4 at D=128 on the H100).

Result (h100-gluon_compress_d256.txt): slower than the shipped kernel at both widths; see the README row.

Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/gluon_compress_d256.py
(`... gluon_compress_d256.py ncu` under `ncu -k regex:compress -s 2` profiles one launch of each kernel).
"""
import re

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma, warpgroup_mma, warpgroup_mma_wait


def search_ptx(module) -> tuple[str, str]:
    """The generated module's fp16 byte search (PTX text and constraints), read from its source."""
    source = open(module.__file__).read()
    constraints = re.search(r'inline_asm_elementwise\(BYTE_SEARCH_PTX, "([^"]+)"', source).group(1)
    return module.BYTE_SEARCH_PTX.value, constraints


@gluon.jit
def _finish(acc0, acc1, norm, first_row, n_rows, packed_ptr, norms_ptr,
            SEARCH_PTX: gl.constexpr, CONSTRAINTS: gl.constexpr, layout: gl.constexpr, PACKED: gl.constexpr,
            COALESCE: gl.constexpr):
    """Scale a block's products by 1 / (norm + eps), search, pack and store its bytes and norms. Rows at
    or past n_rows (first_row = n_rows before the first block) are masked off."""
    BM: gl.constexpr = acc0.shape[0]
    SLOT: gl.constexpr = acc0.shape[1]
    inv = gl.expand_dims(1.0 / (norm + 1e-10), 1)
    word = gl.inline_asm_elementwise(SEARCH_PTX, CONSTRAINTS, [(acc0 * inv).to(gl.float16), (acc1 * inv).to(gl.float16)],
                                     dtype=gl.int16, is_pure=True, pack=2)
    if COALESCE:  # the bytes through shared memory into a layout whose lanes store neighbouring bytes of a row
        out_layout: gl.constexpr = gl.BlockedLayout([1, 16], [32 // (SLOT // 16), SLOT // 16], [gl.num_warps(), 1], [1, 0])
        byte = gl.convert_layout((word & 0xFF).to(gl.uint8), out_layout)
        rows_n = first_row + gl.arange(0, BM, layout=gl.SliceLayout(1, gl.BlockedLayout([1, 1], [32, 1], [gl.num_warps(), 1], [1, 0])))
        gl.store(norms_ptr + rows_n, gl.convert_layout(norm, rows_n.type.layout), mask=rows_n < n_rows)
    else:
        out_layout: gl.constexpr = layout
        byte = (word & 0xFF).to(gl.uint8)
    rows = first_row + gl.arange(0, BM, layout=gl.SliceLayout(1, out_layout))
    cols = gl.arange(0, SLOT, layout=gl.SliceLayout(0, out_layout))
    row_ok = rows < n_rows
    out = packed_ptr + gl.expand_dims(rows.to(gl.int64) * PACKED, 1) + gl.expand_dims(cols, 0)
    ok = gl.expand_dims(row_ok, 1)
    if PACKED < SLOT:  # rows padded to a power of two: the groups past the head dim are not stored
        ok = ok & gl.expand_dims(cols < PACKED, 0)
    gl.store(out, byte, mask=ok)
    if not COALESCE:
        gl.store(norms_ptr + rows, norm, mask=row_ok)


@gluon.jit
def gluon_compress(x_desc, w_desc, packed_ptr, norms_ptr, n_rows,
                   STAGES: gl.constexpr, DIM_PAD: gl.constexpr, PACKED: gl.constexpr, NORM_EARLY: gl.constexpr, COALESCE: gl.constexpr, SEARCH_PTX: gl.constexpr, CONSTRAINTS: gl.constexpr,
                   num_warps: gl.constexpr):
    """x_desc: the (n_rows, D) fp16 rows, block BM x D. w_desc: the two slots stacked, (2 DIM_PAD, DIM_PAD / 2)
    fp16, block D x DIM_PAD / 2 (a slot's first D rows). packed: (n_rows, PACKED) uint8. norms: (n_rows,) fp32."""
    BM: gl.constexpr = x_desc.block_type.shape[0]
    D: gl.constexpr = x_desc.block_type.shape[1]
    SLOT: gl.constexpr = w_desc.block_type.shape[1]
    WN: gl.constexpr = num_warps // 4
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, WN], instr_shape=[16, SLOT // WN, 16])
    rows_layout: gl.constexpr = gl.BlockedLayout([1, 8], [1, 32], [num_warps, 1], [1, 0])

    w = gl.allocate_shared_memory(gl.float16, [2, D, SLOT], w_desc.layout)
    xs = gl.allocate_shared_memory(gl.float16, [STAGES, BM, D], x_desc.layout)
    bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    w_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(bars.index(s), count=1)
    mbarrier.init(w_bar, count=1)

    mbarrier.expect(w_bar, 2 * w_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(w_desc, [0, 0], w_bar, w.index(0))
    tma.async_copy_global_to_shared(w_desc, [DIM_PAD, 0], w_bar, w.index(1))

    pid = gl.program_id(0)
    programs = gl.num_programs(0)
    count = gl.cdiv(gl.cdiv(n_rows, BM) - pid, programs)  # this program's row blocks (the grid is <= the blocks)
    for s in gl.static_range(STAGES):
        mbarrier.expect(bars.index(s), x_desc.block_type.nbytes, pred=s < count)
        tma.async_copy_global_to_shared(x_desc, [(pid + s * programs) * BM, 0], bars.index(s), xs.index(s), pred=s < count)
    mbarrier.wait(w_bar, 0)

    zero = gl.zeros((BM, SLOT), gl.float32, mma)
    p0 = zero
    p1 = zero
    p_norm = gl.zeros((BM,), gl.float32, gl.SliceLayout(1, mma))
    p_first = n_rows  # no block before the first: every row masked off
    for i in range(count):
        slot = i % STAGES
        mbarrier.wait(bars.index(slot), (i // STAGES) & 1)
        x_smem = xs.index(slot)
        c0 = warpgroup_mma(x_smem, w.index(0), zero, use_acc=False, is_async=True)
        c1 = warpgroup_mma(x_smem, w.index(1), zero, use_acc=False, is_async=True)
        if NORM_EARLY:  # the norm while the products run (more registers live)
            x = x_smem.load(rows_layout).to(gl.float32)
            norm = gl.sqrt(gl.sum(x * x, axis=1))
        _finish(p0, p1, p_norm, p_first, n_rows, packed_ptr, norms_ptr, SEARCH_PTX, CONSTRAINTS, mma, PACKED, COALESCE)
        c0, c1 = warpgroup_mma_wait(0, deps=(c0, c1))
        if not NORM_EARLY:
            x = x_smem.load(rows_layout).to(gl.float32)
            norm = gl.sqrt(gl.sum(x * x, axis=1))
        gl.thread_barrier()  # every warp has read buffer `slot` before TMA refills it
        nxt = i + STAGES
        mbarrier.expect(bars.index(slot), x_desc.block_type.nbytes, pred=nxt < count)
        tma.async_copy_global_to_shared(x_desc, [(pid + nxt * programs) * BM, 0], bars.index(slot), x_smem, pred=nxt < count)
        p0 = c0
        p1 = c1
        p_norm = gl.convert_layout(norm, gl.SliceLayout(1, mma))
        p_first = (pid + i * programs) * BM
    _finish(p0, p1, p_norm, p_first, n_rows, packed_ptr, norms_ptr, SEARCH_PTX, CONSTRAINTS, mma, PACKED, COALESCE)
    for s in gl.static_range(STAGES):
        mbarrier.invalidate(bars.index(s))
    mbarrier.invalidate(w_bar)


def descriptors(x: torch.Tensor, slots: torch.Tensor, block_rows: int):
    """The Gluon tensor descriptors of the rows and of the two slots stacked (each slot's first D rows)."""
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    d, (_, dim_pad, slot) = x.shape[1], slots.shape
    x_layout = gl.NVMMASharedLayout.get_default_for([block_rows, d], gl.float16)
    w_layout = gl.NVMMASharedLayout.get_default_for([d, slot], gl.float16)
    stacked = slots.reshape(2 * dim_pad, slot)
    return (TensorDescriptor.from_tensor(x, [block_rows, d], x_layout),
            TensorDescriptor.from_tensor(stacked, [d, slot], w_layout))


def launch(x, slots, packed, norms, ptx, block_rows=64, stages=3, num_warps=8, per_sm=1, norm_early=False,
           coalesce=False):
    x_desc, w_desc = descriptors(x, slots, block_rows)
    n = x.shape[0]
    programs = per_sm * torch.cuda.get_device_properties(0).multi_processor_count
    grid = (min(programs, -(-n // block_rows)),)
    gluon_compress[grid](x_desc, w_desc, packed, norms, n, stages, slots.shape[1], packed.shape[1], norm_early, coalesce,
                         ptx[0], ptx[1], num_warps=num_warps)


# (head dim, forms): (BLOCK_ROWS, warps, stages, programs an SM, norm while the products run, coalesced stores)
FORMS = {
    256: [(64, 8, 3, 1, True, False), (64, 8, 3, 1, True, True), (64, 8, 2, 1, True, True), (64, 8, 3, 1, False, True)],
    128: [(64, 4, 3, 2, True, False), (64, 4, 3, 2, True, True), (64, 4, 3, 2, False, True)],
}


def main():
    import kernelgen
    from kernelgen import bench, torch_path

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for d, forms in FORMS.items():
        q = kernelgen.quantizer("tq4", d, device="cuda")
        ptx = search_ptx(q._kernels["compress"].variant.module)
        slots = q._compress_rotation[torch.float16]
        packed_dim = q.packed_dim
        # bytes and norms against the shipped kernel (the same raw fp16 product and search), poisoned first
        # (below 2^20 rows the shipped kernel takes its pointer-load form, whose product normalizes first:
        # there a few codes may differ by rounding, so the codes are also checked against the fp32 path)
        for n in (1, 63, 1000, 70001, 1 << 20):
            x = torch.randn(n, d, device="cuda", dtype=torch.float16)
            x[:1] = 0
            ref_packed, ref_norms = q.compress(x)
            for block, warps, stages, per_sm, early, coalesce in forms:
                packed = torch.full((n, packed_dim), 0xA5, device="cuda", dtype=torch.uint8)
                norms = torch.full((n,), float("nan"), device="cuda", dtype=torch.float32)
                try:
                    launch(x, slots, packed, norms, ptx, block, stages, warps, per_sm, early, coalesce)
                    torch.cuda.synchronize()
                except Exception as exc:  # noqa: BLE001  (shared memory, registers)
                    print(f"D{d} B{block} w{warps} s{stages} {per_sm}/SM {coalesce}: {type(exc).__name__}: {str(exc)[:160]}",
                          flush=True)
                    continue
                fp32_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
                print(f"D{d} rows {n:>8} B{block} w{warps} s{stages} {per_sm}/SM early {early} coalesce {coalesce}: bytes equal "
                      f"{torch.equal(packed, ref_packed)} (differing {(packed != ref_packed).sum().item()}), "
                      f"norms equal {torch.equal(norms, ref_norms.view(-1))}; codes = fp32 path "
                      f"{bench.code_agreement(packed, fp32_packed, q.layout):.5f} (shipped "
                      f"{bench.code_agreement(ref_packed, fp32_packed, q.layout):.5f})", flush=True)

        n = 1 << 20
        x = torch.randn(n, d, device="cuda", dtype=torch.float16)
        ref_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
        nbytes = bench.op_bytes("compress", d, packed_dim, n, 2)
        shipped = q.compress(x)
        calls = {"shipped": lambda q=q, x=x, shipped=shipped: q.compress(x, out=shipped)}
        outs = {}
        for form in forms:
            packed = torch.empty((n, packed_dim), device="cuda", dtype=torch.uint8)
            norms = torch.empty((n,), device="cuda", dtype=torch.float32)
            block, warps, stages, per_sm, early, coalesce = form
            label = f"gluon B{block} w{warps} s{stages} {per_sm}/SM{' early' if early else ''}{' coalesced' if coalesce else ''}"
            call = (lambda x=x, packed=packed, norms=norms, form=form:
                    launch(x, slots, packed, norms, ptx, form[0], form[2], form[1], form[3], form[4], form[5]))
            try:
                call()
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001  (shared memory, registers)
                print(f"D{d} {label}: {type(exc).__name__}: {str(exc)[:160]}", flush=True)
                continue
            calls[label] = call
            outs[label] = packed
        times = {label: [] for label in calls}
        for _ in range(3):
            for label, call in calls.items():
                times[label].append(bench.graph_time_us([call], rounds=1))
        for label, ts in times.items():
            print(f"tq4 D{d} {label:38s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)
        for label, packed in outs.items():
            print(f"D{d} {label}: codes = fp32 path {bench.code_agreement(packed, ref_packed, q.layout):.5f}", flush=True)
        print(f"D{d} shipped: codes = fp32 path {bench.code_agreement(shipped[0], ref_packed, q.layout):.5f}", flush=True)


def drive_for_ncu():
    """One launch each of the shipped kernel and the fastest Gluon form (D=256, 1M rows) after a warm-up
    launch each: `ncu ... -k regex:compress -s 2 python3 <this file> ncu`."""
    import kernelgen

    q = kernelgen.quantizer("tq4", 256, device="cuda")
    ptx = search_ptx(q._kernels["compress"].variant.module)
    slots = q._compress_rotation[torch.float16]
    x = torch.randn(1 << 20, 256, device="cuda", dtype=torch.float16)
    packed = torch.empty((1 << 20, 128), device="cuda", dtype=torch.uint8)
    norms = torch.empty((1 << 20,), device="cuda", dtype=torch.float32)
    runs = [lambda: q.compress(x), lambda: launch(x, slots, packed, norms, ptx, 64, 2, 8, 1, True, True)]
    for run in runs + runs:
        run()
        torch.cuda.synchronize()


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["ncu"]:
        drive_for_ncu()
    else:
        main()
