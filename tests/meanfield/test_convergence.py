"""Particles -> PDE: quantile particles follow the characteristics; Dobrushin's constants.
(W1 against n, ``mean_field_gap``: tests/paper_repro/test_mf_convergence.py.)"""

import math

import numpy as np
import pytest

from dynamics import CircleSA, Kuramoto, simulate
from dynamics.meanfield import (
    CircleDensity,
    CircleMeanField,
    dobrushin_rate,
    lipschitz_constants,
    solve_circle,
    w1_circle,
)

START = CircleDensity.from_function(
    lambda t: (1 + 0.6 * np.cos(t) + 0.3 * np.cos(2 * t + 1)) / (2 * np.pi), 32
)


@pytest.mark.parametrize(("field", "beta", "normalization"), [
    (Kuramoto(), 0.0, "usa"),  # beta = 0: the independent Kuramoto field (7.2), K = 1
    (CircleSA(-1.5), -1.5, "softmax"),
])
def test_quantile_particles_stay_at_the_pdes_quantiles(field, beta, normalization):
    """n particles at the quantiles of rho_0 follow the PDE's characteristics: W1 between them
    and rho(t) stays that of the quantiles of a smooth density, pi/(2n) (to a periodic
    midpoint rule, spectrally small), at every t while the density is resolved."""
    times = np.array([0.0, 1.0, 2.5])
    pde = solve_circle(START, times, beta, normalization, modes=64)
    assert pde.min_density.min() > 0
    for n, tol in ((40, 1e-3), (160, 1e-5)):
        x0 = START.sample(0, 1, n, quantiles=True)
        states = np.asarray(simulate(field, x0, times, method="dopri5", rtol=1e-10,
                                     atol=1e-12).states)[0]
        w1 = np.array([w1_circle(states[j], pde.density(j), grid_size=16384)
                       for j in range(times.size)])
        np.testing.assert_allclose(n * w1, np.pi / 2, atol=tol)
    moved = np.abs(pde.order_parameter()[-1]) - np.abs(pde.order_parameter()[0])
    assert moved > 0.1  # the density changed a lot meanwhile


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_dobrushin_rate_is_two_at_beta_zero(normalization):
    assert dobrushin_rate(0.0, normalization) == pytest.approx(2.0, abs=1e-9)


@pytest.mark.parametrize("beta", [-3.0, -1.0, 0.5, 2.0])
def test_usa_lipschitz_constant_is_e_to_the_abs_beta(beta):
    # ||K'||_inf with K' = -(cos x - beta sin^2 x) e^{beta cos x} is reached at x = 0 or pi
    a, b = lipschitz_constants(beta, "usa")
    assert a == b == pytest.approx(math.exp(abs(beta)), rel=1e-10)


def _velocity(beta, theta, probes, normalization):
    """(7.1) at massless probe angles: the mean (USA) or the softmax average (SA) of
    e^{beta cos(p - theta_j)} sin(theta_j - p)."""
    weights = np.exp(beta * np.cos(probes[:, None] - theta))
    pull = np.sum(weights * np.sin(theta - probes[:, None]), axis=1)
    return pull / (theta.size if normalization == "usa" else weights.sum(axis=1))


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_lipschitz_constants_bound_the_fields(rng, normalization):
    """a >= |d_theta v_mu| for concentrated empirical mu, and b >= sup|v_mu - v_nu| / W1(mu, nu)."""
    beta = float(rng.uniform(-2, 2))
    a, b = lipschitz_constants(beta, normalization)
    nu = CircleDensity.von_mises(1.0, 0.0, modes=40)
    grid = 2 * np.pi * np.arange(2000) / 2000
    v_nu = CircleMeanField(beta, normalization, 40, grid_size=2000).velocity(nu.coefficients)
    np.testing.assert_allclose(  # the spectral velocity is the field of the density
        v_nu[::100], _velocity(beta, nu.sample(0, 1, 4000, quantiles=True)[0], grid[::100],
                                normalization),
        atol=0.01)
    for _ in range(5):
        theta = rng.normal(float(rng.uniform(-3, 3)), float(rng.uniform(0.1, 2)), 30)
        v_mu = _velocity(beta, theta, grid, normalization)
        slope = np.max(np.abs(np.diff(v_mu))) / (grid[1] - grid[0])
        assert slope <= a * (1 + 1e-3)
        assert np.max(np.abs(v_mu - v_nu)) <= b * w1_circle(theta, nu) * (1 + 1e-3)
