"""Shared fixtures. Without a GPU the generated kernels run under the Triton interpreter."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before any generated module is imported

import pytest  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def device() -> str:
    return DEVICE


@pytest.fixture
def gen() -> torch.Generator:
    """A fresh, differently seeded generator per test: new random inputs every run."""
    g = torch.Generator("cpu")
    g.seed()
    return g
