"""The circle kernels in Fourier space and the resolution criterion."""

import math
import warnings

import numpy as np
import pytest
from scipy.special import iv

from dynamics.meanfield import AliasingWarning, modes_needed, velocity_coefficients
from dynamics.meanfield.density import synthesize
from dynamics.meanfield.kernel import attention_coefficients, check_modes


@pytest.mark.parametrize("beta", [-2.5, -0.3, 0.4, 3.0, 7.0])
def test_velocity_coefficients_are_ik_Ik_over_beta(beta):
    k = np.arange(12)
    expected = 1j * k * iv(k, beta) / beta
    np.testing.assert_allclose(velocity_coefficients(beta, 11, scaled=False), expected,
                               rtol=1e-12, atol=1e-300)
    scaled = velocity_coefficients(beta, 11, scaled=True)
    np.testing.assert_allclose(scaled, expected * math.exp(-abs(beta)), rtol=1e-12, atol=1e-300)


def test_velocity_kernel_at_beta_zero_is_kuramoto():
    coefficients = velocity_coefficients(0.0, 5)
    np.testing.assert_allclose(coefficients, [0, 0.5j, 0, 0, 0, 0], atol=0)


def test_coefficients_synthesise_the_kernels(rng):
    beta = float(rng.uniform(-6, 6))
    kmax = modes_needed(beta, 1e-15) + 2
    size = 4 * kmax
    theta = 2 * np.pi * np.arange(size) / size
    v = synthesize(velocity_coefficients(beta, kmax, scaled=False), size)
    h = synthesize(attention_coefficients(beta, kmax, scaled=False), size)
    scale = 1e-12 * math.exp(abs(beta))
    np.testing.assert_allclose(v, -np.sin(theta) * np.exp(beta * np.cos(theta)), atol=scale)
    np.testing.assert_allclose(h, np.exp(beta * np.cos(theta)), atol=scale)


@pytest.mark.parametrize("beta", [0.05, 1.0, 9.0, -30.0, 400.0])
def test_modes_needed_is_the_first_resolving_mode(beta):
    tol = 1e-10
    K = modes_needed(beta, tol)
    ratio = iv(np.arange(K + 30), abs(beta)) / iv(0, abs(beta))
    assert ratio[K + 1] <= tol
    assert K == 1 or ratio[K] > tol


def test_modes_needed_grows_like_sqrt_beta():
    tol = 1e-10
    for beta in (100.0, 400.0):
        ratio = modes_needed(beta, tol) / math.sqrt(2 * beta * math.log(1 / tol))
        assert 0.9 < ratio < 1.3


def test_check_modes_warns_with_the_number_needed():
    needed = modes_needed(30.0)
    with pytest.warns(AliasingWarning, match=f"modes >= {needed}"):
        check_modes(30.0, needed - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_modes(30.0, needed) == needed
