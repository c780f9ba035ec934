"""Growth rates of Fourier modes of the uniform density on the circle."""

import math

import numpy as np
import pytest
from scipy.special import iv

from dynamics.theory import dominant_mode, fourier_coefficients, growth_rates

M = 256  # grid points on the circle for the numerical linearisation
GRID = 2 * np.pi * np.arange(M) / M


def convolve(kernel, density):
    """(f * nu)(theta_a) = int f(theta_a - phi) nu(phi) dphi by the periodic trapezoid rule."""
    return kernel(GRID[:, None] - GRID[None, :]) @ density * (2 * np.pi / M)


def spectral_derivative(values):
    k = np.fft.fftfreq(M, d=1.0 / M)
    return np.real(np.fft.ifft(1j * k * np.fft.fft(values)))


def continuity_rhs(density, beta, normalization):
    """-d_theta(X[nu] nu) for the mean-field SA / USA velocity on the circle."""
    def h(z):
        return np.exp(beta * np.cos(z))

    def dh(z):
        return -beta * np.sin(z) * np.exp(beta * np.cos(z))

    velocity = convolve(dh, density) / beta
    if normalization == "softmax":
        velocity = velocity / convolve(h, density)
    return -spectral_derivative(velocity * density)


def numerical_rate(beta, k, normalization, eps=1e-5):
    """<L eta, eta> / <eta, eta>, eta = cos(k theta), L linearised numerically at nu = 1/(2 pi)."""
    uniform = np.full(M, 1 / (2 * np.pi))
    eta = np.cos(k * GRID)
    plus = continuity_rhs(uniform + eps * eta, beta, normalization)
    minus = continuity_rhs(uniform - eps * eta, beta, normalization)
    image = (plus - minus) / (2 * eps)
    rate = image @ eta / (eta @ eta)
    residual = np.max(np.abs(image - rate * eta))
    return rate, residual


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_growth_rates_match_a_numerical_linearisation(normalization):
    for beta in (0.7, 4.0, -2.0):
        for k in (1, 2, 3, 5):
            rate, residual = numerical_rate(beta, k, normalization)
            expected = growth_rates(beta, k, normalization)
            assert rate == pytest.approx(expected, rel=1e-6, abs=1e-9)
            assert residual < 1e-6 * max(1.0, abs(rate))  # e^{ik theta} is an eigenfunction


def test_fourier_coefficients_are_those_of_h(rng):
    theta = 2 * np.pi * np.arange(512) / 512
    for beta in (0.5, 5.0, -3.0, rng.uniform(0.1, 10.0)):
        fft = np.fft.fft(np.exp(beta * np.cos(theta))) / theta.size
        coefficients = fourier_coefficients(beta, 12)
        np.testing.assert_allclose(coefficients, fft.real[:13], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(coefficients, iv(np.arange(13), beta), rtol=1e-12)
    scaled = fourier_coefficients(2000.0, 3, scaled=True)
    assert np.all(np.isfinite(scaled))
    assert scaled[0] == pytest.approx(1 / math.sqrt(2 * np.pi * 2000), rel=1e-3)  # e^-b I_0(b)


def test_kuramoto_limit_and_beta_zero():
    for normalization in ("softmax", "usa"):
        assert growth_rates(0.0, 1, normalization) == 0.5
        assert growth_rates(0.0, 2, normalization) == 0.0
        assert growth_rates(1e-6, 1, normalization) == pytest.approx(0.5, abs=1e-6)
        assert abs(growth_rates(1e-6, 2, normalization)) < 1e-5
        np.testing.assert_array_equal(growth_rates(3.0, np.array([0]), normalization), [0.0])
    assert dominant_mode(0.0) == 1


def test_negative_beta_and_rate_relations():
    k = np.arange(1, 9)
    for beta in (0.3, 2.0, 7.5):
        usa = growth_rates(beta, k, "usa")
        sa = growth_rates(beta, k, "softmax")
        np.testing.assert_allclose(sa, usa / iv(0, beta), rtol=1e-12)
        np.testing.assert_allclose(usa, k**2 * iv(k, beta) / beta, rtol=1e-12)
        sign = (-1.0) ** (k + 1)
        np.testing.assert_allclose(growth_rates(-beta, k, "usa"), sign * usa, rtol=1e-12)
        np.testing.assert_allclose(growth_rates(-beta, k, "softmax"), sign * sa, rtol=1e-12)
    # negative beta: even modes decay, odd modes still grow
    assert np.all(growth_rates(-5.0, np.arange(2, 20, 2)) < 0)
    assert np.all(growth_rates(-5.0, np.arange(1, 20, 2)) > 0)
    assert dominant_mode(-5.0) == dominant_mode(5.0) == 3


def test_dominant_mode_grows_like_sqrt_two_beta():
    for beta in (50.0, 200.0, 2000.0):
        k_star = dominant_mode(beta)
        assert abs(k_star - math.sqrt(2 * beta)) <= 1.0
        rates = growth_rates(beta, np.arange(1, 4 * k_star), "softmax")
        assert np.all(np.isfinite(rates)) and np.argmax(rates) + 1 == k_star


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="non-negative integers"):
        growth_rates(1.0, 1.5)
    with pytest.raises(ValueError, match="normalization"):
        growth_rates(1.0, 1, "sinkhorn")
    with pytest.raises(ValueError, match="kmax"):
        fourier_coefficients(1.0, -1)
