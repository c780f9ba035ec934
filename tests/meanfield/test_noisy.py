"""Noise: the Fokker-Planck equation and the kappa = 2 bifurcation of the noisy Kuramoto model."""

import numpy as np
import pytest
from scipy.special import iv

from dynamics.meanfield import (
    CircleDensity,
    critical_kappa,
    kuramoto_order,
    pde_order_parameter,
    solve_circle,
)
from dynamics.meanfield.noisy import bessel_ratio


def test_critical_kappa():
    assert critical_kappa(0.0) == pytest.approx(2.0)
    assert critical_kappa(0.0, "usa") == pytest.approx(2.0)
    beta = 1.3
    assert critical_kappa(beta, "usa") == pytest.approx(beta / iv(1, beta))
    assert critical_kappa(beta) == pytest.approx(beta * iv(0, beta) / iv(1, beta))
    assert critical_kappa(-beta) == pytest.approx(critical_kappa(beta))


@pytest.mark.parametrize("side", [0.9, 1.1])
def test_uniform_loses_stability_at_critical_kappa(side):
    beta = 1.0
    kappa = side * critical_kappa(beta)
    rho0 = CircleDensity.perturbed_uniform(1e-8, 8, seed=1, excited=1)
    times = np.linspace(0, 4, 5)
    sol = solve_circle(rho0, times, beta, "softmax", modes=16, kappa=kappa, atol=1e-22)
    slope = np.polyfit(times, np.log(np.abs(sol.coefficients[:, 1])), 1)[0]
    assert slope == pytest.approx(1 / critical_kappa(beta) - 1 / kappa, abs=1e-6)
    assert (slope > 0) == (side > 1)


def test_self_consistency_branch():
    for kappa in (0.5, 1.0, 2.0):
        assert kuramoto_order(kappa) == 0.0
    for kappa in (2.2, 3.0, 8.0):
        r = kuramoto_order(kappa)
        assert 0 < r < 1 and bessel_ratio(kappa * r) == pytest.approx(r, abs=1e-12)
    # supercritical pitchfork: r^2 ~ 8 (kappa - 2) / kappa^3
    kappa = 2.002
    assert kuramoto_order(kappa) ** 2 == pytest.approx(8 * (kappa - 2) / kappa**3, rel=5e-3)


@pytest.mark.parametrize("kappa", [1.5, 3.0, 4.0])
def test_fokker_planck_stationary_order_parameter(kappa):
    r = pde_order_parameter(kappa, horizon=100.0, modes=20)
    assert r == pytest.approx(kuramoto_order(kappa), abs=1e-6)
