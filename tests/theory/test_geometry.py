"""Wendel's theorem, tau*_beta, the causal peak and the long-context single layer."""

import math

import numpy as np
import pytest

from attention.reference import attention_weights
from dynamics.theory import (
    beta_for_tau_star,
    causal_peak,
    causal_profile,
    critical_scaling,
    equiangular_layer_cosine,
    hemisphere_probability,
    hessian_kernel,
    in_open_hemisphere,
    large_beta_threshold,
    lemma_6_4_rate,
    long_context_cosine,
    long_context_limit,
    tau_star,
    wendel_probability,
)


def test_wendel_values():
    assert wendel_probability(4, 3) == 0.875
    assert wendel_probability(10, 3) == pytest.approx(0.0898, abs=5e-5)
    assert wendel_probability(32, 16) == 0.5
    assert wendel_probability(32, 2) == pytest.approx(1.49e-8, rel=1e-2)
    assert wendel_probability(32, 8) == pytest.approx(1.66e-3, rel=1e-2)
    assert wendel_probability(32, 32) == 1.0
    assert wendel_probability(5, 9) == 1.0
    # Pascal recursion: P(n, d) = (P(n-1, d) + P(n-1, d-1)) / 2
    for n, d in [(7, 3), (12, 5), (20, 11)]:
        pascal = (wendel_probability(n - 1, d) + wendel_probability(n - 1, d - 1)) / 2
        assert wendel_probability(n, d) == pytest.approx(pascal, rel=1e-15)


def test_hemisphere_lp_agrees_with_the_circle_gap_criterion(rng):
    # d = 2: points lie in an open half-plane iff some circular gap between them exceeds pi
    x = rng.standard_normal((200, 5, 2))
    angles = np.sort(np.arctan2(x[..., 1], x[..., 0]), axis=-1)
    gaps = np.diff(np.concatenate([angles, angles[:, :1] + 2 * np.pi], axis=-1), axis=-1)
    np.testing.assert_array_equal(in_open_hemisphere(x), gaps.max(axis=-1) > np.pi)
    assert 0 < np.mean(gaps.max(axis=-1) > np.pi) < 1


@pytest.mark.parametrize(("n", "d"), [(4, 3), (6, 3), (7, 4), (32, 16)])
def test_monte_carlo_hemisphere_probability_matches_wendel(rng, n, d):
    estimate, se = hemisphere_probability(n, d, samples=250, seed=rng)
    assert abs(estimate - wendel_probability(n, d)) < 4 * se + 1e-3


