"""Stage 2: the build-time constants of a variant: Haar rotation and Lloyd-Max codebook.

Both are computed once by `kernelgen build` and written into generated/, so every
machine uses identical bits (compressed caches move between machines). Nothing
here needs scipy: the Gaussian cell moments have closed forms, and the Beta law's
cell masses use Gauss-Legendre quadrature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .spec import CodebookSpec


def haar_rotation(dim: int, seed: int) -> torch.Tensor:
    """A Haar-random orthogonal dim x dim matrix (fp32), turboquant-vllm's recipe.

    The Gaussian draws are torch's fp32 `randn` from a CPU generator seeded with
    `seed`; the QR runs in float64 (so LAPACK differences between machines do not
    reach the fp32 result) and each column of Q is multiplied by sign(diag(R)),
    a zero sign counting as +1.
    """
    generator = torch.Generator("cpu").manual_seed(seed)
    gaussian = torch.randn(dim, dim, generator=generator, dtype=torch.float32)
    q, r = torch.linalg.qr(gaussian.double())
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return (q * signs).float().contiguous()


class GaussianLaw:
    """N(0, sigma^2) with sigma = 1/sqrt(D): the usual approximation of a coordinate's law."""

    def __init__(self, dim: int):
        self.sigma = 1.0 / math.sqrt(dim)
        self.support = (-math.inf, math.inf)

    def _pdf(self, t: float) -> float:  # standard normal density at t/sigma, 0 at infinity
        z = t / self.sigma
        return 0.0 if math.isinf(z) else math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    def _cdf(self, t: float) -> float:
        return 0.5 * math.erfc(-t / (self.sigma * math.sqrt(2)))

    def moments(self, a: float, b: float) -> tuple[float, float, float]:
        """(mass, first moment, second moment) of the law on [a, b]."""
        s = self.sigma
        mass = self._cdf(b) - self._cdf(a)
        first = s * (self._pdf(a) - self._pdf(b))
        a_term = 0.0 if math.isinf(a) else a * self._pdf(a)
        b_term = 0.0 if math.isinf(b) else b * self._pdf(b)
        second = s * s * mass + s * (a_term - b_term)
        return mass, first, second


class BetaLaw:
    """The exact law of one coordinate of a uniform random unit vector in R^D:
    density C (1 - t^2)^((D-3)/2) on [-1, 1]."""

    _nodes, _weights = np.polynomial.legendre.leggauss(48)

    def __init__(self, dim: int):
        self.dim = dim
        self.sigma = 1.0 / math.sqrt(dim)
        self.support = (-1.0, 1.0)
        self.power = (dim - 3) / 2
        self.log_norm = math.lgamma(dim / 2) - 0.5 * math.log(math.pi) - math.lgamma((dim - 1) / 2)

    def _integral(self, a: float, b: float, degree: int) -> float:
        """Integral of t^degree times the density over [a, b], composite Gauss-Legendre."""
        a, b = max(a, -1.0), min(b, 1.0)
        if b <= a:
            return 0.0
        edges = np.linspace(a, b, 33)
        half = (edges[1:] - edges[:-1])[:, None] / 2
        t = (edges[1:] + edges[:-1])[:, None] / 2 + half * self._nodes[None, :]
        density = np.exp(self.log_norm + self.power * np.log1p(-t * t))
        return float(np.sum(half * self._weights[None, :] * density * t**degree))

    def moments(self, a: float, b: float) -> tuple[float, float, float]:
        return self._integral(a, b, 0), self._integral(a, b, 1), self._integral(a, b, 2)


def make_law(law: str, dim: int):
    return {"gaussian": GaussianLaw, "beta": BetaLaw}[law](dim)


@dataclass(frozen=True)
class Codebook:
    centroids: tuple[float, ...]  # fp32 values, ascending
    boundaries: tuple[float, ...]  # fp32 midpoints of adjacent centroids
    iterations: int


def lloyd_max(bits: int, dim: int, spec: CodebookSpec) -> Codebook:
    """Lloyd-Max quantizer for one coordinate of a rotated unit vector.

    Centroids start uniformly spread over +-support*sigma (+-3 sigma when the
    support is unbounded); each iteration puts the boundaries at the midpoints and
    every centroid at its cell's conditional mean, with the outer cells clipped to
    the support. Stops after `max_iterations` or once no centroid moves more than
    `tolerance`. With support 3, uniform start and 200 iterations this is
    turboquant-vllm's procedure. The result is made exactly symmetric.
    """
    law = make_law(spec.law, dim)
    levels = 1 << bits
    start = 3.0 if spec.support_sigmas is None else spec.support_sigmas
    if spec.support_sigmas is None:
        low, high = law.support
    else:
        low = max(law.support[0], -spec.support_sigmas * law.sigma)
        high = min(law.support[1], spec.support_sigmas * law.sigma)
    width = 2 * start * law.sigma
    centroids = [-start * law.sigma + width * (i + 0.5) / levels for i in range(levels)]
    iterations = 0
    for iterations in range(1, spec.max_iterations + 1):
        edges = [low] + [(a + b) / 2 for a, b in zip(centroids, centroids[1:])] + [high]
        moved = 0.0
        updated = []
        for i, old in enumerate(centroids):
            mass, first, _ = law.moments(edges[i], edges[i + 1])
            new = first / mass if mass > 0 else old
            moved = max(moved, abs(new - old))
            updated.append(new)
        centroids = updated
        if moved < spec.tolerance:
            break
    symmetric = [(c - m) / 2 for c, m in zip(centroids, reversed(centroids))]
    c32 = torch.tensor(symmetric, dtype=torch.float64).float()
    b32 = (c32[:-1] + c32[1:]) / 2
    return Codebook(tuple(c32.tolist()), tuple(b32.tolist()), iterations)


def expected_mse(codebook: Codebook, law: str, dim: int) -> float:
    """Expected ||x - x_hat||^2 of a unit vector: dim times one coordinate's distortion."""
    model = make_law(law, dim)
    edges = [model.support[0], *codebook.boundaries, model.support[1]]
    total = 0.0
    for i, c in enumerate(codebook.centroids):
        mass, first, second = model.moments(edges[i], edges[i + 1])
        total += second - 2 * c * first + c * c * mass
    return dim * total
