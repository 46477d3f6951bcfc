"""Experiment (not part of the package): tq4 compress at D=256 with two compute partitions of 8 warps each
(Gluon warp specialization), each partition its own row blocks, so that one partition's product runs on
the tensor cores while the other searches.

Why: the shipped kernel (Triton, one program an SM) waits for each product as it is issued, every warp in
lockstep; Nsight Compute put its tensor pipe at 39.7% and its issue slots at 43.9% of the cycles (together
83.6%: they seldom overlap; h100-ncu-compress-d256.txt). Earlier overlap tries kept 8 warps in all and so
had half of them, or one instruction stream holding two blocks, do the search (ws_d256.py: two 4-warp
partitions, 414.1 against 352.4 µs; gluon_compress_d256.py: 376.3 against 363.3). Here each partition has
as many warps as the shipped program (two warpgroups, each 64 rows x 128 of the 256 joined columns, 64 fp32
accumulator registers a thread), so the search keeps its two warps a scheduler while the other partition's
product runs: 16 compute warps and a one-warp TMA loader an SM.

Per block of 64 rows (partition PART takes blocks PART, PART + 2, ... of its program): the rows by TMA
(the loader fills a ring of 2 buffers, one a partition); the norm from shared memory (each warp 8 rows);
one product of the raw fp16 rows with the joined rotation (column 2n + j: slot j's column n, as the
shipped kernel's `joined`), scaled by 1 / (norm + eps); the slots split off the accumulator; the module's
fp16 byte search (BYTE_SEARCH_PTX); the bytes through shared memory by a TMA store. Bytes and norms should
equal the shipped kernel's (the same product, scale and search).

PINGPONG: the partitions take turns at the tensor cores (each waits for the other's product before issuing
its own, by two mbarriers), as FlashAttention-3's two consumer warpgroups do; without it they run as the
scheduler lets them.

Usage (CUDA machine of compute capability 9, repo root):
PYTHONPATH=$PWD python3 benchmarks/experiments/ws_compress_groups_d256.py
`... ws_compress_groups_d256.py compile` compiles the forms for sm_90 without a GPU and prints registers,
spills and shared memory.
"""
import re
import sys

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, tma, warpgroup_mma

from kernelgen import registry

MODULE = registry.load_variant("tq4", 256).module
_ws_load = MODULE._ws_load  # the loader partition of the module's Hopper decompress (any row descriptor)
NORM_EPS = MODULE.NORM_EPS.value


def search_ptx(module) -> tuple[str, str]:
    """The generated module's fp16 byte search (PTX text and constraints), read from its source."""
    source = open(module.__file__).read()
    constraints = re.search(r'inline_asm_elementwise\(BYTE_SEARCH_PTX, "([^"]+)"', source).group(1)
    return module.BYTE_SEARCH_PTX.value, constraints


