"""Experiment (not part of the package): the Hopper compress (the template's WS_COMPRESS, two 8-warp partitions
taking turns at the tensor cores) at D=128, where no module has it: tq4 D=128, fp16 and bf16 rows, against
the shipped Triton kernel (the TMA loop from 2^20 rows, 3 programs an SM for fp16 rows, 2 for bf16).

The kernel is the generated tq4 D=256 module's WS_COMPRESS source, copied here by the script's author with
the D=128 module's constants (its codebook's fp16 search PTX, DIM_PAD 128, SLOT_PAD 64); the rotation in the
joined order (PackLayout.joined_columns) from the D=128 variant. Each warpgroup's product is then 64x64 of
the 128 joined columns. Shared memory: the 32 KB rotation, two 16 KB row buffers, two 4 KB byte buffers.

Usage (CUDA machine of compute capability 9, repo root):
PYTHONPATH=$PWD python3 benchmarks/experiments/ws_compress_d128.py
"""
import torch
import triton.language as tl
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, tma, warpgroup_mma

from kernelgen import registry

VARIANT = registry.load_variant("tq4", 128)
MODULE = VARIANT.module
DIM_PAD = tl.constexpr(128)
SLOT_PAD = tl.constexpr(64)
PACKED_DIM = tl.constexpr(64)
NORM_EPS = MODULE.NORM_EPS
BYTE_SEARCH_PTX = MODULE.BYTE_SEARCH_PTX
WS_BLOCK_ROWS = gl.constexpr(64)
WS_COMPRESS_WORKER_REGS = gl.constexpr(112)


