"""The `kernelgen` command: build generated kernels from specs.

    kernelgen build SPEC... [--out DIR] [--check]
    kernelgen list
    kernelgen tune SPEC... [--head-dims ...] [--rows ...] [--dtypes ...] [--ops ...]        (CUDA only)
    kernelgen demo [--spec tq4] [--head-dim 128] [--rows 4096]
    kernelgen bench [--specs ...] [--head-dims ...] [--rows ...] [--json F] [--markdown F]   (CUDA only)

Exit codes: 0 done (or nothing would change), 1 `--check` found drift, 2 bad spec or usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .spec import SpecError, load_spec

# what `kernelgen bench` can time: the generated kernels, the seed's per-row algorithm (kernelgen/baseline.py,
# 4-bit specs), the PyTorch path
BENCH_IMPLS = ("kernelgen", "baseline", "torch")


def _build(args) -> int:
    from .render import apply_build, plan_build

    specs = [load_spec(path) for path in args.specs]  # every spec is valid before anything is written
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise SpecError(f"{spec.source}: field 'name': {spec.name!r} is also the name of {seen[spec.name]}; "
                            "spec names must be unique")
        seen[spec.name] = spec.source
    plans = [plan_build(spec, Path(args.out)) for spec in specs]
    if args.check:
        drift = [(p, "would change") for plan in plans for p in plan.changed]
        drift += [(p, "would be removed") for plan in plans for p in plan.stale]
        for path, what in drift:
            print(f"{path}: {what}")
        if drift:
            print(f"{len(drift)} generated file(s) out of date; run: kernelgen build {' '.join(args.specs)}",
                  file=sys.stderr)
            return 1
        print(f"generated files are up to date ({sum(len(p.files) for p in plans)} files)")
        return 0
    for plan in plans:
        apply_build(plan)
        print(f"{plan.folder}: {len(plan.files)} files, {len(plan.changed)} written, "
              f"{len(plan.stale)} stale removed")
    return 0


def _unknown_specs(names) -> list[str]:
    from . import registry

    known = registry.available()
    return [f"kernelgen: error: no generated kernels for spec {n!r}; available: {', '.join(known) or 'none'}"
            for n in names if n not in known]


def _bench(args) -> int:
    import torch

    from . import bench

    errors = _unknown_specs(args.specs)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("kernelgen: error: bench needs a CUDA GPU (it times device kernels)", file=sys.stderr)
        return 2
    dtypes = [getattr(torch, d) for d in args.dtypes]
    copy_before = bench.copy_bandwidth_gbps()
    results = []
    for spec in args.specs:
        for head_dim in args.head_dims:
            for dtype in dtypes:
                for rows in args.rows:
                    results += bench.bench_variant(spec, head_dim, rows, dtype, impls=args.impls)
    copy_gbps = max(copy_before, bench.copy_bandwidth_gbps())
    table = bench.markdown_table(results, copy_gbps)
    if args.host_overhead:
        lines = ["", f"Host time a call at {args.host_overhead_rows} rows: the API call with out=, a bare launch of "
                     "the same Triton kernel and config (`kernel[grid](...)`), and that compiled kernel's own "
                     "launcher; median of 7 loops of 2,000 calls. ratio = API / bare launch.", "",
                 "| spec | D | op | API call µs | bare launch µs | compiled launcher µs | ratio |",
                 "|---|---|---|---|---|---|---|"]
        for spec in args.specs:
            for head_dim in args.head_dims:
                for op, r in bench.host_overhead(spec, head_dim, args.host_overhead_rows).items():
                    lines.append(f"| {spec} | {head_dim} | {op} | {r['api_us']:.1f} | {r['bare_launch_us']:.1f} | "
                                 f"{r['launcher_us']:.1f} | {r['ratio']:.2f} |")
        table += "\n".join(lines) + "\n"
    print(table)
    device = torch.cuda.get_device_name()
    if args.markdown:
        Path(args.markdown).write_text(f"# kernelgen bench on {device}\n\nCommand: `kernelgen bench "
                                       f"{' '.join(sys.argv[2:])}`\n\n{table}")
    if args.json:
        Path(args.json).write_text(bench.to_json(results, copy_gbps, device))
    return 0


def _demo(args) -> int:
    import torch

    from . import quantizer
    from .registry import VariantNotFound

    try:
        q = quantizer(args.spec, args.head_dim)
    except VariantNotFound as exc:
        print(f"kernelgen: error: {exc}", file=sys.stderr)
        return 2
    x = torch.randn(args.rows, args.head_dim, device=q.device, dtype=torch.float16)
    packed, norms = q.compress(x)
    x_hat = q.decompress(packed, norms)
    err = ((x_hat.float() - x.float()).pow(2).sum(-1) / x.float().pow(2).sum(-1)).mean().item()
    stored = packed.numel() + 4 * norms.numel()
    print(f"{q}")
    print(f"compressed {args.rows} random fp16 vectors of dim {args.head_dim}: "
          f"{x.numel() * 2:,} bytes -> {stored:,} bytes ({x.numel() * 2 / stored:.2f}x smaller)")
    print(f"round trip: mean ||x - x_hat||^2 / ||x||^2 = {err:.5f}")
    return 0


def _list(args) -> int:
    import torch

    from . import registry, tuning

    device = torch.device("cuda") if torch.cuda.is_available() else None
    where = " on " + "{} (sm {})".format(*tuning.device_name(device)) if device else ""
    print(f"{'spec':<8}{'head dim':>9}  {'ops':<44}{'dtypes':<28}tuned{where}")
    for name, dims in registry.available().items():
        for head_dim in dims:
            variant = registry.load_variant(name, head_dim)
            status = "no tuning without a GPU (default config)"
            if device is not None:
                found = {"table": 0, "cache": 0}
                total = 0
                for op in registry.OPS:
                    kernel = tuning.KernelId(variant.entry.kernels[op], variant.entry.module_sha256)
                    for dtype in variant.manifest.dtypes:
                        for bucket in (1 << i for i in range(registry.MAX_ROW_BUCKET.bit_length())):
                            total += 1
                            source = tuning.TUNER.source(variant.folder, kernel, bucket, dtype, device)
                            if source:
                                found[source] += 1
                parts = [f"shipped table {found['table']}/{total}"] if found["table"] else []
                parts += [f"local cache {found['cache']}/{total}"] if found["cache"] else []
                status = ", ".join(parts) or "not yet"
            print(f"{name:<8}{head_dim:>9}  {', '.join(registry.OPS):<44}{', '.join(variant.manifest.dtypes):<28}"
                  f"{status}")
    return 0


def _tune(args) -> int:
    import torch

    from . import quantizer, registry, tuning

    spec_names = [load_spec(s).name if s.endswith((".yaml", ".yml")) else s for s in args.specs]
    errors = _unknown_specs(spec_names)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("kernelgen: error: tune needs a CUDA GPU (it benchmarks kernels on the device)", file=sys.stderr)
        return 2
    device = torch.device("cuda", torch.cuda.current_device())
    name, capability = tuning.device_name(device)
    shard, shards = args.shard
    work = []
    for spec_name in spec_names:
        work += [(spec_name, d) for d in (args.head_dims or registry.available().get(spec_name, ()))]
    for spec_name, head_dim in work[shard::shards]:
        q = quantizer(spec_name, head_dim, device)
        entries = {}
        for dtype_name in args.dtypes or q._variant.manifest.dtypes:
            dtype = getattr(torch, dtype_name)
            buckets = [registry.row_bucket(rows) for rows in args.rows]
            for bucket in buckets:
                for op, kernel, case in q._cases(bucket, dtype, args.ops):
                    space = [tuning.LaunchConfig.of(c) for c in kernel.configs]
                    if args.compile_only:  # fills triton's compile cache, so a later tune only benchmarks
                        for config in [c for c, b in kernel.launch_forms(space, dtype_name, buckets) if b == bucket]:
                            try:
                                kernel.run(config, bucket, bucket, dtype_name, case)
                            except Exception as exc:  # noqa: BLE001 - reported, tuning skips it too
                                print(f"{kernel.id.name} {config.as_dict()}: {type(exc).__name__}", flush=True)
                        continue
                    best = tuning.TUNER.tune(kernel.id, space,
                                             lambda c: kernel.run(c, bucket, bucket, dtype_name, case))
                    entries[tuning.table_key(kernel.id, bucket, dtype_name)] = best.as_dict()
                    print(f"{spec_name} d{head_dim} {op} {dtype_name} bucket {bucket}: {best.as_dict()}", flush=True)
        if entries:  # written per head dim, so an interrupted run keeps what it finished
            path = q._variant.folder / "tuned" / f"{tuning.device_slug(name, capability)}.json"
            current = {(kernel, v.module_sha256) for v in q._variant.manifest.variants for kernel in v.kernels.values()}
            total = tuning.merge_table(path, name, capability, entries, current, "kernelgen " + " ".join(sys.argv[1:]))
            print(f"wrote {path} ({total} entries)", flush=True)
    if args.compile_only:
        torch.cuda.synchronize()
    return 0


def _shard(text: str) -> tuple[int, int]:
    part, _, count = text.partition("/")
    if not (part.isdigit() and count.isdigit() and int(part) < int(count)):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, such as 0/4; got {text!r}")
    return int(part), int(count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kernelgen", description="Generate TurboQuant Triton kernels from specs.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="render specs into generated/ (or --out)")
    build.add_argument("specs", nargs="+", metavar="SPEC", help="spec YAML files, e.g. specs/tq4.yaml")
    build.add_argument("--out", default="generated", help="output folder (default: ./generated)")
    build.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 naming each file that would change")
    sub.add_parser("list", help="specs, head dims, ops and dtypes available, and their tuning on this device")
    tune = sub.add_parser("tune", help="tune on this GPU and write generated/<spec>/tuned/<device>.json")
    tune.add_argument("specs", nargs="+", metavar="SPEC", help="spec names or spec files")
    tune.add_argument("--head-dims", nargs="+", type=int, help="default: every head dim of the spec")
    tune.add_argument("--rows", nargs="+", type=int, default=[8, 2048, 65536, 1048576],
                      help="row counts whose buckets are tuned; other buckets use the nearest tuned one")
    tune.add_argument("--dtypes", nargs="+", choices=["float16", "bfloat16", "float32"],
                      help="default: every dtype of the spec")
    tune.add_argument("--ops", nargs="+", default=["compress", "decompress", "decompress_rotated"],
                      choices=["compress", "decompress", "decompress_rotated"])
    tune.add_argument("--compile-only", action="store_true",
                      help="only compile every config (run shards of this in parallel first to save time)")
    tune.add_argument("--shard", default=(0, 1), type=_shard,
                      help="I/N: take every N-th (spec, head dim) from the I-th (0 <= I < N)")
    demo = sub.add_parser("demo", help="compress and decompress random vectors, print size and error")
    demo.add_argument("--spec", default="tq4")
    demo.add_argument("--head-dim", type=int, default=128)
    demo.add_argument("--rows", type=int, default=4096)
    bench = sub.add_parser("bench", help="time kernels against a device-to-device copy (CUDA only)")
    bench.add_argument("--specs", nargs="+", default=["tq4"])
    bench.add_argument("--head-dims", nargs="+", type=int, default=[128])
    bench.add_argument("--rows", nargs="+", type=int, default=[8, 2048, 65536, 1048576])
    bench.add_argument("--dtypes", nargs="+", default=["float16"], choices=["float16", "bfloat16", "float32"])
    bench.add_argument("--impls", nargs="+", default=list(BENCH_IMPLS), choices=BENCH_IMPLS,
                       help="baseline: the seed's per-row algorithm (4-bit specs only)")
    bench.add_argument("--host-overhead", action="store_true",
                       help="also measure the API's host time against a bare kernel launch")
    bench.add_argument("--host-overhead-rows", type=int, default=8)
    bench.add_argument("--json", help="write the results as JSON here")
    bench.add_argument("--markdown", help="write the table as Markdown here")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            return _build(args)
        if args.command == "list":
            return _list(args)
        if args.command == "tune":
            return _tune(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "bench":
            return _bench(args)
    except SpecError as exc:
        print(f"kernelgen: error: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
