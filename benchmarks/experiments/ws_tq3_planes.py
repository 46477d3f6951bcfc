"""Experiment (not part of the package): tq3's warp-specialized decompress at D=192/256 with its packed bytes
brought by a loader partition instead of by the compute partitions themselves.

Why: the shipped tq3 kernel (the template's WS_DECOMPRESS, 3-byte groups) loads each group's three bytes by
pointers in the compute partitions, which wait for them; tq4 and tq2 get theirs by TMA from a loader
partition a few blocks ahead. At 1M fp16 rows tq3 D=256 ran 66.4% of copy against tq4's 84.3%
(h100-ws_decompress_sizes*.txt). A 3-byte group fits no TMA box, so here a 4-warp loader partition loads the
bytes by pointers (a row's bytes by neighbouring lanes) and stores them into shared memory as three planes
(byte t of every group: planes[t][row, group]); the compute partitions read the planes straight into the
product's operand layout, as tq4's read its ring. The ring has STAGES buffers, an even number, each serving
one compute partition.

Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/ws_tq3_planes.py
(`... compile` compiles for sm_90 without a GPU and prints registers, spills and shared memory).
"""
import re
import sys

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, tma, warpgroup_mma


@gluon.jit
def _load_planes(packed_ptr, plane0, plane1, plane2, ready, empty, n_rows, n_blocks, PACKED: gl.constexpr,
                 GROUPS: gl.constexpr, CHUNK: gl.constexpr):
    """Loader partition: this program's row blocks, CHUNK rows at a time, byte t of each group into plane t."""
    S: gl.constexpr = plane0.type.shape[0]
    BM: gl.constexpr = plane0.type.shape[1]
    G: gl.constexpr = plane0.type.shape[2]
    layout: gl.constexpr = gl.BlockedLayout([1, 1], [1, 32], [gl.num_warps(), 1], [1, 0])
    pid = gl.program_id(0)
    programs = gl.num_programs(0)
    r = gl.arange(0, CHUNK, layout=gl.SliceLayout(1, layout))
    n = gl.arange(0, G, layout=gl.SliceLayout(0, layout))
    for i in range(gl.cdiv(n_blocks - pid, programs)):
        s = i % S
        mbarrier.wait(empty.index(s), ((i // S) & 1) ^ 1)
        first = (pid + i * programs) * BM
        for c in gl.static_range(BM // CHUNK):
            rows = first + c * CHUNK + r
            ok = gl.expand_dims(rows < n_rows, 1) & gl.expand_dims(n < GROUPS, 0)
            src = packed_ptr + gl.expand_dims(rows.to(gl.int64) * PACKED, 1) + gl.expand_dims(n * 3, 0)
            plane0.index(s).slice(c * CHUNK, CHUNK, dim=0).store(gl.load(src, mask=ok, other=0))
            plane1.index(s).slice(c * CHUNK, CHUNK, dim=0).store(gl.load(src + 1, mask=ok, other=0))
            plane2.index(s).slice(c * CHUNK, CHUNK, dim=0).store(gl.load(src + 2, mask=ok, other=0))
        mbarrier.arrive(ready.index(s), count=1)


@gluon.jit
def _compute(plane0, plane1, plane2, ready, empty, pieces, pieces_bar, out_smem, out_desc, norms_ptr, centroids_ptr,
             n_rows, n_blocks, PART: gl.constexpr):
    S: gl.constexpr = plane0.type.shape[0]
    BM: gl.constexpr = plane0.type.shape[1]
    D: gl.constexpr = pieces.type.shape[2]
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, D, 16])
    operand: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma, k_width=2)
    pid = gl.program_id(0)
    programs = gl.num_programs(0)
    zero = gl.zeros((BM, D), gl.float32, mma)
    rows = gl.arange(0, BM, layout=gl.SliceLayout(1, mma))
    mbarrier.wait(pieces_bar, 0)
    for i in range(PART, gl.cdiv(n_blocks - pid, programs), 2):
        s = i % S
        first = (pid + i * programs) * BM
        norm = gl.load(norms_ptr + first + rows, mask=first + rows < n_rows, other=0.0)
        mbarrier.wait(ready.index(s), (i // S) & 1)
        word = plane0.index(s).load(operand).to(gl.int32) << 16
        word |= plane1.index(s).load(operand).to(gl.int32) << 8
        word |= plane2.index(s).load(operand).to(gl.int32)
        mbarrier.arrive(empty.index(s), count=1)
        x = warpgroup_mma(gl.load(centroids_ptr + ((word >> 21) & 7)), pieces.index(0), zero, use_acc=False)
        x = warpgroup_mma(gl.load(centroids_ptr + ((word >> 18) & 7)), pieces.index(1), x)
        x = warpgroup_mma(gl.load(centroids_ptr + ((word >> 15) & 7)), pieces.index(2), x)
        x = warpgroup_mma(gl.load(centroids_ptr + ((word >> 12) & 7)), pieces.index(3), x)
        x = warpgroup_mma(gl.load(centroids_ptr + ((word >> 9) & 7)), pieces.index(4), x)
        x = warpgroup_mma(gl.load(centroids_ptr + ((word >> 6) & 7)), pieces.index(5), x)
        x = warpgroup_mma(gl.load(centroids_ptr + ((word >> 3) & 7)), pieces.index(6), x)
        x = warpgroup_mma(gl.load(centroids_ptr + (word & 7)), pieces.index(7), x)
        y = (x * gl.expand_dims(norm, 1)).to(out_desc.dtype)
        tma.store_wait(0)
        gl.thread_barrier()
        out_smem.store(y)
        fence_async_shared()
        gl.thread_barrier()
        tma.async_copy_shared_to_global(out_desc, [first, 0], out_smem)
    tma.store_wait(0)


@gluon.jit
def planes_decompress(packed_ptr, pieces_desc, out_desc, norms_ptr, centroids_ptr, n_rows,
                      PACKED: gl.constexpr, GROUPS: gl.constexpr, STAGES: gl.constexpr, LOADER_WARPS: gl.constexpr,
                      LOADER_REGS: gl.constexpr, WORKER_REGS: gl.constexpr, CHUNK: gl.constexpr):
    BM: gl.constexpr = out_desc.block_type.shape[0]
    G: gl.constexpr = pieces_desc.block_type.shape[0]
    D: gl.constexpr = pieces_desc.block_type.shape[1]
    gl.static_assert(STAGES % 2 == 0, "each buffer serves one compute partition")
    pieces = gl.allocate_shared_memory(gl.float16, [8, G, D], pieces_desc.layout)
    plane_layout: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [1, 0])
    plane0 = gl.allocate_shared_memory(gl.uint8, [STAGES, BM, G], plane_layout)
    plane1 = gl.allocate_shared_memory(gl.uint8, [STAGES, BM, G], plane_layout)
    plane2 = gl.allocate_shared_memory(gl.uint8, [STAGES, BM, G], plane_layout)
    outs = gl.allocate_shared_memory(out_desc.dtype, [2, BM, D], out_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    pieces_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(ready.index(s), count=1)
        mbarrier.init(empty.index(s), count=1)
    mbarrier.init(pieces_bar, count=1)
    mbarrier.expect(pieces_bar, 8 * pieces_desc.block_type.nbytes)
    for j in gl.static_range(8):
        tma.async_copy_global_to_shared(pieces_desc, [j * G, 0], pieces_bar, pieces.index(j))
    n_blocks = gl.cdiv(n_rows, BM)
    gl.warp_specialize([
        (_compute, (plane0, plane1, plane2, ready, empty, pieces, pieces_bar, outs.index(0), out_desc, norms_ptr,
                    centroids_ptr, n_rows, n_blocks, 0)),
        (_load_planes, (packed_ptr, plane0, plane1, plane2, ready, empty, n_rows, n_blocks, PACKED, GROUPS, CHUNK)),
        (_compute, (plane0, plane1, plane2, ready, empty, pieces, pieces_bar, outs.index(1), out_desc, norms_ptr,
                    centroids_ptr, n_rows, n_blocks, 1)),
    ], [LOADER_WARPS, 4], [LOADER_REGS, WORKER_REGS])


# forms: (stages, loader warps, loader registers, worker registers, rows a loader chunk)
FORMS = [(4, 4, 40, 232, 16), (2, 4, 40, 232, 16), (4, 1, 40, 232, 8), (4, 4, 40, 232, 64)]


def _desc(t, shape, block):
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    dtype = {torch.float16: gl.float16, torch.bfloat16: gl.bfloat16}[t.dtype]
    return TensorDescriptor(t, shape, [shape[1], 1], block, gl.NVMMASharedLayout.get_default_for(block, dtype))


def args_for(variant, packed, norms, pieces, centroids, out):
    lay = variant.layout
    n = packed.shape[0]
    return (packed, _desc(pieces, list(pieces.shape), [lay.slot_pad, lay.dim_pad]),
            _desc(out, [n, lay.head_dim], [64, lay.dim_pad]), norms, centroids, n)


def launch(variant, args, form):
    stages, warps, lregs, wregs, chunk = form
    lay = variant.layout
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    grid = (min(sms, -(-args[-1] // 64)),)
    planes_decompress[grid](*args, lay.packed_dim, lay.groups, stages, warps, lregs, wregs, chunk, num_warps=4)


def compile_only():
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.runtime.jit import mangle_type

    from kernelgen import registry

    for d in (256, 192):
        v = registry.load_variant("tq3", d)
        lay = v.layout
        pieces = v.rotation_pieces()
        out = torch.zeros(4, d, dtype=torch.float16)
        for form in FORMS:
            stages, warps, lregs, wregs, chunk = form
            sig = {"packed_ptr": "*u8", "pieces_desc": mangle_type(_desc(pieces, list(pieces.shape), [lay.slot_pad, lay.dim_pad])),
                   "out_desc": mangle_type(_desc(out, [4, d], [64, lay.dim_pad])), "norms_ptr": "*fp32",
                   "centroids_ptr": "*fp16", "n_rows": "i32", "PACKED": "constexpr", "GROUPS": "constexpr",
                   "STAGES": "constexpr", "LOADER_WARPS": "constexpr", "LOADER_REGS": "constexpr",
                   "WORKER_REGS": "constexpr", "CHUNK": "constexpr"}
            consts = {(6,): lay.packed_dim, (7,): lay.groups, (8,): stages, (9,): warps, (10,): lregs, (11,): wregs, (12,): chunk}
            src = GluonASTSource(fn=planes_decompress, signature=sig, constexprs=consts,
                                 attrs={(i,): [["tt.divisibility", 16]] for i in (0, 3, 4)})
            try:
                k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
            except Exception as exc:  # noqa: BLE001
                print(d, form, type(exc).__name__, str(exc)[:300])
                continue
            t = k.asm["sass"]
            print(d, form, "smem", k.metadata.shared, "warps", k.metadata.num_warps, "spills",
                  len(re.findall(r"\b(?:STL|LDL)\b", t)),
                  "setmaxnreg", [int(r, 16) for r in re.findall(r"USETMAXREG\.\S+\s+(?:UP\d, )?(0x[0-9a-f]+)", t)][:6])


def main():
    import kernelgen
    from kernelgen import bench, registry, torch_path

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for d in (256, 192):
        q = kernelgen.quantizer("tq3", d, device="cuda")
        v = q._variant
        pieces = v.rotation_pieces().cuda()
        cent = v.centroid_table("fp16").cuda()
        for n in (1, 63, 1000, 70001):  # against the fp32 path, outputs poisoned first
            x = torch.randn(n, d, device="cuda", dtype=torch.float16)
            packed, norms = q.compress(x)
            ref = torch_path.decompress_rows(packed, norms.view(-1), q.rotation, q.centroids, q.layout, torch.float32,
                                             False)
            shipped = q.decompress(packed, norms)
            for form in FORMS:
                out = torch.full((n, d), float("nan"), device="cuda", dtype=torch.float16)
                try:
                    launch(v, args_for(v, packed, norms.view(-1), pieces, cent, out), form)
                    torch.cuda.synchronize()
                except Exception as exc:  # noqa: BLE001
                    print(f"D{d} {form} rows {n}: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                    continue
                print(f"D{d} {form} rows {n:>6}: nan {out.isnan().sum().item()}, max |out - fp32| "
                      f"{(out.float() - ref).abs().max().item():.2e} (shipped {(shipped.float() - ref).abs().max().item():.2e})",
                      flush=True)
        n = 1 << 20
        x = torch.randn(n, d, device="cuda", dtype=torch.float16)
        packed, norms = q.compress(x)
        out = torch.empty(n, d, device="cuda", dtype=torch.float16)
        nbytes = bench.op_bytes("decompress", d, q.packed_dim, n, 2)
        calls = {}
        for label, first in (("triton", 1 << 40), ("shipped ws (pointer loads)", 1 << 16)):
            calls[label] = (lambda first=first: (setattr(registry, "WS_DECOMPRESS_FROM", first),
                                                 q.decompress(packed, norms, out=out)))
        for form in FORMS:
            args = args_for(v, packed, norms.view(-1), pieces, cent, out)
            calls[f"planes {form}"] = lambda args=args, form=form: launch(v, args, form)
        times = {label: [] for label in calls}
        for _ in range(3):
            for label, call in calls.items():
                try:
                    call()
                    torch.cuda.synchronize()
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    for _ in range(10):
                        call()
                    end.record()
                    end.synchronize()
                    times[label].append(start.elapsed_time(end) * 100.0)
                except Exception as exc:  # noqa: BLE001
                    print(f"D{d} {label}: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
        registry.WS_DECOMPRESS_FROM = 1 << 16
        for label, ts in times.items():
            if ts:
                print(f"tq3 D{d} 1M {label:40s} " + " / ".join(f"{t:6.1f}" for t in ts)
                      + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["compile"]:
        compile_only()
    else:
        main()
