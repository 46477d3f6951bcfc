"""The `kernelgen` command: build generated kernels from specs.

    kernelgen build SPEC... [--out DIR] [--check]

Exit codes: 0 done (or nothing would change), 1 `--check` found drift, 2 bad spec or usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .spec import SpecError, load_spec


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kernelgen", description="Generate TurboQuant Triton kernels from specs.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="render specs into generated/ (or --out)")
    build.add_argument("specs", nargs="+", metavar="SPEC", help="spec YAML files, e.g. specs/tq4.yaml")
    build.add_argument("--out", default="generated", help="output folder (default: ./generated)")
    build.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 naming each file that would change")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            return _build(args)
    except SpecError as exc:
        print(f"kernelgen: error: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
