"""d >= 3: zonal densities through Gegenbauer moments, against the circle solver and particles."""

import math
import warnings

import numpy as np
import pytest

from dynamics import SA, USA, simulate
from dynamics.meanfield import (
    AliasingWarning,
    CircleDensity,
    particle_moments,
    ring_points,
    sample_zonal,
    solve_circle,
    solve_zonal,
    zonal_modes_needed,
    zonal_moments,
    zonal_quantiles,
)
from dynamics.meanfield.gegenbauer import (
    funk_hecke_exponential,
    harmonic_dimension,
    polynomials,
    quadrature,
)
from dynamics.meanfield.zonal import ZonalMeanField


@pytest.mark.parametrize("d", [2, 3, 4, 6])
def test_normalised_gegenbauer_orthogonality(d):
    s, w = quadrature(40, d)
    P, dP = polynomials(8, d, s)
    dims = harmonic_dimension(np.arange(9), d)
    np.testing.assert_allclose((P * w) @ P.T, np.diag(1 / dims), atol=1e-13)
    np.testing.assert_allclose(polynomials(8, d, np.array(1.0))[0], 1.0, rtol=1e-13)
    closed = {2: [1] + [2] * 8, 3: 2 * np.arange(9) + 1, 4: (np.arange(9) + 1) ** 2}
    if d in closed:
        np.testing.assert_allclose(dims, closed[d])
    h = 1e-6
    numeric = (polynomials(8, d, s + h)[0] - polynomials(8, d, s - h)[0]) / (2 * h)
    np.testing.assert_allclose(dP, numeric, atol=1e-7)


@pytest.mark.parametrize("d", [3, 5])
@pytest.mark.parametrize("beta", [-4.0, -0.5, 0.0, 0.7, 3.0])
def test_funk_hecke_closed_form_against_quadrature(d, beta):
    mu, nu = funk_hecke_exponential(beta, 10, d, scaled=False)
    s, w = quadrature(60, d)
    P, _ = polynomials(10, d, s)
    np.testing.assert_allclose(mu, P @ (w * np.exp(beta * s)), atol=1e-13 * math.exp(abs(beta)))
    potential = np.expm1(beta * s) / beta if beta else s  # e^{beta s}/beta minus a constant
    expected = P @ (w * potential)
    expected[0] = 0.0
    np.testing.assert_allclose(nu, expected, atol=1e-13 * math.exp(abs(beta)))


@pytest.mark.parametrize(("normalization", "beta"), [("softmax", 3.0), ("usa", -1.0)])
def test_d2_zonal_solver_is_the_circle_solver_on_even_densities(normalization, beta):
    """Two independent discretisations: Chebyshev moments vs Fourier coefficients."""
    rho = CircleDensity.von_mises(1.5, 0.0, modes=64)
    times = np.linspace(0, 1.5, 4)
    circle = solve_circle(rho, times, beta, normalization, modes=64)
    zonal = solve_zonal(2 * np.pi * rho.coefficients.real, times, beta, 2, normalization)
    np.testing.assert_allclose(zonal.moments, 2 * np.pi * circle.coefficients.real, atol=1e-8)


def test_usa_beta_zero_first_moment_equation(rng):
    """beta = 0: x_dot = m - <x, m> x with m = a_1 e, so a_1' = a_1 (1 - E s^2) and
    E s^2 = ((d - 1) a_2 + 1) / d."""
    d = 4
    a = np.r_[1.0, rng.uniform(-0.3, 0.3, 6)]
    rhs = ZonalMeanField(0.0, d, "usa", 6)(a)
    second = ((d - 1) * a[2] + 1) / d
    assert rhs[1] == pytest.approx(a[1] * (1 - second), abs=1e-14)
    assert rhs[0] == 0.0


def test_noise_on_the_sphere_critical_kappa_is_d():
    """beta = 0 with noise sqrt(2/kappa): a_1 grows at (d - 1)(1/d - 1/kappa) near uniform."""
    d = 3
    a0 = np.zeros(9)
    a0[0], a0[1] = 1.0, 1e-8
    times = np.linspace(0, 3, 4)
    for kappa in (0.8 * d, 1.25 * d):
        sol = solve_zonal(a0, times, 0.0, d, "usa", kappa=kappa, atol=1e-22)
        slope = np.polyfit(times, np.log(sol.moments[:, 1]), 1)[0]
        assert slope == pytest.approx((d - 1) * (1 / d - 1 / kappa), abs=1e-6)


