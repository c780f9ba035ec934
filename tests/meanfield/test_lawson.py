"""The adaptive integrating-factor Dormand-Prince scheme on closed-form problems."""

import numpy as np

from dynamics.meanfield.lawson import integrate_lawson


def test_stiff_bernoulli_equation_closed_form():
    """y' = lambda y + y^2 has 1/y = (1/y0 + 1/lambda) e^{-lambda t} - 1/lambda."""
    lam = np.array([-1.0, -50.0, -500.0, -0.3])
    y0 = np.array([0.5, 2.0, 5.0, 0.1])
    times = np.linspace(0, 2, 5)
    out = integrate_lawson(lambda y: y * y, lam, y0, times, rtol=1e-11, atol=1e-14)
    with np.errstate(over="ignore"):  # e^{500 t} overflows to inf: the exact y is 0 there
        exact = 1 / ((1 / y0 + 1 / lam) * np.exp(-np.outer(times, lam)) - 1 / lam)
    np.testing.assert_allclose(out.values, exact, rtol=1e-8, atol=1e-14)


def test_fifth_order_without_linear_part():
    """L = None is DOPRI5: y' = -y^2 (y = 1/(1 + t)), error ~ rtol."""
    for rtol in (1e-6, 1e-9):
        out = integrate_lawson(lambda y: -y * y, None, np.array([1.0]), np.array([0.0, 3.0]),
                               rtol=rtol, atol=1e-14)
        assert abs(out.values[-1, 0] - 0.25) < 50 * rtol


def test_equilibria_are_kept_in_few_steps():
    """y' = L y + c rests at y* = -c/L; y* is kept to phi-rounding."""
    lam = -np.arange(1.0, 30.0) ** 2
    c = np.linspace(1.0, 2.0, lam.size)
    y_star = -c / lam
    out = integrate_lawson(lambda y: c + 0 * y, lam, y_star, np.array([0.0, 100.0]),
                           rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(out.values[-1], y_star, rtol=1e-11)
    assert out.accepted < 30
