"""Experiment (not part of the package): tq3 compress at D=256 with two compute partitions of 8 warps each
taking turns at the tensor cores (Gluon warp specialization), as WS_COMPRESS does for tq4 and tq2
(ws_compress_groups_d256.py), against the shipped Triton kernel.

tq3's compress takes the coordinate-order form: one product with the transposed rotation, its columns in
lane-group order (layout.PackLayout.lane_group_columns), so that each thread holds the 8 codes of its
groups; the fp32 search (the module's _signed_code), each group's 24-bit word as a weighted sum of its
codes, and four groups' words stored as three 4-byte words, as the Triton kernel does. Here: the rows by
TMA (a one-warp loader, one buffer a compute partition), the norm from shared memory, the product of the
rows as they are, scaled by 1 / (norm + eps), each warpgroup half of the columns (its groups whole), the
partitions alternating at the tensor cores by two mbarriers. Bytes and norms should equal the shipped
kernel's at 1M rows (the same product and search; the norm summed in another order may move a code).

Usage (CUDA machine of compute capability 9, repo root):
PYTHONPATH=$PWD python3 benchmarks/experiments/ws_compress_tq3_d256.py
`... ws_compress_tq3_d256.py compile [PREFIX]` compiles for sm_90 without a GPU and prints resource usage.
"""
import sys

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, tma, warpgroup_mma

from kernelgen import registry

MODULE = registry.load_variant("tq3", 256).module
_signed_code = MODULE._signed_code  # the fp32 search (a @triton.jit function: Gluon calls it)
_ws_load = registry.load_variant("tq4", 256).module._ws_load  # a TMA loader partition (any row descriptor)
NORM_EPS = MODULE.NORM_EPS.value