def _tilted(s):
    return 1 + 0.8 * s


@pytest.mark.parametrize(("normalization", "beta", "horizon"), [("softmax", 2.0, 2.5),
                                                                 ("usa", -1.0, 1.5)])
def test_symmetric_rings_converge_to_the_zonal_pde_on_s2(normalization, beta, horizon):
    """p-gons at the m quantile latitudes of f stay p-gons (symmetry), so their zonal law is
    that of m latitudes: the moments converge to the PDE's as m grows (O(1/m))."""
    d = 3
    a0 = zonal_moments(_tilted, 24, d)
    times = np.linspace(0, horizon, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pde = solve_zonal(a0, times, beta, d, normalization)
    field = SA(beta) if normalization == "softmax" else USA(beta)
    errors = []
    for m in (24, 96):
        x0 = ring_points(zonal_quantiles(_tilted, m, d), 12)[None]
        traj = simulate(field, x0, times, method="dopri5", rtol=1e-9, atol=1e-11)
        moments = particle_moments(traj.states, 3)[0]  # (T, 4)
        errors.append(np.abs(moments - pde.moments[:, :4]).max())
    assert errors[1] < 3e-3 and errors[1] < errors[0] / 3
    assert abs(pde.moments[-1, 1] - a0[1]) > 0.2  # the measure really moved
    assert pde.min_density.min() >= 0


def test_random_particles_follow_the_zonal_pde_on_s3(rng):
    """d = 4, USA at beta = -1: 4 x 500 i.i.d. particles agree with the PDE within a few
    standard errors of their own moments (no symmetric configuration is used here)."""
    d, times = 4, np.linspace(0, 1.0, 3)
    pde = solve_zonal(zonal_moments(_tilted, 20, d), times, -1.0, d, "usa")
    x0 = sample_zonal(_tilted, rng, 4, 500, d, bound=1.8)
    traj = simulate(USA(-1.0), x0, times, method="dopri5", rtol=1e-8)
    P, _ = polynomials(3, d, np.asarray(traj.states)[..., -1])  # (4, batch, T, n)
    samples = np.moveaxis(P, 2, 0).reshape(times.size, 4, -1)  # (T, l, batch * n)
    error = np.abs(samples.mean(axis=-1) - pde.moments[:, :4])[:, 1:]
    standard = samples.std(axis=-1)[:, 1:] / np.sqrt(samples.shape[-1])
    assert np.all(error < 6 * standard)
    assert abs(pde.moments[-1, 1] - pde.moments[0, 1]) > 10 * standard.max()


def test_zonal_quantiles_closed_form(rng):
    """On S^2, s = <x, e> has density (1 + 0.8 s)/2: G(s) = (s + 1)/2 + 0.2 (s^2 - 1)."""
    m = int(rng.integers(3, 40))
    s = zonal_quantiles(_tilted, m, 3)
    np.testing.assert_allclose((s + 1) / 2 + 0.2 * (s**2 - 1), (np.arange(m) + 0.5) / m,
                               atol=1e-8)
    points = ring_points(s, 7)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(particle_moments(points, 2), polynomials(2, 3, s)[0].mean(1),
                               atol=1e-15)


def test_zonal_bad_input():
    with pytest.raises(ValueError, match="a_0"):
        solve_zonal(np.array([0.5, 0.1]), [0, 1], 1.0, 3)
    with pytest.raises(ValueError, match="NaN"):
        solve_zonal(np.array([1.0, np.nan]), [0, 1], 1.0, 3)
    with pytest.raises(ValueError, match="nonnegative"):
        zonal_moments(lambda s: 1 + 2 * s, 4, 3)
    with pytest.raises(ValueError, match="integrates to"):
        zonal_moments(lambda s: 2 + 0 * s, 4, 3)
    with pytest.raises(ValueError, match="nonnegative"):
        solve_zonal(np.array([1.0, -0.9, 0.0]), [0, 1], 1.0, 3)  # f(1) = 1 - 2.7 < 0
    with pytest.raises(ValueError, match="d must be"):
        solve_zonal(np.array([1.0, 0.1]), [0, 1], 1.0, 1)
    needed = zonal_modes_needed(10.0, 3)
    with pytest.warns(AliasingWarning, match=f"at least {needed}"):
        solve_zonal(np.array([1.0, 0.1]), [0, 0.01], 10.0, 3)
