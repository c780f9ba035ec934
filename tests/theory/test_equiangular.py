"""The equiangular ODE (6.9)/(6.10): closed form, crossing times, phase boundary, Thm 6.9."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dynamics import SA, USA, gram, simulate
from dynamics.theory import (
    consensus_rate,
    crossing_time,
    crossing_time_beta0,
    equiangular_beta0,
    equiangular_rhs,
    gap_bound_d8,
    pair_bound_d15,
    phase_boundary_betas,
    phase_boundary_times,
    solve_equiangular,
    theorem_6_9_dimension,
    theorem_6_9_rate,
    usa_gap_bound,
)


def equiangular_tokens(n, d, rho):
    """n unit vectors of R^d (d >= n) with pairwise inner products rho."""
    g = (1 - rho) * np.eye(n) + rho * np.ones((n, n))
    x = np.zeros((1, n, d))
    x[0, :, :n] = np.linalg.cholesky(g)
    return x


def test_rhs_is_the_printed_formula(rng):
    gamma = rng.uniform(-0.05, 1.0, size=20)
    for n, beta in [(32, 0.0), (5, 2.3), (12, 7.0)]:
        sa = (
            2 * np.exp(beta * gamma) * (1 - gamma) * ((n - 1) * gamma + 1)
            / (np.exp(beta) + (n - 1) * np.exp(beta * gamma))
        )
        usa = (2 / n) * np.exp(beta * gamma) * (1 - gamma) * ((n - 1) * gamma + 1)
        np.testing.assert_allclose(equiangular_rhs(gamma, beta, n), sa, rtol=1e-13)
        np.testing.assert_allclose(equiangular_rhs(gamma, beta, n, "usa"), usa, rtol=1e-13)


@pytest.mark.parametrize("rho0", [0.0, 0.35, -0.02])
def test_beta0_closed_form_solves_the_ode(rho0):
    n = 8
    times = np.linspace(0.0, 12.0, 49)
    exact = equiangular_beta0(times, n, rho0)
    for normalization in ("softmax", "usa"):
        numeric = solve_equiangular(times, 0.0, n, rho0=rho0, normalization=normalization)
        np.testing.assert_allclose(numeric.gamma, exact.gamma, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(numeric.gap, exact.gap, rtol=1e-9)
    assert exact.gamma[0] == pytest.approx(rho0, abs=1e-15)
    # n = 2, rho0 = 0: gamma = tanh t
    np.testing.assert_allclose(equiangular_beta0(times, 2).gamma, np.tanh(times), rtol=1e-13)


def test_crossing_time_at_beta0_is_the_paper_value():
    assert crossing_time_beta0(32, 1e-3) == pytest.approx(5.1863, abs=5e-5)
    assert crossing_time(0.0, 32, 1e-3) == pytest.approx(crossing_time_beta0(32, 1e-3), rel=1e-11)
    assert crossing_time(0.0, 32, 1e-3, normalization="usa") == pytest.approx(5.1863, abs=5e-5)
    # the explicit form of paper section 11, item 2
    assert crossing_time_beta0(32, 1e-3) == pytest.approx(0.5 * math.log((1 + 0.999 * 31) / 1e-3))


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_quadrature_crossing_matches_an_event_located_ode_solve(normalization):
    n, delta = 16, 1e-3
    for beta, rho0 in [(0.5, 0.0), (3.0, 0.2), (7.0, -0.03)]:
        def rhs(_t, y, beta=beta):
            return equiangular_rhs(y, beta, n, normalization)

        def hit(_t, y):
            return y[0] - (1 - delta)

        hit.terminal = True
        sol = solve_ivp(
            rhs, (0.0, 1e4), [rho0], events=hit, method="DOP853", rtol=1e-12, atol=1e-14
        )
        t_event = sol.t_events[0][0]
        t_quad = crossing_time(beta, n, delta, rho0=rho0, normalization=normalization)
        assert t_quad == pytest.approx(t_event, rel=1e-8)


def test_equiangular_reduction_of_the_particle_flow():
    """Thm 6.8: an equiangular start stays equiangular and follows (6.9) / (6.10)."""
    n, d, beta, rho0 = 5, 6, 2.0, 0.1
    x0 = equiangular_tokens(n, d, rho0)
    times = np.linspace(0.0, 2.0, 11)
    off = ~np.eye(n, dtype=bool)
    for field, normalization in [(SA(beta), "softmax"), (USA(beta), "usa")]:
        traj = simulate(field, x0, times, method="rk4", dt=1e-2)
        inner = gram(traj.values[0])[:, off]
        assert np.max(np.ptp(inner, axis=1)) < 1e-10
        curve = solve_equiangular(times, beta, n, rho0=rho0, normalization=normalization)
        np.testing.assert_allclose(inner[:, 0], curve.gamma, atol=1e-7)


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_linear_rate_at_consensus(normalization):
    n, beta = 32, 1.5
    rate = consensus_rate(beta, normalization)
    assert rate == (2.0 if normalization == "softmax" else pytest.approx(2 * math.exp(beta)))
    h = 1e-6
    slope = (equiangular_rhs(1.0 - h, beta, n, normalization) - 0.0) / h
    assert slope == pytest.approx(rate, rel=1e-4)
    t0 = 30.0 if normalization == "softmax" else 8.0
    sol = solve_equiangular([t0, t0 + 1.0], beta, n, normalization=normalization)
    assert sol.gap[1] / sol.gap[0] == pytest.approx(math.exp(-rate), rel=1e-8)


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_phase_boundary_inverse_consistency(normalization):
    n, delta = 32, 1e-3
    betas = np.array([0.3, 1.0, 2.5, 4.0, 6.5, 9.0])
    tstar = phase_boundary_times(betas, n, delta, normalization=normalization)
    diffs = np.diff(tstar)
    assert np.all(diffs > 0) if normalization == "softmax" else np.all(diffs < 0)
    back = phase_boundary_betas(tstar, n, delta, normalization=normalization)
    np.testing.assert_allclose(back, betas, rtol=1e-8)
    # on the curve, gamma_beta(t*) = 1 - delta
    for b, t in zip(betas[:3], tstar[:3], strict=True):
        gap = solve_equiangular([0.0, t], b, n, normalization=normalization).gap[-1]
        assert gap == pytest.approx(delta, rel=1e-8)
    # outside the range: nothing has clustered yet (SA) / everything has (USA)
    t0 = crossing_time_beta0(n, delta)
    outside = t0 - 0.5 if normalization == "softmax" else t0 + 0.5
    assert np.isnan(phase_boundary_betas([outside], n, delta, normalization=normalization)[0])


def test_theorem_6_9_bounds_hold_along_the_curve():
    times = np.linspace(0.0, 40.0, 401)
    for n in (3, 8, 32):
        for beta in (0.0, 1.0, 3.0):
            gap = solve_equiangular(times, beta, n).gap
            bound = gap_bound_d8(times, beta, n)
            assert np.all(gap <= bound)
            g = solve_equiangular([0.0, 1 / n], beta, n).gamma[-1]
            first = np.exp((1 - g * times) / (2 * n * math.exp(2 * beta)))
            np.testing.assert_allclose(pair_bound_d15(times, beta, n), first + bound, rtol=1e-12)
    # the n = 2, beta = 0 exception: 1 - gamma(0) = 1 > e^{2/3}/2
    assert gap_bound_d8(0.0, 0.0, 2) < 1.0
    # Remark D.1 (USA): gamma(n/2) >= 1/2 and the bound for t >= n/2
    for n, beta in [(2, 0.0), (5, 1.0), (12, 2.0)]:
        t = np.linspace(n / 2, n / 2 + 6, 61)
        sol = solve_equiangular(np.r_[0.0, t], beta, n, normalization="usa")
        assert sol.gamma[1] >= 0.5
        assert np.all(sol.gap[1:] <= usa_gap_bound(t, beta, n))


def test_theorem_6_9_rate_and_dimension():
    # n = 2, beta = 0: gamma_0(1/2) = tanh(1/2), lambda = min(tanh(1/2)/4, 2/3)
    assert theorem_6_9_rate(0.0, 2) == pytest.approx(math.tanh(0.5) / 4, rel=1e-10)
    beta, n = 1.0, 4
    g = solve_equiangular([0.0, 1 / n], beta, n).gamma[-1]
    k = 16 * math.exp(20) / g**2
    d = theorem_6_9_dimension(beta, n)
    assert d / math.log(d) == pytest.approx(k, rel=1e-10)
    assert d > k


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="rho0"):
        solve_equiangular([0.0, 1.0], 1.0, 4, rho0=-0.5)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        crossing_time(1.0, 1)
    with pytest.raises(ValueError, match="delta"):
        crossing_time(1.0, 8, delta=1.5)
    with pytest.raises(ValueError, match="non-decreasing"):
        solve_equiangular([1.0, 0.5], 1.0, 4)
    with pytest.raises(ValueError, match="monotone"):
        phase_boundary_betas([1.0], 8, normalization="usa", rho0=-0.05)
    with pytest.raises(ValueError, match="normalization"):
        equiangular_rhs(0.5, 1.0, 4, "sinkhorn")
