"""Stage 1: a YAML spec file -> a validated, typed `Spec`.

Every error is a `SpecError` that names the file, the field (or the line, for
YAML that does not parse), what was given and what is allowed. Unknown fields
are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .layout import MAX_HEAD_DIM, MIN_HEAD_DIM, PackLayout, LayoutError

SUPPORTED_BITS = (1, 2, 3, 4)
PADDINGS = ("pow2", "none")
SPLITS = ("even_odd", "strided")
ROTATION_KINDS = ("haar",)
PRECISIONS = ("ieee", "tf32x3", "tf32", "fp16")
DEFAULT_PRECISION = "tf32x3"
LAWS = ("gaussian", "beta")
INITS = ("uniform",)
DTYPES = ("float16", "bfloat16", "float32")
AUTOTUNE_KEYS = ("row_bucket", "none")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class SpecError(ValueError):
    """A spec file is broken or asks for something unsupported."""


@dataclass(frozen=True)
class RotationSpec:
    kind: str
    seed: int
    precision: tuple[tuple[str, str], ...]  # (data dtype, operand precision of the rotation products)

    def precision_for(self, dtype: str) -> str:
        """Operand precision of the tl.dot products with the rotation for data of `dtype`:
        ieee, tf32x3 or tf32 (fp32 operands), or fp16 (16-bit operands, fp32 accumulation)."""
        return dict(self.precision).get(dtype, DEFAULT_PRECISION)


@dataclass(frozen=True)
class CodebookSpec:
    law: str  # gaussian: N(0, 1/D); beta: the exact law of a unit vector's coordinate
    support_sigmas: float | None  # outer cells clipped to +-support*sigma; None: the law's own support
    init: str
    max_iterations: int
    tolerance: float


@dataclass(frozen=True)
class AutotuneSpec:
    key: str
    block_rows: tuple[int, ...]
    num_warps: tuple[int, ...]
    num_stages: tuple[int, ...]

    def configs(self) -> list[dict[str, int]]:
        """The search space in order; the first entry is the default config."""
        return [
            {"block_rows": b, "num_warps": w, "num_stages": s}
            for b, w, s in itertools.product(self.block_rows, self.num_warps, self.num_stages)
        ]


@dataclass(frozen=True)
class Spec:
    name: str
    bits: int
    head_dims: tuple[int, ...]
    padding: str
    split: str
    rotation: RotationSpec
    codebook: CodebookSpec
    dtypes: tuple[str, ...]
    autotune: AutotuneSpec
    source: str = dataclasses.field(default="<memory>", compare=False)

    def canonical(self) -> dict[str, Any]:
        """Everything that defines the spec's meaning (not where it was read from)."""
        data = dataclasses.asdict(self)
        data.pop("source")
        return data

    def digest(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def layout(self, head_dim: int) -> PackLayout:
        return PackLayout(bits=self.bits, head_dim=head_dim)


class _Fields:
    """Reads one YAML mapping, tracking which keys were used."""

    def __init__(self, data: Any, file: str, where: str):
        self.file = file
        self.where = where
        if not isinstance(data, dict):
            raise self.error(where or "(top level)", f"expected a mapping, got {_show(data)}")
        self.data = data
        self.used: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, field: str, message: str) -> SpecError:
        return SpecError(f"{self.file}: field '{field}': {message}")

    def get(self, key: str, default: Any = ..., *, required: bool = True) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is not ...:
                return default
            raise self.error(self.path(key), "missing (required)")
        return self.data[key]

    def choice(self, key: str, allowed: tuple[str, ...], default: Any = ...) -> str:
        value = self.get(key, default)
        if value not in allowed:
            raise self.error(self.path(key), f"got {_show(value)}, allowed: {', '.join(allowed)}")
        return value

    def integer(self, key: str, *, low: int, high: int, default: Any = ...) -> int:
        value = self.get(key, default)
        if not _is_int(value) or not low <= value <= high:
            raise self.error(self.path(key), f"got {_show(value)}, allowed: an integer in [{low}, {high}]")
        return value

    def number(self, key: str, *, low: float, high: float, default: Any = ..., nullable: bool = False):
        value = self.get(key, default)
        if value is None and nullable:
            return None
        if not (_is_int(value) or isinstance(value, float)) or not low <= value <= high:
            extra = " or null" if nullable else ""
            raise self.error(self.path(key), f"got {_show(value)}, allowed: a number in [{low}, {high}]{extra}")
        return float(value)

    def int_list(self, key: str, *, allowed: str, check, default: Any = ...) -> tuple[int, ...]:
        value = self.get(key, default)
        if not isinstance(value, list) or not value:
            raise self.error(self.path(key), f"got {_show(value)}, allowed: a non-empty list of {allowed}")
        for item in value:
            if not _is_int(item) or not check(item):
                raise self.error(self.path(key), f"got {_show(item)} in {_show(value)}, allowed: {allowed}")
        if len(set(value)) != len(value):
            raise self.error(self.path(key), f"got {_show(value)}, allowed: no repeated values")
        return tuple(value)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used, key=str)
        if unknown:
            known = ", ".join(sorted(self.used))
            raise self.error(self.path(str(unknown[0])), f"unknown field; allowed fields here: {known}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_pow2(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def _precision(rot: _Fields, dtypes: list[str]) -> tuple[tuple[str, str], ...]:
    """rotation.precision: one precision for every dtype, or a mapping from dtype to precision
    (dtypes it leaves out use the default). Stored as (dtype, precision) for each spec dtype."""
    value = rot.get("precision", DEFAULT_PRECISION)
    allowed = f"one of {', '.join(PRECISIONS)}, or a mapping from dtypes of this spec to those"
    if isinstance(value, str):
        if value not in PRECISIONS:
            raise rot.error(rot.path("precision"), f"got {_show(value)}, allowed: {allowed}")
        return tuple((d, value) for d in dtypes)
    if not isinstance(value, dict) or not value:
        raise rot.error(rot.path("precision"), f"got {_show(value)}, allowed: {allowed}")
    for dtype, precision in value.items():
        if dtype not in dtypes:
            raise rot.error(rot.path(f"precision.{dtype}"), f"unknown dtype; allowed: the spec's dtypes "
                                                            f"({', '.join(dtypes)})")
        if precision not in PRECISIONS:
            raise rot.error(rot.path(f"precision.{dtype}"),
                            f"got {_show(precision)}, allowed: {', '.join(PRECISIONS)}")
    return tuple((d, value.get(d, DEFAULT_PRECISION)) for d in dtypes)


def load_spec(path: str | Path) -> Spec:
    """Read and validate one spec file. Raises SpecError naming file and field."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SpecError(f"{file}: cannot read spec: {exc.strerror or exc}") from None
    return parse_spec(text, file)


def parse_spec(text: str, file: str = "<memory>") -> Spec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{file}: {line}: not valid YAML: {problem}") from None
    top = _Fields(data, file, "")

    name = top.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise top.error("name", f"got {_show(name)}, allowed: lower-case letters, digits and '_', "
                                "starting with a letter, at most 32 characters")
    bits = top.get("bits")
    if not _is_int(bits) or bits not in SUPPORTED_BITS:
        raise top.error("bits", f"got {_show(bits)}, allowed: {', '.join(map(str, SUPPORTED_BITS))}")
    padding = top.choice("padding", PADDINGS)
    head_dims = top.int_list(
        "head_dims", allowed=f"integers in [{MIN_HEAD_DIM}, {MAX_HEAD_DIM}]",
        check=lambda d: MIN_HEAD_DIM <= d <= MAX_HEAD_DIM)
    for dim in head_dims:
        try:
            layout = PackLayout(bits=bits, head_dim=dim)
        except LayoutError as exc:
            raise top.error("head_dims", f"got {dim}: {exc}") from None
        if padding == "none" and not layout.is_pow2:
            raise top.error("head_dims", f"got {dim} with padding 'none': without padding every head dim "
                                         f"and its slot width ({layout.groups}) must be a power of two "
                                         "of at least 16; use padding: pow2")
    split = top.choice("split", SPLITS)
    if split == "even_odd" and bits != 4:
        raise top.error("split", f"got \"even_odd\" with bits {bits}: even_odd is the 4-bit case "
                                 "(two codes a byte); allowed for this bit width: strided")

    dtypes = top.get("dtypes")
    if not isinstance(dtypes, list) or not dtypes or any(d not in DTYPES for d in dtypes) \
            or len(set(dtypes)) != len(dtypes):
        raise top.error("dtypes", f"got {_show(dtypes)}, allowed: a non-empty list without repeats "
                                  f"of {', '.join(DTYPES)}")

    rot = _Fields(top.get("rotation"), file, "rotation")
    rotation = RotationSpec(
        kind=rot.choice("kind", ROTATION_KINDS),
        seed=rot.integer("seed", low=0, high=2**63 - 1),
        precision=_precision(rot, dtypes),
    )
    rot.finish()

    cb = _Fields(top.get("codebook"), file, "codebook")
    codebook = CodebookSpec(
        law=cb.choice("law", LAWS),
        support_sigmas=cb.number("support_sigmas", low=0.5, high=40.0, default=None, nullable=True),
        init=cb.choice("init", INITS, default="uniform"),
        max_iterations=cb.integer("max_iterations", low=1, high=100_000),
        tolerance=cb.number("tolerance", low=0.0, high=1e-3, default=1e-10),
    )
    cb.finish()

    tune = _Fields(top.get("autotune"), file, "autotune")
    autotune = AutotuneSpec(
        key=tune.choice("key", AUTOTUNE_KEYS),
        block_rows=tune.int_list("block_rows", allowed="powers of two in [16, 256]",
                                 check=lambda b: _is_pow2(b) and 16 <= b <= 256),
        num_warps=tune.int_list("num_warps", allowed="one of 1, 2, 4, 8, 16",
                                check=lambda w: w in (1, 2, 4, 8, 16)),
        num_stages=tune.int_list("num_stages", allowed="integers in [1, 6]", check=lambda s: 1 <= s <= 6),
    )
    tune.finish()
    top.finish()

    return Spec(
        name=name, bits=bits, head_dims=head_dims, padding=padding, split=split,
        rotation=rotation, codebook=codebook, dtypes=tuple(dtypes), autotune=autotune, source=file,
    )
