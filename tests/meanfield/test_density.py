"""Densities on the circle: coefficients, CDF, sampling and input checks."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import quad

from dynamics.meanfield import CircleDensity
from dynamics.meanfield.density import grid


def test_von_mises_and_wrapped_cauchy_values(rng):
    kappa, mu = float(rng.uniform(0.5, 3)), float(rng.uniform(-3, 3))
    theta = grid(256)
    vm = CircleDensity.von_mises(kappa, mu, modes=60).values(256)
    np.testing.assert_allclose(vm, stats.vonmises.pdf(theta, kappa, loc=mu), rtol=1e-12)
    r = float(rng.uniform(0.1, 0.6))
    wc = CircleDensity.wrapped_cauchy(r, mu, modes=120).values(256)
    exact = (1 - r**2) / (2 * np.pi * (1 - 2 * r * np.cos(theta - mu) + r**2))
    np.testing.assert_allclose(wc, exact, rtol=1e-12)


def test_cdf_integrates_the_density(rng):
    rho = CircleDensity.von_mises(float(rng.uniform(0.5, 2)), float(rng.uniform(0, 6)), modes=40)
    points = rng.uniform(0, 2 * np.pi, 5)
    for t in points:
        exact = quad(lambda s: float(rho.density_at(s)), 0, t, epsabs=1e-13)[0]
        assert rho.cdf(t) == pytest.approx(exact, abs=1e-11)
    assert rho.cdf(2 * np.pi) == pytest.approx(1.0, abs=1e-13)
    assert rho.order_parameter() == pytest.approx(
        quad(lambda s: float(rho.density_at(s)) * math.cos(s), 0, 2 * np.pi)[0]
        + 1j * quad(lambda s: float(rho.density_at(s)) * math.sin(s), 0, 2 * np.pi)[0],
        abs=1e-12,
    )


def test_iid_samples_follow_the_density():
    kappa, mu = 1.7, 0.8
    rho = CircleDensity.von_mises(kappa, mu, modes=50)
    theta = rho.sample(5, 1, 4000)[0]
    assert theta.min() >= -np.pi and theta.max() < np.pi
    centred = np.mod(theta - mu + np.pi, 2 * np.pi) - np.pi  # scipy's support is mu +- pi
    assert stats.kstest(centred, stats.vonmises(kappa).cdf).pvalue > 1e-3


def test_quantiles_invert_the_cdf(rng):
    rho = CircleDensity.von_mises(1.2, float(rng.uniform(-3, 3)), modes=40)
    u = rng.uniform(0, 1, 50)
    np.testing.assert_allclose(rho.cdf(rho.quantile(u)), u, atol=1e-12)


def test_from_values_round_trips_and_fixes_the_mass():
    rho = CircleDensity.von_mises(2.0, 0.3, modes=30)
    again = CircleDensity.from_values(rho.values(128), modes=30)
    np.testing.assert_allclose(again.coefficients, rho.coefficients, atol=1e-14)
    assert again.mass == 1.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.full(64, np.nan), "NaN"),
        (np.r_[-0.1, np.full(63, 1.1 / (2 * np.pi) * 64 / 63)], "nonnegative"),
        (np.full(64, 0.3), "integrates to"),
        (np.ones((4, 4)), "1-d array"),
    ],
)
def test_bad_density_values_are_rejected(values, message):
    with pytest.raises(ValueError, match=message):
        CircleDensity.from_values(values)


def test_bad_coefficients_and_functions_are_rejected():
    with pytest.raises(ValueError, match="mass"):
        CircleDensity(np.array([0.5, 0.1, 0.0]))
    with pytest.raises(ValueError, match="NaN"):
        CircleDensity(np.array([1 / (2 * np.pi), np.nan]))
    with pytest.raises(ValueError, match="map an array"):
        CircleDensity.from_function(lambda t: 1.0, 8)
    with pytest.raises(ValueError, match="negative"):
        CircleDensity(np.array([1 / (2 * np.pi), 0.3])).quantile(0.5)
    with pytest.raises(ValueError, match="not be positive"):
        CircleDensity.perturbed_uniform(0.5, 4)
