"""Experiment (not part of the package): tq4 and tq2 compress at D=256 (rows padded to 256: today the
one-step form with the whole rotation in shared memory and 16 row blocks a program, pointer loads) on the
TMA loop of the D<=128 kernels: the rows by TMA in a persistent loop Triton pipelines, the product on the
raw fp16 rows scaled by 1/(norm + eps) after (raw_product_compress.py), the slots (128 KB of fp16) in
shared memory once a program, one program an SM. Configs: BLOCK_ROWS 32/64 x warps 4/8 x stages 2/3 (those
that fit shared memory). Against the shipped module as the registry launches it, 1M fp16 rows, three
rounds each, timed as `kernelgen bench` times (bench.graph_time_us, one round each); bytes against the
shipped kernel's, codes against the fp32 path.
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tma_compress_d256.py
"""
import itertools
import os

os.environ["KERNELGEN_AUTOTUNE"] = "0"

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import kernelgen  # noqa: E402
from kernelgen import bench, torch_path  # noqa: E402

ROWS = 1 << 20
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
QUANTIZERS = {spec: kernelgen.quantizer(spec, 256, device=DEVICE) for spec in ("tq4", "tq2")}
_tq4_bytes = QUANTIZERS["tq4"]._kernels["compress"].variant.module._byte_groups_fp16
_tq2_bytes = QUANTIZERS["tq2"]._kernels["compress"].variant.module._byte_groups_fp16
NORM_EPS = tl.constexpr(1e-10)


@triton.jit
def compress_tma_d256(x_desc, slots_ptr, packed_ptr, norms_ptr, n_rows, BLOCK_ROWS: tl.constexpr,
                      G: tl.constexpr, INLINE_PTX: tl.constexpr, TMA_STAGES: tl.constexpr):
    """G slots of 256 x (256 / G) fp16 (tq4: G=2, tq2: G=4), the packed row 256 / G bytes."""
    SLOT: tl.constexpr = 256 // G
    k = tl.arange(0, 256)[:, None]
    n = tl.arange(0, SLOT)[None, :]
    w = slots_ptr + k * SLOT + n
    w0 = tl.load(w)
    w1 = tl.load(w + 256 * SLOT)
    if G == 4:
        w2 = tl.load(w + 2 * 256 * SLOT)
        w3 = tl.load(w + 3 * 256 * SLOT)
    for block in tl.range(tl.program_id(0), tl.cdiv(n_rows, BLOCK_ROWS), tl.num_programs(0), num_stages=TMA_STAGES):
        rows = block * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        row_ok = rows < n_rows
        x = x_desc.load([block * BLOCK_ROWS, 0])
        xf = x.to(tl.float32)
        norm = tl.sqrt(tl.sum(xf * xf, axis=1))
        inv = (1.0 / (norm + NORM_EPS))[:, None]
        y0 = tl.dot(x, w0) * inv
        y1 = tl.dot(x, w1) * inv
        tl.store(norms_ptr + rows, norm, mask=row_ok)
        if G == 4:
            y2 = tl.dot(x, w2) * inv
            y3 = tl.dot(x, w3) * inv
            word = _tq2_bytes(y0, y1, y2, y3, INLINE_PTX)
        else:
            word = _tq4_bytes(y0, y1, INLINE_PTX)
        groups = tl.arange(0, SLOT)
        out = packed_ptr + rows[:, None].to(tl.int64) * SLOT + groups[None, :]
        tl.store(out, (word & 0xFF).to(tl.uint8), mask=row_ok[:, None])


def main():
    from triton.tools.tensor_descriptor import TensorDescriptor

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    for spec, q in QUANTIZERS.items():
        g = q.layout.codes_per_group
        x = torch.randn(ROWS, 256, device="cuda", dtype=torch.float16)
        x[:3] = 0
        ref_packed, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
        nbytes = bench.op_bytes("compress", 256, q.packed_dim, ROWS, 2)
        shipped = q.compress(x)
        slots = q._compress_rotation[torch.float16]
        assert slots.shape == (g, 256, 256 // g)
        calls = {"shipped": lambda q=q, x=x, shipped=shipped: q.compress(x, out=shipped)}
        for block, warps, stages in itertools.product((32, 64), (4, 8), (2, 3)):
            packed = torch.full((ROWS, q.packed_dim), 0xAB, dtype=torch.uint8, device="cuda")
            norms = torch.full((ROWS,), float("nan"), device="cuda")
            desc = TensorDescriptor(x, [ROWS, 256], [256, 1], [block, 256])
            grid = (min(ROWS // block, sms),)

            def call(packed=packed, norms=norms, desc=desc, grid=grid, block=block, warps=warps, stages=stages):
                compress_tma_d256[grid](desc, slots, packed, norms, ROWS, BLOCK_ROWS=block, G=g, INLINE_PTX=True,
                                        TMA_STAGES=stages, num_warps=warps, num_stages=stages)
            label = f"B{block} w{warps} s{stages}"
            try:
                call()
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001  (shared memory)
                print(f"{spec} {label}: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
                continue
            print(f"{spec} {label}: codes = shipped {bench.code_agreement(packed, shipped[0], q.layout):.5f}, "
                  f"= fp32 path {bench.code_agreement(packed, ref_packed, q.layout):.5f}; norms = shipped "
                  f"{torch.allclose(norms, shipped[1].view(-1), rtol=1e-6, atol=0)}", flush=True)
            calls[label] = call
        print(f"{spec} shipped codes = fp32 path {bench.code_agreement(shipped[0], ref_packed, q.layout):.5f}",
              flush=True)
        times = {label: [] for label in calls}
        for _ in range(3):
            for label, call in calls.items():
                times[label].append(bench.graph_time_us([call], rounds=1))
        for label, ts in times.items():
            print(f"{spec} D256 {label:11s} " + " / ".join(f"{t:6.1f}" for t in ts)
                  + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