@gluon.jit
def _tq3_blocks(ring, ready, empty, rot, rot_bar, turn, words_ptr, norms_ptr, n_rows, n_blocks,
                EPS: gl.constexpr, PART: gl.constexpr):
    BM: gl.constexpr = ring.type.shape[1]
    D: gl.constexpr = ring.type.shape[2]
    QUADS: gl.constexpr = D // 32  # four groups of 8 codes (12 bytes, three words) a quad
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 2], instr_shape=[16, D // 2, 16])
    rows_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [8, 1], [1, 0])
    pid = gl.program_id(0)
    programs = gl.num_programs(0)
    zero = gl.zeros((BM, D), gl.float32, mma)
    c = gl.arange(0, D, layout=gl.SliceLayout(0, mma))
    slot = 2 * ((c // 8) % 4) + c % 2
    scale = gl.expand_dims((1 << (3 * (7 - slot))).to(gl.float32), 0)
    mbarrier.wait(rot_bar, 0)
    for i in range(PART, gl.cdiv(n_blocks - pid, programs), 2):
        first = (pid + i * programs) * BM
        mbarrier.wait(ready.index(PART), (i // 2) & 1)
        x_smem = ring.index(PART)
        sum_sq = gl.zeros((BM,), gl.float32, gl.SliceLayout(1, rows_layout))
        for k in gl.static_range(D // 64):
            x = x_smem.slice(k * 64, 64, dim=1).load(rows_layout).to(gl.float32)
            sum_sq += gl.sum(x * x, axis=1)
        norm = gl.sqrt(sum_sq)
        rows = first + gl.arange(0, BM, layout=gl.SliceLayout(1, rows_layout))
        gl.store(norms_ptr + rows, norm, mask=rows < n_rows)
        mbarrier.wait(turn.index(PART), ((i // 2) & 1) ^ (1 - PART))
        acc = warpgroup_mma(x_smem, rot, zero, use_acc=False)
        mbarrier.arrive(turn.index(1 - PART), count=1)
        gl.thread_barrier()
        fence_async_shared()
        mbarrier.arrive(empty.index(PART), count=1)
        y = acc * gl.expand_dims(gl.convert_layout(1.0 / (norm + EPS), gl.SliceLayout(1, mma)), 1)
        codes = (_signed_code(y) * scale).reshape([BM, 8, 4, 4, 2])  # [row, a, b, q, e]
        word = gl.sum(gl.sum(codes, axis=4), axis=2).permute([0, 2, 1]).reshape([BM, D // 8])  # group 8q + a
        word = (word + 8388607.5).to(gl.int32)
        g02, g13 = word.reshape([BM, QUADS, 2, 2]).split()  # [row, quad, s, t]: group 4 quad + 2s + t
        g0, g2 = g02.split()
        g1, g3 = g13.split()
        p0 = (g0 >> 16) | (g0 & 0xFF00) | ((g0 << 16) & 0xFF0000) | ((g1 >> 16) << 24)
        p1 = ((g1 >> 8) & 0xFF) | ((g1 << 8) & 0xFF00) | (g2 & 0xFF0000) | (((g2 >> 8) & 0xFF) << 24)
        p2 = (g2 & 0xFF) | ((g3 >> 8) & 0xFF00) | ((g3 << 8) & 0xFF0000) | (g3 << 24)
        out_layout: gl.constexpr = p0.type.layout
        out_rows = first + gl.arange(0, BM, layout=gl.SliceLayout(1, out_layout))
        quads = gl.arange(0, QUADS, layout=gl.SliceLayout(0, out_layout))
        out = words_ptr + gl.expand_dims(out_rows.to(gl.int64) * (QUADS * 3), 1) + gl.expand_dims(quads * 3, 0)
        ok = gl.expand_dims(out_rows < n_rows, 1)
        gl.store(out, p0, mask=ok)
        gl.store(out + 1, p1, mask=ok)
        gl.store(out + 2, p2, mask=ok)


@gluon.jit
def ws_compress_tq3(x_desc, rot_desc, words_ptr, norms_ptr, n_rows, EPS: gl.constexpr, WORKER_REGS: gl.constexpr):
    """x_desc: (n, 256) fp16, block 64 x 256; rot_desc: the transposed rotation in lane-group order (256, 256)
    fp16, one block; words: (n, 24) int32 (the packed rows); norms: (n,) fp32. num_warps=8."""
    BM: gl.constexpr = x_desc.block_type.shape[0]
    D: gl.constexpr = x_desc.block_type.shape[1]
    rot = gl.allocate_shared_memory(gl.float16, [D, D], rot_desc.layout)
    ring = gl.allocate_shared_memory(gl.float16, [2, BM, D], x_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    turn = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    rot_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    for s in gl.static_range(2):
        mbarrier.init(ready.index(s), count=1)
        mbarrier.init(empty.index(s), count=1)
        mbarrier.init(turn.index(s), count=1)
    mbarrier.init(rot_bar, count=1)
    mbarrier.expect(rot_bar, rot_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(rot_desc, [0, 0], rot_bar, rot)
    n_blocks = gl.cdiv(n_rows, BM)
    gl.warp_specialize([
        (_tq3_blocks, (ring, ready, empty, rot, rot_bar, turn, words_ptr, norms_ptr, n_rows, n_blocks, EPS, 0)),
        (_ws_load, (x_desc, ring, ready, empty, n_blocks)),
        (_tq3_blocks, (ring, ready, empty, rot, rot_bar, turn, words_ptr, norms_ptr, n_rows, n_blocks, EPS, 1)),
    ], [1, 8], [24, WORKER_REGS])


FORMS = [112, 104, 120]  # WORKER_REGS


def descriptors(x, rot):
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    def desc(t, box):
        return TensorDescriptor(t, list(t.shape), [t.shape[1], 1], box,
                                gl.NVMMASharedLayout.get_default_for(box, gl.float16))
    return desc(x, [64, 256]), desc(rot, [256, 256])


def make_call(x, rot, packed, norms, regs):
    x_desc, rot_desc = descriptors(x, rot)
    n = x.shape[0]
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    grid = (min(sms, -(-n // 64)),)
    words, flat_norms = packed.view(torch.int32), norms.view(-1)

    def call():
        ws_compress_tq3[grid](x_desc, rot_desc, words, flat_norms, n, NORM_EPS, regs, num_warps=8)
    call._keep = (rot,)
    return call


def compile_only():
    import os
    import subprocess
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.runtime.jit import mangle_type

    descs = descriptors(torch.zeros(128, 256, dtype=torch.float16), torch.zeros(256, 256, dtype=torch.float16))
    names = list(ws_compress_tq3.arg_names)
    tool = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")
    for regs in FORMS:
        signature = {"x_desc": mangle_type(descs[0]), "rot_desc": mangle_type(descs[1]), "words_ptr": "*i32",
                     "norms_ptr": "*fp32", "n_rows": "i32", "EPS": "constexpr", "WORKER_REGS": "constexpr"}
        src = GluonASTSource(fn=ws_compress_tq3, signature=signature,
                             constexprs={(names.index("EPS"),): NORM_EPS, (names.index("WORKER_REGS"),): regs},
                             attrs={(2,): [["tt.divisibility", 16]], (3,): [["tt.divisibility", 16]]})
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 8})
        with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
            f.write(k.asm["cubin"])
            f.flush()
            usage = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True).stdout
            sass = subprocess.run([tool, "-sass", f.name], capture_output=True, text=True).stdout
        line = next((ln.strip() for ln in usage.splitlines() if "REG:" in ln), "")
        print(f"WORKER_REGS {regs}: shared {k.metadata.shared}; {line}; spill instructions "
              f"{sum(1 for ln in sass.splitlines() if 'STL' in ln or 'LDL' in ln)}", flush=True)
        if len(sys.argv) > 2:
            open(f"{sys.argv[2]}-{regs}.sass", "w").write(sass)
            open(f"{sys.argv[2]}-{regs}.ttgir", "w").write(k.asm["ttgir"])


def main():
    import kernelgen
    from kernelgen import bench, torch_path

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    q = kernelgen.quantizer("tq3", 256, device="cuda")
    rot = q._compress_rotation[torch.float16]
    assert rot.shape == (256, 256) and rot.dtype == torch.float16
    for n in (1, 63, 1000, 70001, 1 << 20):
        x = torch.randn(n, 256, device="cuda", dtype=torch.float16)
        x[:1] = 0
        ref_packed, ref_norms = q.compress(x)
        fp32_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
        for regs in FORMS:
            packed = torch.full((n, q.packed_dim), 0xA5, device="cuda", dtype=torch.uint8)
            norms = torch.full((n, 1), float("nan"), device="cuda")
            try:
                make_call(x, rot, packed, norms, regs)()
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001
                print(f"regs {regs}: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
                continue
            print(f"rows {n:>8} regs {regs}: bytes equal shipped {torch.equal(packed, ref_packed)} (differing "
                  f"{(packed != ref_packed).sum().item()}), norms max rel "
                  f"{((norms - ref_norms).abs() / ref_norms.clamp_min(1e-30)).max().item():.2e}, NaN left "
                  f"{bool(norms.isnan().any())}; codes = fp32 path {bench.code_agreement(packed, fp32_packed, q.layout):.5f}"
                  f" (shipped {bench.code_agreement(ref_packed, fp32_packed, q.layout):.5f})", flush=True)
    n = 1 << 20
    x = torch.randn(n, 256, device="cuda", dtype=torch.float16)
    nbytes = bench.op_bytes("compress", 256, q.packed_dim, n, 2)
    packed = torch.empty(n, q.packed_dim, device="cuda", dtype=torch.uint8)
    norms = torch.empty(n, 1, device="cuda")
    calls = {"shipped": lambda: q.compress(x, out=(packed, norms))}
    for regs in FORMS:
        calls[f"ws regs {regs}"] = make_call(x, rot, torch.empty_like(packed), torch.empty_like(norms), regs)
    times = {label: [] for label in calls}
    for _ in range(3):
        for label, call in calls.items():
            try:
                times[label].append(bench.graph_time_us([call], rounds=1))
            except Exception as exc:  # noqa: BLE001
                print(f"{label}: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
    for label, ts in times.items():
        if ts:
            print(f"tq3 D256 1M compress fp16 {label:14s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    compile_only() if sys.argv[1:2] == ["compile"] else main()