def test_hemisphere_examples():
    basis = np.eye(3)[None]  # w = (1, 1, 1) has <e_i, w> > 0
    assert in_open_hemisphere(basis)[0]
    antipodal = np.array([[[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]])
    assert not in_open_hemisphere(antipodal)[0]  # only a closed hemisphere contains them


def test_tau_star_solves_its_equation_and_scales_like_inverse_sqrt_beta():
    for d in (2, 3, 8):
        betas = np.array([1e-3, 0.5, 2.0, 6.0, 50.0, 1e4])
        tau = tau_star(betas, d)
        np.testing.assert_allclose(
            betas * np.sin(tau) ** 2, (d - 1) * np.cos(tau), rtol=1e-12, atol=1e-15
        )
        np.testing.assert_allclose(beta_for_tau_star(tau, d), betas, rtol=1e-10)
        assert tau_star(1e10, d) * math.sqrt(1e10) == pytest.approx(math.sqrt(d - 1), rel=1e-8)
    assert tau_star(0.0) == pytest.approx(math.pi / 2)


def test_hessian_kernel_changes_sign_at_tau_star():
    for beta in (2.0, 6.0):
        for d in (2, 4):
            t = tau_star(beta, d)
            assert hessian_kernel(t, beta, d) == pytest.approx(0.0, abs=1e-12)
            inside = np.linspace(-t, t, 101)[1:-1]
            beyond = np.linspace(t, np.pi, 101)[1:]
            outside = np.concatenate([beyond, -beyond])
            assert np.all(hessian_kernel(inside, beta, d) > 0)
            assert np.all(hessian_kernel(outside, beta, d) < 0)


def test_large_beta_threshold_and_cone_rate():
    assert large_beta_threshold(32) == pytest.approx(1024 / math.pi**2)
    # the exact solution of (n - 1) tau* = pi/2 is about four times n^2 / pi^2
    for n in (32, 1000):
        exact = beta_for_tau_star(math.pi / (2 * (n - 1)))
        assert (n - 1) * tau_star(exact) == pytest.approx(math.pi / 2, rel=1e-12)
    assert exact / large_beta_threshold(1000) == pytest.approx(4.0, rel=1e-2)
    # Lemma 6.4 uses e^{2 beta} (6.7), not the e^beta of the printed (6.8)
    assert lemma_6_4_rate(1.5, 4) == pytest.approx(1 / (8 * math.exp(3.0)), rel=1e-15)


def test_causal_peak():
    for beta in (0.5, 4.0, 64.0):
        tau = causal_peak(beta)
        assert math.cos(tau) == pytest.approx((-1 + math.sqrt(4 * beta**2 + 1)) / (2 * beta))
        assert (beta + 0.5) ** -0.5 < tau < beta**-0.5
        grid = np.linspace(0.0, np.pi, 200_001)
        assert grid[np.argmax(causal_profile(grid, beta))] == pytest.approx(tau, abs=2e-5)


def test_long_context_values_of_the_paper():
    rho = 0.5
    gc = critical_scaling(rho)
    assert gc == 2.0
    got3 = [long_context_cosine(10**3, g, rho) for g in (gc / 2, gc, 2 * gc)]
    np.testing.assert_allclose(got3, [0.9991, 0.8003, 0.5005], atol=5e-5)
    got5 = [long_context_cosine(10**5, g, rho) for g in (gc / 2, gc, 2 * gc)]
    np.testing.assert_allclose(got5, [1.0, 0.8, 0.5], atol=5e-5)
    for r in (0.2, 0.5, 0.9):
        limits = [long_context_limit(g, r) for g in (0.5 / (1 - r), 1 / (1 - r), 2 / (1 - r))]
        assert limits == pytest.approx([1.0, 4 * r / (1 + 3 * r), r])
        got = [long_context_cosine(10**9, g, r) for g in (0.5 / (1 - r), 1 / (1 - r), 2 / (1 - r))]
        np.testing.assert_allclose(got, limits, atol=1e-3)


def test_exact_layer_cosine_matches_explicit_attention(rng):
    n, rho = 40, 0.3
    g = (1 - rho) * np.eye(n) + rho * np.ones((n, n))
    basis = np.linalg.qr(rng.standard_normal((n + 3, n)))[0]  # random embedding in R^{n+3}
    x = np.linalg.cholesky(g) @ basis.T
    for beta in (0.7, math.log(n) * 1.3, 9.0):
        a = attention_weights(x, x, beta)
        y = a @ x
        y = y / np.linalg.norm(y, axis=-1, keepdims=True)
        cos = (y @ y.T)[~np.eye(n, dtype=bool)]
        assert np.ptp(cos) < 1e-12
        assert equiangular_layer_cosine(n, beta, rho) == pytest.approx(cos[0], rel=1e-12)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="n must be an integer"):
        wendel_probability(0, 3)
    with pytest.raises(ValueError, match="shape"):
        in_open_hemisphere(np.ones((4, 3)))
    with pytest.raises(ValueError, match=">= 0"):
        tau_star(-1.0)
    with pytest.raises(ValueError, match="rho"):
        long_context_cosine(100, 1.0, 1.0)
    with pytest.raises(ValueError, match="tau"):
        beta_for_tau_star(2.0)
