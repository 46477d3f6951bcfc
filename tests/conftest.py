"""Shared fixtures. Without a GPU the generated kernels run under the Triton interpreter."""

import os
from pathlib import Path

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before any generated module is imported

import pytest  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _interpreter_scalar_index():
    """Triton 3.6's interpreter turns a scalar into an index with int() of its 1-element array, which numpy
    2.4 refuses; a loop bounded at run time (the TMA compress loop, which the tests force under the
    interpreter) needs it. Patch that conversion to take the one element."""
    from triton.runtime import interpreter

    patch = interpreter._patch_lang_tensor

    def patched(tensor, scope):
        patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(
            self.handle.data.reshape(-1)[0] if self.handle.data.size == 1 else self.handle.data))

    interpreter._patch_lang_tensor = patched


if os.environ.get("TRITON_INTERPRET") == "1":
    _interpreter_scalar_index()


@pytest.fixture
def device() -> str:
    return DEVICE


@pytest.fixture
def gen() -> torch.Generator:
    """A fresh, differently seeded generator per test: new random inputs every run."""
    g = torch.Generator("cpu")
    g.seed()
    return g


@pytest.fixture(scope="module")
def tq3_odd_rows(tmp_path_factory):
    """tq3 built at head dims whose packed rows are off 8 bytes (136: 51 bytes a row, 144: 54, 160: 60), so
    that its Hopper decompress reads words of 1, 2 and 4 bytes; no shipped spec has them."""
    import yaml

    from kernelgen import registry
    from kernelgen.cli import main

    root = Path(__file__).resolve().parents[1]
    data = yaml.safe_load((root / "specs" / "tq3.yaml").read_text())
    data.update(name="tq3odd", head_dims=[136, 144, 160])
    folder = tmp_path_factory.mktemp("tq3odd")
    spec = folder / "tq3odd.yaml"
    spec.write_text(yaml.safe_dump(data))
    assert main(["build", str(spec), "--out", str(folder / "kernels")]) == 0
    registry.add_kernel_path(folder / "kernels")
    yield folder / "kernels", "tq3odd"
    registry._added_paths.remove((folder / "kernels").resolve())