@gluon.jit
def _compress_blocks(ring, ready, empty, w, w_bar, turn, out_smem, packed_desc, norms_ptr, n_rows, n_blocks,
                     SEARCH_PTX: gl.constexpr, CONSTRAINTS: gl.constexpr, EPS: gl.constexpr, PINGPONG: gl.constexpr,
                     PART: gl.constexpr):
    """Compute partition PART of 2 (8 warps): blocks PART, PART + 2, ... of this program."""
    S: gl.constexpr = ring.type.shape[0]
    BM: gl.constexpr = ring.type.shape[1]
    D: gl.constexpr = ring.type.shape[2]
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 2], instr_shape=[16, D // 2, 16])
    rows_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [8, 1], [1, 0])
    pid = gl.program_id(0)
    programs = gl.num_programs(0)
    count = gl.cdiv(n_blocks - pid, programs)
    zero = gl.zeros((BM, D), gl.float32, mma)
    mbarrier.wait(w_bar, 0)
    for i in range(PART, count, 2):
        s = i % S
        k = i // 2  # this partition's block count so far
        first = (pid + i * programs) * BM
        mbarrier.wait(ready.index(s), (i // S) & 1)
        x_smem = ring.index(s)
        sum_sq = gl.zeros((BM,), gl.float32, gl.SliceLayout(1, rows_layout))
        for c in gl.static_range(D // 64):  # 64 columns at a time (fewer registers live)
            x = x_smem.slice(c * 64, 64, dim=1).load(rows_layout).to(gl.float32)
            sum_sq += gl.sum(x * x, axis=1)
        norm = gl.sqrt(sum_sq)
        rows = first + gl.arange(0, BM, layout=gl.SliceLayout(1, rows_layout))
        gl.store(norms_ptr + rows, norm, mask=rows < n_rows)
        if PINGPONG:  # partition 0 first, then turns
            mbarrier.wait(turn.index(PART), (k & 1) ^ (1 - PART))
        acc = warpgroup_mma(x_smem, w, zero, use_acc=False)
        if PINGPONG:
            mbarrier.arrive(turn.index(1 - PART), count=1)
        gl.thread_barrier()  # both warpgroups' products and the norm have read the buffer
        fence_async_shared()
        mbarrier.arrive(empty.index(s), count=1)
        inv = gl.convert_layout(1.0 / (norm + EPS), gl.SliceLayout(1, mma))
        y = acc * gl.expand_dims(inv, 1)
        y0, y1 = y.reshape([BM, D // 2, 2]).split()
        word = gl.inline_asm_elementwise(SEARCH_PTX, CONSTRAINTS, [y0.to(gl.float16), y1.to(gl.float16)],
                                         dtype=gl.int16, is_pure=True, pack=2)
        tma.store_wait(0)  # the previous block's bytes have left out_smem
        gl.thread_barrier()
        out_smem.store((word & 0xFF).to(gl.uint8))
        fence_async_shared()
        gl.thread_barrier()
        tma.async_copy_shared_to_global(packed_desc, [first, 0], out_smem)
    tma.store_wait(0)


@gluon.jit
def ws_compress(x_desc, w_desc, packed_desc, norms_ptr, n_rows, SEARCH_PTX: gl.constexpr, CONSTRAINTS: gl.constexpr,
                EPS: gl.constexpr, PINGPONG: gl.constexpr, WORKER_REGS: gl.constexpr):
    """x_desc: (n, 256) fp16 rows, block 64 x 256; w_desc: the joined rotation (256, 256) fp16, one block;
    packed_desc: (n, 128) uint8, block 64 x 128; norms: (n,) fp32. Launched with num_warps=8."""
    BM: gl.constexpr = x_desc.block_type.shape[0]
    D: gl.constexpr = x_desc.block_type.shape[1]
    G: gl.constexpr = packed_desc.block_type.shape[1]
    S: gl.constexpr = 2
    w = gl.allocate_shared_memory(gl.float16, [D, D], w_desc.layout)
    ring = gl.allocate_shared_memory(gl.float16, [S, BM, D], x_desc.layout)
    outs = gl.allocate_shared_memory(gl.uint8, [2, BM, G], packed_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [S, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [S, 1], mbarrier.MBarrierLayout())
    turn = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    w_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    for s in gl.static_range(S):
        mbarrier.init(ready.index(s), count=1)
        mbarrier.init(empty.index(s), count=1)
    for p in gl.static_range(2):
        mbarrier.init(turn.index(p), count=1)
    mbarrier.init(w_bar, count=1)
    mbarrier.expect(w_bar, w_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(w_desc, [0, 0], w_bar, w)
    n_blocks = gl.cdiv(n_rows, BM)
    gl.warp_specialize([
        (_compress_blocks, (ring, ready, empty, w, w_bar, turn, outs.index(0), packed_desc, norms_ptr, n_rows, n_blocks,
                            SEARCH_PTX, CONSTRAINTS, EPS, PINGPONG, 0)),
        (_ws_load, (x_desc, ring, ready, empty, n_blocks)),
        (_compress_blocks, (ring, ready, empty, w, w_bar, turn, outs.index(1), packed_desc, norms_ptr, n_rows, n_blocks,
                            SEARCH_PTX, CONSTRAINTS, EPS, PINGPONG, 1)),
    ], [1, 8], [24, WORKER_REGS])


def joined_rotation(slots: torch.Tensor) -> torch.Tensor:
    """(256, 256): column 2n + j is slot j's column n (the shipped kernel's `joined`)."""
    return torch.stack([slots[0], slots[1]], dim=-1).reshape(slots.shape[1], 2 * slots.shape[2]).contiguous()


def descriptors(x, joined, packed):
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    def desc(t, box, dtype):
        return TensorDescriptor(t, list(t.shape), [t.shape[1], 1], box, gl.NVMMASharedLayout.get_default_for(box, dtype))
    return desc(x, [64, 256], gl.float16), desc(joined, [256, 256], gl.float16), desc(packed, [64, 128], gl.uint8)


FORMS = [(True, 120), (False, 120), (True, 112)]  # (PINGPONG, WORKER_REGS)


def make_call(x, joined, packed, norms, ptx, form):
    pingpong, regs = form
    x_desc, w_desc, p_desc = descriptors(x, joined, packed)
    n = x.shape[0]
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    grid = (min(sms, -(-n // 64)),)
    flat_norms = norms.view(-1)

    def call():
        ws_compress[grid](x_desc, w_desc, p_desc, flat_norms, n, ptx[0], ptx[1], NORM_EPS, pingpong, regs, num_warps=8)
    call._keep = (joined,)
    return call


def compile_only():
    """Compile each form for sm_90 on a machine without a GPU; print registers, spills, shared memory."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.runtime.jit import mangle_type

    ptx = search_ptx(MODULE)
    descs = descriptors(torch.zeros(128, 256, dtype=torch.float16), torch.zeros(256, 256, dtype=torch.float16),
                        torch.zeros(128, 128, dtype=torch.uint8))
    names = list(ws_compress.arg_names)
    for pingpong, regs in FORMS:
        constexprs = {"SEARCH_PTX": ptx[0], "CONSTRAINTS": ptx[1], "EPS": NORM_EPS, "PINGPONG": pingpong,
                      "WORKER_REGS": regs}
        signature = {"x_desc": mangle_type(descs[0]), "w_desc": mangle_type(descs[1]),
                     "packed_desc": mangle_type(descs[2]), "norms_ptr": "*fp32", "n_rows": "i32",
                     **{name: "constexpr" for name in constexprs}}
        src = GluonASTSource(fn=ws_compress, signature=signature,
                             constexprs={(names.index(k),): v for k, v in constexprs.items()},
                             attrs={(names.index("norms_ptr"),): [["tt.divisibility", 16]]})
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 8})
        print(f"form {(pingpong, regs)}: shared {k.metadata.shared}; {resource_usage(k)}", flush=True)
        if len(sys.argv) > 2:  # a path prefix: the TTGIR and SASS of each form
            open(f"{sys.argv[2]}-{pingpong}-{regs}.ttgir", "w").write(k.asm["ttgir"])
            open(f"{sys.argv[2]}-{pingpong}-{regs}.sass", "w").write(sass_text(k))


def _cuobjdump(k, flag: str) -> str:
    import os
    import subprocess
    import tempfile

    import triton
    tool = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(k.asm["cubin"])
        f.flush()
        return subprocess.run([tool, flag, f.name], capture_output=True, text=True).stdout


def resource_usage(k) -> str:
    """ptxas' registers, stack and spill figures of the compiled kernel."""
    line = next((ln for ln in _cuobjdump(k, "-res-usage").splitlines() if "REG:" in ln), "")
    return line.strip()


def sass_text(k) -> str:
    return _cuobjdump(k, "-sass")


def main():
    import kernelgen
    from kernelgen import bench, torch_path

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    q = kernelgen.quantizer("tq4", 256, device="cuda")
    ptx = search_ptx(MODULE)
    joined = joined_rotation(q._compress_rotation[torch.float16])
    for n in (1, 63, 1000, 70001, 1 << 20):
        x = torch.randn(n, 256, device="cuda", dtype=torch.float16)
        x[:1] = 0
        ref_packed, ref_norms = q.compress(x)
        fp32_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
        for form in FORMS:
            packed = torch.full((n, 128), 0xA5, device="cuda", dtype=torch.uint8)
            norms = torch.full((n, 1), float("nan"), device="cuda")
            try:
                make_call(x, joined, packed, norms, ptx, form)()
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001
                print(f"form {form}: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
                continue
            print(f"rows {n:>8} form {form}: bytes equal shipped {torch.equal(packed, ref_packed)} (differing "
                  f"{(packed != ref_packed).sum().item()}), norms equal {torch.equal(norms, ref_norms)} (max rel "
                  f"{((norms - ref_norms).abs() / ref_norms.clamp_min(1e-30)).max().item():.2e}); codes = fp32 path "
                  f"{bench.code_agreement(packed, fp32_packed, q.layout):.5f} (shipped "
                  f"{bench.code_agreement(ref_packed, fp32_packed, q.layout):.5f})", flush=True)
    n = 1 << 20
    x = torch.randn(n, 256, device="cuda", dtype=torch.float16)
    nbytes = bench.op_bytes("compress", 256, 128, n, 2)
    calls = {}
    packed = torch.empty(n, 128, device="cuda", dtype=torch.uint8)
    norms = torch.empty(n, 1, device="cuda")
    calls["shipped"] = lambda: q.compress(x, out=(packed, norms))
    for form in FORMS:
        calls[f"ws {form}"] = make_call(x, joined, torch.empty_like(packed), torch.empty_like(norms), ptx, form)
    times = {label: [] for label in calls}
    for _ in range(3):
        for label, call in calls.items():
            try:
                times[label].append(bench.graph_time_us([call], rounds=1))
            except Exception as exc:  # noqa: BLE001
                print(f"{label}: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
    for label, ts in times.items():
        if ts:
            print(f"tq4 D256 1M compress fp16 {label:22s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    compile_only() if sys.argv[1:2] == ["compile"] else main()
