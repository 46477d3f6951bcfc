"""Build-time constants: the Haar rotation and the Lloyd-Max codebooks."""

import math

import pytest
import torch

from kernelgen.constants import BetaLaw, GaussianLaw, expected_mse, haar_rotation, lloyd_max
from kernelgen.spec import CodebookSpec

TURBOQUANT = CodebookSpec(law="gaussian", support_sigmas=3.0, init="uniform", max_iterations=200, tolerance=1e-10)
CONVERGED = CodebookSpec(law="gaussian", support_sigmas=None, init="uniform", max_iterations=20000, tolerance=1e-13)
# Max (1960) / the TurboQuant paper: MSE of a unit vector with a Gaussian Lloyd-Max codebook.
LLOYD_MAX_MSE = {1: 0.3634, 2: 0.1175, 3: 0.03454, 4: 0.009497}


@pytest.mark.parametrize("dim", [64, 96, 128])
def test_rotation_is_orthogonal_and_deterministic(dim):
    r = haar_rotation(dim, 42)
    assert r.dtype == torch.float32 and r.shape == (dim, dim)
    torch.testing.assert_close(r.double() @ r.double().T, torch.eye(dim, dtype=torch.float64), atol=2e-6, rtol=0)
    assert torch.equal(r, haar_rotation(dim, 42))
    assert not torch.equal(r, haar_rotation(dim, 43))


@pytest.mark.parametrize("dim", [64, 128])
def test_rotation_equals_turboquant_vllm_recipe_to_fp32_rounding(dim):
    # Their recipe, all in fp32: randn from a CPU generator seeded 42, QR, columns times sign(diag(R)).
    g = torch.Generator("cpu").manual_seed(42)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    d = torch.sign(torch.diagonal(r))
    d[d == 0] = 1
    theirs = q * d
    torch.testing.assert_close(haar_rotation(dim, 42), theirs, atol=5e-6, rtol=0)


def test_turboquant_codebook_stops_at_200_iterations_before_converging():
    # ANCHORS: for 4 bits their 200-iteration solver differs from a converged one by up to 3.4e-5 at D=64.
    ours = lloyd_max(4, 64, TURBOQUANT)
    assert ours.iterations == 200
    converged = lloyd_max(4, 64, CodebookSpec("gaussian", 3.0, "uniform", 100000, 1e-10))
    gap = max(abs(a - b) for a, b in zip(ours.centroids, converged.centroids))
    assert 3.2e-5 < gap < 3.6e-5


def test_gaussian_codebook_scales_with_one_over_sqrt_dim():
    a = torch.tensor(lloyd_max(4, 64, TURBOQUANT).centroids) * 8
    b = torch.tensor(lloyd_max(4, 256, TURBOQUANT).centroids) * 16
    torch.testing.assert_close(a, b, rtol=1e-6, atol=0)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_codebook_is_symmetric_sorted_with_midpoint_boundaries(bits):
    cb = lloyd_max(bits, 128, TURBOQUANT)
    c = torch.tensor(cb.centroids)
    assert len(cb.centroids) == 2**bits and len(cb.boundaries) == 2**bits - 1
    assert torch.all(c[1:] > c[:-1])
    assert torch.equal(c, -c.flip(0))
    torch.testing.assert_close(torch.tensor(cb.boundaries), (c[1:] + c[:-1]) / 2, rtol=0, atol=0)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_converged_gaussian_codebook_has_lloyd_max_distortion(bits):
    cb = lloyd_max(bits, 128, CONVERGED)
    assert expected_mse(cb, "gaussian", 128) == pytest.approx(LLOYD_MAX_MSE[bits], rel=2e-3)


@pytest.mark.parametrize("dim", [16, 64, 256])
def test_beta_law_is_a_probability_law_with_variance_one_over_d(dim):
    mass, first, second = BetaLaw(dim).moments(-1.0, 1.0)
    assert mass == pytest.approx(1.0, abs=1e-9)
    assert first == pytest.approx(0.0, abs=1e-12)
    assert second == pytest.approx(1.0 / dim, rel=1e-9)
    g_mass, _, g_second = GaussianLaw(dim).moments(-math.inf, math.inf)
    assert (g_mass, g_second) == pytest.approx((1.0, 1.0 / dim), rel=1e-12)


def test_beta_codebook_beats_gaussian_codebook_under_the_true_law():
    beta = lloyd_max(3, 64, CodebookSpec("beta", None, "uniform", 5000, 1e-12))
    gauss = lloyd_max(3, 64, CONVERGED)
    assert expected_mse(beta, "beta", 64) < expected_mse(gauss, "beta", 64)