@gluon.jit
def _ws_load(packed_desc, ring, ready, empty, n_blocks):
    """Loader partition (one warp): this program's row blocks (every num_programs-th from program_id) into
    the ring by TMA, zeros past the descriptor's rows and columns; a buffer is refilled once `empty` says it
    was read. Decompress's packed rows, and compress's fp16 rows (WS_COMPRESS)."""
    BM: gl.constexpr = packed_desc.block_type.shape[0]
    S: gl.constexpr = ring.type.shape[0]
    pid = gl.program_id(0)
    programs = gl.num_programs(0)
    for i in range(gl.cdiv(n_blocks - pid, programs)):
        s = i % S
        mbarrier.wait(empty.index(s), ((i // S) & 1) ^ 1)
        mbarrier.expect(ready.index(s), packed_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(packed_desc, [(pid + i * programs) * BM, 0], ready.index(s), ring.index(s))



@gluon.jit
def _ws_compress_blocks(ring, ready, empty, rotation, rotation_bar, turn, out_smem, packed_desc, norms_ptr, n_rows,
                        n_blocks, PART: gl.constexpr):
    """Compute partition PART of 2 (8 warps): blocks PART, PART + 2, ... of this program, in ring buffer PART.
    A block: the norm from the rows in shared memory (each warp 8 rows); bf16 rows then normalized there in
    place, as fp16 (fp16 may not hold them as they are; the Triton kernel's RAW_PRODUCT rule); after the
    other partition's product, one product with the rotation (each warpgroup half of its columns, fp32
    accumulation), of fp16 rows as they are, scaled by 1 / (norm + eps) after; then as the Triton kernel:
    the slots split off the
    accumulator, the fp16 byte search (BYTE_SEARCH_PTX); the bytes by TMA (rows past n_rows and bytes past
    PACKED_DIM are dropped by it)."""
    BM: gl.constexpr = ring.type.shape[1]
    D: gl.constexpr = ring.type.shape[2]
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 2], instr_shape=[16, D // 2, 16])
    rows_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [8, 1], [1, 0])
    pid = gl.program_id(0)
    programs = gl.num_programs(0)
    zero = gl.zeros((BM, D), gl.float32, mma)
    mbarrier.wait(rotation_bar, 0)
    for i in range(PART, gl.cdiv(n_blocks - pid, programs), 2):
        first = (pid + i * programs) * BM
        mbarrier.wait(ready.index(PART), (i // 2) & 1)
        x_smem = ring.index(PART)
        if ring.dtype == gl.bfloat16:
            # normalized first, as fp16 (the Triton kernel's rounding), in place: the block is read once, each
            # thread writing back the elements it read
            x = x_smem.load(rows_layout).to(gl.float32)
            norm = gl.sqrt(gl.sum(x * x, axis=1))
            inv = 1.0 / (norm + NORM_EPS)
            operand = x_smem._reinterpret(gl.float16, [BM, D], x_smem.layout)
            operand.store((x * gl.expand_dims(inv, 1)).to(gl.float16))
            fence_async_shared()  # these writes before the product reads them
            gl.thread_barrier()
        else:  # fp16: the rows as they are, the product scaled after
            sum_sq = gl.zeros((BM,), gl.float32, gl.SliceLayout(1, rows_layout))
            for k in gl.static_range(D // 64):  # 64 columns at a time (fewer registers live)
                x = x_smem.slice(k * 64, 64, dim=1).load(rows_layout).to(gl.float32)
                sum_sq += gl.sum(x * x, axis=1)
            norm = gl.sqrt(sum_sq)
            inv = 1.0 / (norm + NORM_EPS)
            operand = x_smem
        rows = first + gl.arange(0, BM, layout=gl.SliceLayout(1, rows_layout))
        gl.store(norms_ptr + rows, norm, mask=rows < n_rows)
        # partition 0 first, then each after the other's product (i // 2: this partition's blocks so far)
        mbarrier.wait(turn.index(PART), ((i // 2) & 1) ^ (1 - PART))
        acc = warpgroup_mma(operand, rotation, zero, use_acc=False)
        mbarrier.arrive(turn.index(1 - PART), count=1)
        gl.thread_barrier()  # both warpgroups' products and the norm have read the buffer
        fence_async_shared()  # those reads before the loader's next TMA write of it
        mbarrier.arrive(empty.index(PART), count=1)
        if ring.dtype == gl.bfloat16:
            y = acc
        else:
            y = acc * gl.expand_dims(gl.convert_layout(inv, gl.SliceLayout(1, mma)), 1)
        y0, y1 = y.reshape([BM, SLOT_PAD, 2]).split()  # a thread holds neighbouring columns: no data moves
        word = gl.inline_asm_elementwise(BYTE_SEARCH_PTX, "=r,r,r",
                                         [y0.to(gl.float16), y1.to(gl.float16)],
                                         dtype=gl.int16, is_pure=True, pack=2)
        tma.store_wait(0)  # the previous block's bytes have left out_smem
        gl.thread_barrier()
        out_smem.store((word & 0xFF).to(gl.uint8))
        fence_async_shared()
        gl.thread_barrier()
        tma.async_copy_shared_to_global(packed_desc, [first, 0], out_smem)
    tma.store_wait(0)


@gluon.jit
def ws_compress_d128(x_desc, rotation_desc, packed_desc, norms_ptr, n_rows):
    """compress of 16-bit rows for Hopper GPUs (see above): one program an SM (the grid at most one
    a block of WS_BLOCK_ROWS rows), 8 warps a compute partition (launched with num_warps=8). x_desc:
    (n_rows, 128) fp16 or bf16, block WS_BLOCK_ROWS x 128; rotation_desc: (128, 128) fp16, one
    block; packed_desc: (n_rows, 128) uint8, block WS_BLOCK_ROWS x 128; norms: (n_rows,) fp32."""
    BM: gl.constexpr = x_desc.block_type.shape[0]
    D: gl.constexpr = x_desc.block_type.shape[1]
    G: gl.constexpr = packed_desc.block_type.shape[1]
    gl.static_assert(BM == WS_BLOCK_ROWS and D == DIM_PAD and G == SLOT_PAD, "blocks of WS_BLOCK_ROWS padded rows")
    rotation = gl.allocate_shared_memory(gl.float16, [D, D], rotation_desc.layout)
    ring = gl.allocate_shared_memory(x_desc.dtype, [2, BM, D], x_desc.layout)  # a buffer a compute partition
    outs = gl.allocate_shared_memory(gl.uint8, [2, BM, G], packed_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    turn = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    rotation_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    for s in gl.static_range(2):
        mbarrier.init(ready.index(s), count=1)
        mbarrier.init(empty.index(s), count=1)
        mbarrier.init(turn.index(s), count=1)
    mbarrier.init(rotation_bar, count=1)
    mbarrier.expect(rotation_bar, rotation_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(rotation_desc, [0, 0], rotation_bar, rotation)
    n_blocks = gl.cdiv(n_rows, BM)
    gl.warp_specialize([
        (_ws_compress_blocks, (ring, ready, empty, rotation, rotation_bar, turn, outs.index(0), packed_desc, norms_ptr, n_rows,
                               n_blocks, 0)),
        (_ws_load, (x_desc, ring, ready, empty, n_blocks)),
        (_ws_compress_blocks, (ring, ready, empty, rotation, rotation_bar, turn, outs.index(1), packed_desc, norms_ptr, n_rows,
                               n_blocks, 1)),
    ], [1, 8], [24, WS_COMPRESS_WORKER_REGS])



def make_call(x, rotation, packed, norms):
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    def layout(box, dtype):
        return gl.NVMMASharedLayout.get_default_for(box, dtype)
    n = x.shape[0]
    gdt = gl.float16 if x.dtype == torch.float16 else gl.bfloat16
    x_desc = TensorDescriptor(x, [n, 128], [128, 1], [64, 128], layout([64, 128], gdt))
    r_desc = TensorDescriptor(rotation, [128, 128], [128, 1], [128, 128], layout([128, 128], gl.float16))
    p_desc = TensorDescriptor(packed, [n, 64], [64, 1], [64, 64], layout([64, 64], gl.uint8))
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    grid = (min(sms, -(-n // 64)),)
    flat = norms.view(-1)

    def call():
        ws_compress_d128[grid](x_desc, r_desc, p_desc, flat, n, num_warps=8)
    return call


def main():
    import kernelgen
    from kernelgen import bench, torch_path

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    q = kernelgen.quantizer("tq4", 128, device="cuda")
    rotation = VARIANT.hopper_compress_rotation().cuda()
    for dtype in (torch.float16, torch.bfloat16):
        for n in (1000, 70001, 1 << 20):
            x = torch.randn(n, 128, device="cuda", dtype=dtype)
            ref_packed, ref_norms = q.compress(x)
            fp32_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
            packed = torch.full((n, 64), 0xA5, device="cuda", dtype=torch.uint8)
            norms = torch.full((n, 1), float("nan"), device="cuda")
            make_call(x, rotation, packed, norms)()
            torch.cuda.synchronize()
            print(f"{str(dtype)[6:]} rows {n:>8}: bytes equal shipped {(packed == ref_packed).float().mean().item():.5f}, "
                  f"norms max rel {((norms - ref_norms).abs() / ref_norms.clamp_min(1e-30)).max().item():.1e}, NaN left "
                  f"{bool(norms.isnan().any())}; codes = fp32 path {bench.code_agreement(packed, fp32_packed, q.layout):.5f} "
                  f"(shipped {bench.code_agreement(ref_packed, fp32_packed, q.layout):.5f})", flush=True)
        n = 1 << 20
        x = torch.randn(n, 128, device="cuda", dtype=dtype)
        nbytes = bench.op_bytes("compress", 128, 64, n, 2)
        packed = torch.empty(n, 64, device="cuda", dtype=torch.uint8)
        norms = torch.empty(n, 1, device="cuda")
        calls = {"shipped": lambda: q.compress(x, out=(packed, norms)),
                 "hopper ws": make_call(x, rotation, torch.empty_like(packed), torch.empty_like(norms))}
        times = {label: [] for label in calls}
        for _ in range(3):
            for label, call in calls.items():
                times[label].append(bench.graph_time_us([call], rounds=1))
        for label, ts in times.items():
            print(f"tq4 D128 1M compress {str(dtype)[6:]:8s} {label:10s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
