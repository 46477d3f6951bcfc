"""Experiment (not part of the package): tq4 compress at D=256 on the TMA loop with one product of N=256
(the rotation transposed, columns in coordinate order, the slots split from the accumulator) instead of
one product a slot (N=128 each).

Why: one program an SM (the whole rotation in shared memory) and, with 8 warps at 64 rows a block,
Triton gives each warpgroup half of each slot's columns, so each block's rows are read from shared memory
by four products (two slots x two warpgroups): 128 KB of row reads a block besides the rotation's 128 KB.
One product of N=256 reads them twice (64 KB). Shared memory's bandwidth (128 bytes a clock an SM) then
bounds the products less. The slots come out of the accumulator by a reshape and a split: each thread holds
neighbouring columns, so no data moves. At D=128 one product gained nothing for tq4
(one_product_d128.py), but there two or three programs share an SM.

The kernel is this script's own copy of the shipped TMA loop (raw fp16 rows, the product scaled by
1 / (norm + eps) after, the generated module's fp16 search PTX), in both forms, against the shipped kernel
at its tuned config.

Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/one_product_d256.py
"""
import re

import torch
import triton
import triton.language as tl


@triton.jit
def compress_loop(x_desc, w_ptr, packed_ptr, norms_ptr, n_rows, BM: tl.constexpr, D: tl.constexpr,
                  ONE: tl.constexpr, STAGES: tl.constexpr, PTX: tl.constexpr, CONSTRAINTS: tl.constexpr):
    k = tl.arange(0, D)[:, None]
    if ONE:  # the transposed rotation, columns in coordinate order
        w = tl.load(w_ptr + k * D + tl.arange(0, D)[None, :])
    else:  # the slots, (2, D, D / 2)
        n = tl.arange(0, D // 2)[None, :]
        w0 = tl.load(w_ptr + k * (D // 2) + n)
        w1 = tl.load(w_ptr + D * (D // 2) + k * (D // 2) + n)
    for block in tl.range(tl.program_id(0), tl.cdiv(n_rows, BM), tl.num_programs(0), num_stages=STAGES):
        rows = block * BM + tl.arange(0, BM)
        x = x_desc.load([block * BM, 0])
        xf = x.to(tl.float32)
        norm = tl.sqrt(tl.sum(xf * xf, axis=1))
        inv = (1.0 / (norm + 1e-10))[:, None]
        if ONE:
            y = tl.dot(x, w) * inv
            y0, y1 = y.reshape(BM, D // 2, 2).split()
        else:
            y0 = tl.dot(x, w0) * inv
            y1 = tl.dot(x, w1) * inv
        tl.store(norms_ptr + rows, norm, mask=rows < n_rows)
        word = tl.inline_asm_elementwise(PTX, CONSTRAINTS, [y0.to(tl.float16), y1.to(tl.float16)], dtype=tl.int16,
                                         is_pure=True, pack=2)
        out = packed_ptr + rows[:, None].to(tl.int64) * (D // 2) + tl.arange(0, D // 2)[None, :]
        tl.store(out, (word & 0xFF).to(tl.uint8), mask=(rows < n_rows)[:, None])


def search_ptx(module):
    source = open(module.__file__).read()
    return module.BYTE_SEARCH_PTX.value, re.search(r'inline_asm_elementwise\(BYTE_SEARCH_PTX, "([^"]+)"', source).group(1)


# (one product, warps, rows a block, stages)
FORMS = [(False, 8, 64, 3), (True, 8, 64, 3), (True, 4, 64, 3), (True, 8, 64, 2)]


def main():
    from triton.tools.tensor_descriptor import TensorDescriptor

    import kernelgen
    from kernelgen import bench, torch_path

    torch.manual_seed(0)
    copy_gbps = bench.copy_bandwidth_gbps()
    print(f"device {torch.cuda.get_device_name()}; copy {copy_gbps:.0f} GB/s", flush=True)
    d = 256
    q = kernelgen.quantizer("tq4", d, device="cuda")
    ptx = search_ptx(q._variant.module)
    slots = q._compress_rotation[torch.float16].contiguous()
    transposed = q.rotation.T.contiguous().half()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    n = 1 << 20
    x = torch.randn(n, d, device="cuda", dtype=torch.float16)
    shipped = q.compress(x)
    ref, _ = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
    calls = {"shipped": lambda: q.compress(x, out=shipped)}
    outs = {}
    for form in FORMS:
        one, warps, bm, stages = form
        packed = torch.full((n, d // 2), 0xA5, device="cuda", dtype=torch.uint8)
        norms = torch.full((n,), float("nan"), device="cuda")
        desc = TensorDescriptor(x, [n, d], [d, 1], [bm, d])
        w = transposed if one else slots

        def call(desc=desc, w=w, packed=packed, norms=norms, one=one, warps=warps, bm=bm, stages=stages):
            compress_loop[(sms,)](desc, w, packed, norms, n, bm, d, one, stages, ptx[0], ptx[1], num_warps=warps,
                                  num_stages=stages)
        try:
            call()
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001
            print(f"{form}: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
            continue
        label = f"{'one N=256' if one else 'two slots'} w{warps} B{bm} s{stages}"
        calls[label] = call
        outs[label] = (packed, norms)
        print(f"{label}: bytes equal shipped {torch.equal(packed, shipped[0])}, norms equal "
              f"{torch.equal(norms, shipped[1].view(-1))}, codes = fp32 path {bench.code_agreement(packed, ref, q.layout):.5f}",
              flush=True)
    nbytes = bench.op_bytes("compress", d, q.packed_dim, n, 2)
    times = {label: [] for label in calls}
    for _ in range(3):
        for label, call in calls.items():
            times[label].append(bench.graph_time_us([call], rounds=1))
    for label, ts in times.items():
        print(f"tq4 D256 1M compress {label:24s} " + " / ".join(f"{t:6.1f}" for t in ts)
              + f" us ({nbytes / min(ts) / 1e3 / copy_gbps * 100:4.1f}%)", flush=True)


if __name__ == "__main__":
    main()
