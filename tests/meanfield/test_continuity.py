"""The spectral continuity / Fokker-Planck solver on the circle."""

import math
import warnings

import numpy as np
import pytest

from dynamics.meanfield import (
    AliasingWarning,
    CircleDensity,
    CircleMeanField,
    PositivityWarning,
    kuramoto_order,
    modes_needed,
    moment_hierarchy,
    ott_antonsen_order,
    pde_growth,
    solve_circle,
)
from dynamics.theory.circle import growth_rates


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
@pytest.mark.parametrize(("beta", "kappa"), [(-2.0, None), (0.0, None), (3.0, None), (1.0, 1.5)])
def test_uniform_density_is_stationary_with_rates_sigma_k(normalization, beta, kappa):
    """The uniform density is a fixed point of the discrete system, and its Jacobian there is
    diagonal with entries sigma_k - k^2/kappa (the linearisation of ``theory.circle``)."""
    sol = solve_circle(CircleDensity.uniform(24), [0.0, 5.0], beta, normalization, kappa=kappa)
    np.testing.assert_allclose(sol.coefficients[-1, 0], 1 / (2 * np.pi), rtol=1e-15)
    assert np.max(np.abs(sol.coefficients[-1, 1:])) < 1e-15
    field = CircleMeanField(beta, normalization, 24, kappa)
    uniform = CircleDensity.uniform(24).coefficients
    eps = 1e-7
    linear = np.zeros(25) if field.linear is None else field.linear
    for k in range(1, 9):
        c = uniform.copy()
        c[k] = eps
        response = (field(c) + linear * c) / eps
        expected = growth_rates(beta, k, normalization) - (0 if kappa is None else k**2 / kappa)
        assert response[k].real == pytest.approx(expected, rel=1e-6, abs=1e-9)
        others = np.delete(response, k)
        assert np.max(np.abs(others)) < 1e-5 * max(1.0, abs(expected))


def test_noisy_kuramoto_stationary_von_mises_is_a_fixed_point():
    """beta = 0, kappa > 2: rho = e^{kappa r cos theta} / (2 pi I_0(kappa r)) with
    r = I_1(kappa r)/I_0(kappa r) solves N(c) + L c = 0 (to the truncation of its series)."""
    kappa = 3.5
    r = kuramoto_order(kappa)
    rho = CircleDensity.von_mises(kappa * r, 0.0, modes=40)
    field = CircleMeanField(0.0, "usa", 40, kappa)
    residual = field(rho.coefficients) + field.linear * rho.coefficients
    assert np.max(np.abs(residual)) < 1e-14
    off = CircleDensity.von_mises(1.1 * kappa * r, 0.0, modes=40)  # not self-consistent
    assert np.max(np.abs(field(off.coefficients) + field.linear * off.coefficients)) > 1e-3


