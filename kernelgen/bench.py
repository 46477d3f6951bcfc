"""`kernelgen bench`: device time of the generated kernels against a device-to-device copy
(the memory roofline), the seed's per-row algorithm (kernelgen/baseline.py, 4-bit specs) and
the plain PyTorch path, all measured in the same run.

Method: every implementation is warmed up (compiled and tuned) first, then K calls on K
different input sets are captured in one CUDA graph; the graph is replayed and timed
with events (median of replays), and the time of one call is that over K. That is done
ROUNDS times, each with a graph of its own, and the median round is reported: on an H100,
rounds of tq4 D=128 compress at 1M rows ranged over 6% in one process
(benchmarks/experiments/timing_state.py). Input sets
rotate so that together they exceed the L2 cache: small sizes do not sit in L2, and
graph replay removes host launch gaps, so the figure is device time.
Bytes counted once per row: compress reads D inputs and writes D*bits/8 bytes + a fp32
norm; decompress reads those and writes D outputs.
Code agreement: the fraction of codes an implementation's compress gives that equal those of the
PyTorch path in fp32 (on the first input set), the reference the kernels' precision is held to.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass

import torch

OPS = ("compress", "decompress", "decompress_rotated")
DEFAULT_ROWS = (8, 2048, 65536, 1048576)
ROTATE_BYTES = 256 << 20  # input sets together exceed the H100's 50 MB L2 several times
MAX_SETS = 512


def op_bytes(op: str, head_dim: int, packed_dim: int, rows: int, itemsize: int) -> int:
    """Bytes an op must move once: the float side, the packed codes and the fp32 norm, per row."""
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}, got {op!r}")
    return rows * (head_dim * itemsize + packed_dim + 4)


def input_sets(bytes_per_set: int) -> int:
    return max(1, min(MAX_SETS, math.ceil(ROTATE_BYTES / max(1, bytes_per_set))))


@dataclass
class Result:
    spec: str
    head_dim: int
    rows: int
    dtype: str
    op: str
    impl: str
    us: float
    bytes: int
    code_agreement: float | None = None  # compress only: codes equal to the fp32 PyTorch path's

    @property
    def gbps(self) -> float:
        return self.bytes / self.us / 1e3

    def fraction(self, copy_gbps: float) -> float:
        return self.gbps / copy_gbps


ROUNDS = 5


def graph_time_us(calls, replays: int = 20, rounds: int = ROUNDS) -> float:
    """Device time of one call: `calls` (a list of closures) captured in one CUDA graph, the median of
    `replays` timed replays; `rounds` such graphs, each captured anew, and the median of theirs."""
    return statistics.median(_graph_round_us(calls, replays) for _ in range(rounds))


def _graph_round_us(calls, replays: int) -> float:
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for call in calls:  # warm-up: compile, tune, allocate
            call()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for call in calls:
            call()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / len(calls))
    return statistics.median(times)


def copy_bandwidth_gbps(nbytes: int = 1 << 30, repeats: int = 10, per_timing: int = 5) -> float:
    """GB/s of a large device-to-device copy, counting bytes read plus bytes written.
    Timed with events around plain launches (a copy this large leaves no launch gaps)."""
    src = torch.randn(nbytes // 4, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(per_timing):
            dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / per_timing)
    del src, dst
    return 2 * nbytes / statistics.median(times) / 1e3


def code_agreement(packed: torch.Tensor, reference: torch.Tensor, layout) -> float:
    """Fraction of codes in `packed` equal to those in `reference` (both (n, D*bits/8) uint8)."""
    from kernelgen import torch_path

    return (torch_path.unpack_codes(packed, layout) == torch_path.unpack_codes(reference, layout)).double().mean().item()


def bench_variant(spec: str, head_dim: int, rows: int, dtype: torch.dtype, impls=("kernelgen", "torch")):
    """Results for each op and implementation of one (spec, head dim, rows, dtype)."""
    import kernelgen
    from kernelgen import baseline, torch_path

    q = kernelgen.quantizer(spec, head_dim, device="cuda")
    lay = q.layout
    item = torch.tensor([], dtype=dtype).element_size()
    per_set = op_bytes("compress", head_dim, q.packed_dim, rows, item)
    sets = input_sets(per_set)
    xs = [torch.randn(rows, head_dim, device="cuda", dtype=dtype) for _ in range(sets)]
    packed = [torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda") for _ in range(sets)]
    norms = [torch.empty(rows, 1, device="cuda") for _ in range(sets)]
    outs = [torch.empty(rows, head_dim, device="cuda", dtype=dtype) for _ in range(sets)]
    for i in range(sets):
        q.compress(xs[i], out=(packed[i], norms[i]))
    reference_codes = torch_path.compress_rows(xs[0], q.rotation, q.boundaries, lay)[0]
    results = []

    def add(op, impl, calls, agreement=None):
        us = graph_time_us(calls)
        results.append(Result(spec, head_dim, rows, str(dtype).replace("torch.", ""), op, impl, us,
                              op_bytes(op, head_dim, q.packed_dim, rows, item), agreement))

    if "kernelgen" in impls:
        add("compress", "kernelgen", [lambda i=i: q.compress(xs[i], out=(packed[i], norms[i])) for i in range(sets)],
            code_agreement(packed[0], reference_codes, lay))
        add("decompress", "kernelgen",
            [lambda i=i: q.decompress(packed[i], norms[i], dtype=dtype, out=outs[i]) for i in range(sets)])
        add("decompress_rotated", "kernelgen",
            [lambda i=i: q.decompress(packed[i], norms[i], dtype=dtype, rotated=True, out=outs[i])
             for i in range(sets)])
    if "baseline" in impls and baseline.supports(q.bits):
        base_packed = [torch.empty_like(p) for p in packed]
        baseline.compress(xs[0], q.rotation, q.boundaries, base_packed[0], torch.empty_like(norms[0]))
        add("compress", "baseline", [lambda i=i: baseline.compress(xs[i], q.rotation, q.boundaries, base_packed[i],
                                                                   norms[i]) for i in range(sets)],
            code_agreement(base_packed[0], reference_codes, lay))
        add("decompress_rotated", "baseline",
            [lambda i=i: baseline.decompress_rotated(packed[i], norms[i], q.centroids, outs[i]) for i in range(sets)])
    if "torch" in impls:
        add("compress", "torch",
            [lambda i=i: torch_path.compress_rows(xs[i], q.rotation, q.boundaries, lay) for i in range(sets)], 1.0)
        for op, rot in (("decompress", False), ("decompress_rotated", True)):
            add(op, "torch", [lambda i=i, rot=rot: torch_path.decompress_rows(
                packed[i], norms[i].view(-1), q.rotation, q.centroids, lay, dtype, rot) for i in range(sets)])
    return results


def _us(result: Result | None) -> str:
    return f"{result.us:,.1f}" if result else "—"


def markdown_table(results: list[Result], copy_gbps: float) -> str:
    """One line per (spec, D, rows, dtype, op): kernelgen's time and fraction of the copy rate, its code
    agreement with the fp32 path, and the baseline's and PyTorch's times beside it ('—': not run)."""
    lines = [f"Device-to-device copy: {copy_gbps:,.0f} GB/s (read + write).", "",
             "| spec | D | rows | dtype | op | kernelgen µs | GB/s | of copy | codes = fp32 path | "
             "baseline µs | torch µs |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    cases: dict[tuple, dict[str, Result]] = {}
    for r in results:
        cases.setdefault((r.spec, r.head_dim, r.rows, r.dtype, r.op), {})[r.impl] = r
    for (spec, head_dim, rows, dtype, op), by_impl in cases.items():
        ours = by_impl.get("kernelgen")
        speed = f"{ours.gbps:,.0f} | {100 * ours.fraction(copy_gbps):.1f}%" if ours else "— | —"
        agree = f"{100 * ours.code_agreement:.3f}%" if ours and ours.code_agreement is not None else "—"
        lines.append(f"| {spec} | {head_dim} | {rows:,} | {dtype} | {op} | {_us(ours)} | {speed} | {agree} | "
                     f"{_us(by_impl.get('baseline'))} | {_us(by_impl.get('torch'))} |")
    return "\n".join(lines) + "\n"


def to_json(results: list[Result], copy_gbps: float, device: str) -> str:
    return json.dumps({"device": device, "copy_gbps": copy_gbps,
                       "results": [dict(asdict(r), gbps=r.gbps, fraction_of_copy=r.fraction(copy_gbps))
                                   for r in results]}, indent=2) + "\n"


def host_overhead(spec: str, head_dim: int, rows: int = 8, calls: int = 2000, repeats: int = 7) -> dict:
    """Host microseconds a call of Quantizer.compress / .decompress (with out=) against a bare launch of
    the same Triton kernel with the same config (`kernel[grid](...)`), and against that compiled kernel's
    own launcher (the floor), at a decode size; median of `repeats` loops."""
    import time

    import kernelgen
    from kernelgen import registry

    q = kernelgen.quantizer(spec, head_dim, device="cuda")
    x = torch.randn(rows, head_dim, device="cuda", dtype=torch.float16)
    packed = torch.empty(rows, q.packed_dim, dtype=torch.uint8, device="cuda")
    norms = torch.empty(rows, 1, device="cuda")
    out = torch.empty(rows, head_dim, device="cuda", dtype=torch.float16)
    bucket = registry.row_bucket(rows)
    cases = {
        "compress": (lambda: q.compress(x, out=(packed, norms)), q._kernels["compress"],
                     q._kernel_args("compress", torch.float16, (x,), (packed, norms)), "float16"),
        "decompress": (lambda: q.decompress(packed, norms, out=out), q._kernels["decompress"],
                       q._kernel_args("decompress", torch.float16, (packed, norms), (out,)), "float16"),
    }

    def per_call(fn) -> float:
        samples = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            torch.cuda.synchronize()
            samples.append((time.perf_counter() - start) * 1e6 / calls)
        return statistics.median(samples)

    result = {}
    for op, (api_call, kernel, args, dtype) in cases.items():
        api_call()
        config = kernel.config(rows, dtype, q.device, args)
        meta = kernel.meta(config, dtype, bucket)
        grid = kernel.grid(rows, meta)

        def bare(fn=kernel.fn, args=args, grid=grid, meta=meta):
            fn[grid](*args, rows, bucket, **meta)

        # the floor: the compiled kernel's own launcher, as the API calls it after a key's first launch
        compiled = kernel.fn[grid](*args, rows, bucket, **meta)
        constexprs = kernel.constexpr_args(meta, len(args))
        stream = torch.cuda.current_stream().cuda_stream

        def launcher(c=compiled, grid=grid, all_args=(*args, rows, bucket, *constexprs)):
            registry.launch_compiled(c, grid, stream, all_args)

        api_us, bare_us = per_call(api_call), per_call(bare)
        floor_us = per_call(launcher) if registry.DIRECT_LAUNCH else float("nan")  # launcher protocol of 3.6
        result[op] = {"api_us": api_us, "bare_launch_us": bare_us, "launcher_us": floor_us, "ratio": api_us / bare_us}
    return result
