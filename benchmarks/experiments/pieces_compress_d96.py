"""Experiment (not part of the package): tq4 D=96 compress without the padding to 128, on the TMA loop with
the product on the raw fp16 rows (the shipped form since raw_product_compress.py). The rows come through a
descriptor of 32-column blocks, three loads a block (columns 0, 32, 64); each slot's product is three
K=32 tl.dot steps over the slot's rotation pieces, so nothing past column 96 is multiplied. "k": the
slot's 64 columns kept (48 real), "kn": its columns cut into 32 + 16 too (the search and the stores then
touch only the 48 real groups). Against the shipped module as the registry launches it (3 programs an SM),
1M fp16 rows, B64 w4, 2 and 3 programs an SM, three rounds each, timed as `kernelgen bench` times
(bench.graph_time_us, one round each). Bytes compared with the shipped kernel's, codes with the fp32 path.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/pieces_compress_d96.py
"""
import os

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import kernelgen  # noqa: E402
from kernelgen import bench, registry, torch_path  # noqa: E402

ROWS = 1 << 20
Q = kernelgen.quantizer("tq4", 96, device="cuda" if torch.cuda.is_available() else "cpu")
_byte_groups_fp16 = Q._kernels["compress"].variant.module._byte_groups_fp16
NORM_EPS = tl.constexpr(1e-10)


@triton.jit
def _slot_piece(slots_ptr, slot: tl.constexpr, k0: tl.constexpr, n0: tl.constexpr, N: tl.constexpr):
    """slots[slot, k0:k0+32, n0:n0+N] of the (2, 128, 64) fp16 slots."""
    k = k0 + tl.arange(0, 32)[:, None]
    n = n0 + tl.arange(0, N)[None, :]
    return tl.load(slots_ptr + slot * 128 * 64 + k * 64 + n)


@triton.jit
def _store_groups(packed_ptr, rows, row_ok, word, g0: tl.constexpr, N: tl.constexpr):
    groups = g0 + tl.arange(0, N)
    ok = row_ok[:, None] & (groups < 48)[None, :]
    tl.store(packed_ptr + rows[:, None].to(tl.int64) * 48 + groups[None, :], (word & 0xFF).to(tl.uint8), mask=ok)


@triton.jit
def compress_pieces(x_desc, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr,
                    SPLIT_N: tl.constexpr, INLINE_PTX: tl.constexpr, TMA_STAGES: tl.constexpr):
    NA: tl.constexpr = 32 if SPLIT_N else 64
    w00 = _slot_piece(slots_ptr, 0, 0, 0, NA)
    w01 = _slot_piece(slots_ptr, 0, 32, 0, NA)
    w02 = _slot_piece(slots_ptr, 0, 64, 0, NA)
    w10 = _slot_piece(slots_ptr, 1, 0, 0, NA)
    w11 = _slot_piece(slots_ptr, 1, 32, 0, NA)
    w12 = _slot_piece(slots_ptr, 1, 64, 0, NA)
    if SPLIT_N:
        v00 = _slot_piece(slots_ptr, 0, 0, 32, 16)
        v01 = _slot_piece(slots_ptr, 0, 32, 32, 16)
        v02 = _slot_piece(slots_ptr, 0, 64, 32, 16)
        v10 = _slot_piece(slots_ptr, 1, 0, 32, 16)
        v11 = _slot_piece(slots_ptr, 1, 32, 32, 16)
        v12 = _slot_piece(slots_ptr, 1, 64, 32, 16)
    for block in tl.range(tl.program_id(0), tl.cdiv(n_rows, BLOCK_ROWS), tl.num_programs(0), num_stages=TMA_STAGES):
        rows = block * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        x0 = x_desc.load([block * BLOCK_ROWS, 0])
        x1 = x_desc.load([block * BLOCK_ROWS, 32])
        x2 = x_desc.load([block * BLOCK_ROWS, 64])
        f0 = x0.to(tl.float32)
        f1 = x1.to(tl.float32)
        f2 = x2.to(tl.float32)
        norm = tl.sqrt(tl.sum(f0 * f0, axis=1) + tl.sum(f1 * f1, axis=1) + tl.sum(f2 * f2, axis=1))
        inv = (1.0 / (norm + NORM_EPS))[:, None]
        y0 = tl.dot(x2, w02, acc=tl.dot(x1, w01, acc=tl.dot(x0, w00))) * inv
        y1 = tl.dot(x2, w12, acc=tl.dot(x1, w11, acc=tl.dot(x0, w10))) * inv
        tl.store(norms_ptr + rows, norm, mask=row_ok)
        _store_groups(packed_ptr, rows, row_ok, _byte_groups_fp16(y0, y1, INLINE_PTX), 0, NA)
        if SPLIT_N:
            z0 = tl.dot(x2, v02, acc=tl.dot(x1, v01, acc=tl.dot(x0, v00))) * inv
            z1 = tl.dot(x2, v12, acc=tl.dot(x1, v11, acc=tl.dot(x0, v10))) * inv
            _store_groups(packed_ptr, rows, row_ok, _byte_groups_fp16(z0, z1, INLINE_PTX), 32, 16)


def main():
    from triton.tools.tensor_descriptor import TensorDescriptor

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    q, sms = Q, torch.cuda.get_device_properties(0).multi_processor_count
    x = torch.randn(ROWS, 96, device="cuda", dtype=torch.float16)
    x[:3] = 0
    ref_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
    nbytes = bench.op_bytes("compress", 96, q.packed_dim, ROWS, 2)
    shipped = q.compress(x)
    slots = q._compress_rotation[torch.float16]
    assert slots.shape == (2, 128, 64)
    calls = {"shipped": lambda: q.compress(x, out=shipped)}
    for split_n in (False, True):
        for per_sm in (2, 3):
            packed = torch.full((ROWS, 48), 0xAB, dtype=torch.uint8, device="cuda")
            norms = torch.full((ROWS,), float("nan"), device="cuda")
            desc = TensorDescriptor(x, [ROWS, 96], [96, 1], [64, 32])
            grid = (min(ROWS // 64, per_sm * sms),)

            def call(packed=packed, norms=norms, desc=desc, grid=grid, split_n=split_n):
                compress_pieces[grid](desc, slots, packed, norms, ROWS, BLOCK_ROWS=64, SPLIT_N=split_n,
                                      INLINE_PTX=True, TMA_STAGES=3, num_warps=4, num_stages=3)
            call()
            torch.cuda.synchronize()
            label = f"{'kn' if split_n else 'k'}-p{per_sm}"
            print(f"{label:8s} bytes = shipped {torch.equal(packed, shipped[0])}, codes = shipped "
                  f"{bench.code_agreement(packed, shipped[0], q.layout):.5f}, = fp32 path "
                  f"{bench.code_agreement(packed, ref_packed, q.layout):.5f}; norms = shipped "
                  f"{torch.allclose(norms, shipped[1].view(-1), rtol=1e-6, atol=0)}", flush=True)
            calls[label] = call
    print(f"shipped  codes = fp32 path {bench.code_agreement(shipped[0], ref_packed, q.layout):.5f}", flush=True)
    times = {label: [] for label in calls}
    for _ in range(3):
        for label, call in calls.items():
            times[label].append(bench.graph_time_us([call], rounds=1))
    for label, ts in times.items():
        print(f"tq4 D96 {label:8s} " + " / ".join(f"{t:6.1f}" for t in ts)
              + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