@pytest.mark.parametrize(("normalization", "beta"), [("softmax", 2.0), ("usa", -1.5)])
def test_mass_conserved_and_density_positive_while_resolved(rng, normalization, beta):
    rho0 = CircleDensity.von_mises(1.0, float(rng.uniform(0, 6)), modes=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = solve_circle(rho0, np.linspace(0, 1.5, 7), beta, normalization, modes=64)
    np.testing.assert_allclose(sol.mass, 1.0, atol=1e-13)
    assert sol.min_density.min() > 0
    assert sol.tail.max() < 1e-6
    # the density concentrates: the order parameter grows
    r = np.abs(sol.order_parameter())
    assert np.all(np.diff(r) > 0)


def test_unresolved_concentration_is_reported():
    rho0 = CircleDensity.von_mises(1.0, 0.0, modes=12)
    with pytest.warns(PositivityWarning, match="no longer resolved"):
        sol = solve_circle(rho0, np.linspace(0, 8, 5), 0.0, "usa", modes=12)
    np.testing.assert_allclose(sol.mass, 1.0, atol=1e-13)  # mass survives, positivity not
    assert sol.min_density[-1] < 0 and sol.tail[-1] > 1e-3
    with pytest.raises(RuntimeError, match="no longer resolved"):
        solve_circle(rho0, np.linspace(0, 8, 5), 0.0, "usa", modes=12, on_negative="raise")


@pytest.mark.parametrize(("normalization", "beta"),
                         [("softmax", 9.0), ("softmax", -3.0), ("usa", 2.5), ("usa", 0.0)])
def test_linear_growth_rates_of_every_mode(normalization, beta):
    m = pde_growth(beta, normalization, kmax=10)
    scale = max(1.0, float(np.abs(m.predicted).max()))
    np.testing.assert_allclose(m.measured, m.predicted, atol=1e-5 * scale)
    assert m.dominant_rate == m.dominant_predicted


def test_noise_shifts_each_rate_by_minus_k2_over_kappa():
    beta, kappa = 1.0, 3.0
    rho0 = CircleDensity.perturbed_uniform(1e-8, 16, seed=2, excited=6)
    times = np.linspace(0, 2, 9)
    sol = solve_circle(rho0, times, beta, "softmax", modes=16, kappa=kappa, atol=1e-22)
    k = np.arange(1, 7)
    slopes = np.polyfit(times, np.log(np.abs(sol.coefficients[:, 1:7])), 1)[0]
    expected = growth_rates(beta, k, "softmax") - k**2 / kappa
    np.testing.assert_allclose(slopes, expected, rtol=1e-5)


def test_beta_zero_ott_antonsen_closed_form(rng):
    """USA = SA = Kuramoto at beta = 0: wrapped Cauchy stays wrapped Cauchy, r^2 logistic."""
    r0, psi = float(rng.uniform(0.2, 0.4)), float(rng.uniform(-3, 3))
    times = np.linspace(0, 2.5, 6)
    start = CircleDensity.wrapped_cauchy(r0, psi, modes=160)
    sol = solve_circle(start, times, 0.0, "usa", rtol=1e-12, atol=1e-15)
    r = ott_antonsen_order(times, r0)
    np.testing.assert_allclose(np.abs(sol.order_parameter()), r, atol=1e-10)
    np.testing.assert_allclose(np.angle(sol.order_parameter()), psi, atol=1e-10)
    final = CircleDensity.wrapped_cauchy(float(r[-1]), psi, modes=sol.modes).coefficients
    np.testing.assert_allclose(sol.coefficients[-1], final, atol=1e-12)
    sa = solve_circle(start, times, 0.0, "softmax", rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sa.coefficients, sol.coefficients, atol=1e-12)


def test_beta_zero_moment_hierarchy_off_the_ott_antonsen_manifold():
    """dz_1/dt = (z_1 - conj(z_1) z_2)/2 holds for the solver's right-hand side, from a von Mises
    start where z_2 != z_1^2: the first mode alone is not closed."""
    rho = CircleDensity.von_mises(1.3, 0.4, modes=40)
    rhs = CircleMeanField(0.0, "usa", 40)(rho.coefficients)
    z = 2 * np.pi * np.conj(rho.coefficients)
    dz = 2 * np.pi * np.conj(rhs)
    np.testing.assert_allclose(dz[1:40], moment_hierarchy(z), atol=1e-14)
    assert abs(z[2] - z[1] ** 2) > 0.05


def test_three_halves_rule_dealiases_usa_exactly(rng):
    rho = CircleDensity.von_mises(2.0, float(rng.uniform(0, 6)), modes=20)
    tight = CircleMeanField(1.5, "usa", 20, grid_size=61)(rho.coefficients)
    wide = CircleMeanField(1.5, "usa", 20, grid_size=400)(rho.coefficients)
    np.testing.assert_allclose(tight, wide, atol=1e-15)
    aliased = CircleMeanField(1.5, "usa", 20, grid_size=61)
    with pytest.raises(ValueError, match="3/2 rule"):
        CircleMeanField(1.5, "usa", 20, grid_size=60)
    assert aliased.grid_size == 61


def test_rotating_the_start_rotates_the_solution(rng):
    alpha = float(rng.uniform(0, 2 * np.pi))
    rho = CircleDensity.from_function(
        lambda t: (1 + 0.5 * np.cos(t) + 0.3 * np.sin(3 * t)) / (2 * np.pi), 48)
    turned = CircleDensity.from_function(
        lambda t: (1 + 0.5 * np.cos(t - alpha) + 0.3 * np.sin(3 * (t - alpha))) / (2 * np.pi), 48)
    a = solve_circle(rho, [0, 1.0], 2.0, "softmax", modes=48)
    b = solve_circle(turned, [0, 1.0], 2.0, "softmax", modes=48)
    k = np.arange(49)
    np.testing.assert_allclose(b.coefficients[-1], a.coefficients[-1] * np.exp(-1j * k * alpha),
                               atol=1e-9)


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match=r"nonnegative.*-0\.0637 at theta = 3\.142"):
        solve_circle(CircleDensity(np.array([1, 0.7, 0]) / (2 * np.pi)), [0, 1], 1.0)
    with pytest.raises(ValueError, match="NaN"):
        solve_circle(np.full(32, np.nan), [0, 1], 1.0)
    with pytest.raises(ValueError, match="nonnegative"):
        solve_circle(np.r_[-1.0, np.full(31, 1.0)], [0, 1], 1.0)
    with pytest.raises(ValueError, match="integrates to"):
        solve_circle(np.ones(32), [0, 1], 1.0)
    with pytest.raises(ValueError, match="normalization"):
        solve_circle(CircleDensity.uniform(8), [0, 1], 1.0, "hardmax")
    with pytest.raises(ValueError, match="kappa"):
        solve_circle(CircleDensity.uniform(8), [0, 1], 1.0, kappa=-1.0)
    with pytest.raises(ValueError, match="finite"):
        solve_circle(CircleDensity.uniform(8), [0, 1], math.nan)
    needed = modes_needed(20.0)
    with pytest.warns(AliasingWarning, match=f"use modes >= {needed}"):
        solve_circle(CircleDensity.uniform(8), [0, 0.1], 20.0, modes=8)
