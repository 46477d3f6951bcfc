"""The manifest of one spec's folder in generated/: what was emitted, with hashes.

`kernelgen build` writes it last; the registry reads it instead of globbing
files, and checks every hash before a variant is used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class VariantEntry:
    head_dim: int
    module: str  # file name of the generated Python module
    module_sha256: str
    rotation: str  # file name of the raw little-endian fp32 rotation (D x D, row-major)
    constants_sha256: str  # over rotation bytes + fp32 centroids + fp32 boundaries
    kernels: dict[str, str]  # op -> kernel function name in the module


@dataclass(frozen=True)
class Manifest:
    spec_name: str
    spec_path: str
    spec_sha256: str
    generator_version: str
    bits: int
    dtypes: tuple[str, ...]
    variants: tuple[VariantEntry, ...]

    def to_json(self) -> str:
        data = asdict(self)
        data["format_version"] = FORMAT_VERSION
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> "Manifest":
        try:
            data = json.loads(text)
            if data.pop("format_version", None) != FORMAT_VERSION:
                raise ValueError(f"format_version is not {FORMAT_VERSION}")
            variants = tuple(VariantEntry(**v) for v in data.pop("variants"))
            return cls(variants=variants, dtypes=tuple(data.pop("dtypes")), **data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"{where}: not a kernelgen manifest this version can read ({exc}); "
                             "rebuild it with `kernelgen build`") from None

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        path = folder / MANIFEST_NAME
        return cls.from_json(path.read_text(), str(path))


def constants_digest(rotation_bytes: bytes, centroids, boundaries) -> str:
    import struct

    packed = struct.pack(f"<{len(centroids)}f", *centroids) + struct.pack(f"<{len(boundaries)}f", *boundaries)
    return sha256(rotation_bytes + packed)
