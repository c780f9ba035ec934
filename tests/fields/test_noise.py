"""The noisy Transformer (Survey §7): Brownian motion on the sphere and on angles."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from dynamics import SA, USA, normalize, simulate
from dynamics.fields.circle import Kuramoto
from dynamics.fields.noise import Noisy


def scheme_contraction(sigma2_h, d):
    """E[<x_new, x>] for one geometric Euler-Maruyama step with zero drift:
    E (1 + sigma^2 h |xi|^2)^{-1/2}, |xi|^2 ~ chi^2_{d-1} (the projected Gaussian kick)."""
    k = d - 1
    density = lambda u: u ** (k / 2 - 1) * math.exp(-u / 2) / (2 ** (k / 2) * math.gamma(k / 2))  # noqa: E731
    return quad(lambda u: density(u) / math.sqrt(1 + sigma2_h * u), 0, np.inf)[0]


def test_sigma_and_pass_through(rng):
    field = SA(2.0)
    noisy = Noisy(field, kappa=4.0)
    assert noisy.sigma == math.sqrt(0.5)
    assert noisy.space is field.space and not noisy.span_preserving
    x = normalize(rng.standard_normal((2, 3, 4)))
    assert np.array_equal(noisy(0.0, x), field(0.0, x))
    assert np.array_equal(noisy.drive(0.0, x), field.drive(0.0, x))
    theta = rng.uniform(-1, 1, (2, 3))
    kuramoto = Noisy(Kuramoto(omega=1.0), 1.0)
    assert np.array_equal(kuramoto.drive(0.0, theta), kuramoto(0.0, theta))


def test_single_token_is_brownian_motion_on_the_sphere():
    """n = 1 has zero USA drift, so x(t) is Brownian motion on S^2 with generator
    (1/kappa) Laplacian: E<x(t), x(0)> = e^{-(d-1) t/kappa}. Given x, one step of the scheme
    multiplies the mean by m(h) exactly, so the Monte Carlo mean is m(h)^k within its
    standard error, and m(h)^{t/h} tends to the Brownian law at rate O(h)."""
    batch, d, kappa, h = 4000, 3, 2.0, 0.01
    x0 = np.zeros((batch, 1, d))
    x0[..., 0] = 1.0
    times = np.linspace(0.0, 1.0, 5)
    noisy = Noisy(USA(1.0), kappa)
    assert np.all(noisy(0.0, x0) == 0.0)
    traj = simulate(noisy, x0, times, method="euler-maruyama", dt=h, seed=11)
    inner = traj.states[:, :, 0, 0]  # <x(t), e_1>
    mean, se = inner.mean(axis=0), inner.std(axis=0) / math.sqrt(batch)
    scheme_law = scheme_contraction(noisy.sigma**2 * h, d) ** (times / h)
    assert np.all(np.abs(mean - scheme_law)[1:] < 4 * se[1:])
    assert np.max(np.abs(np.linalg.norm(traj.states, axis=-1) - 1.0)) < 1e-12
    # the scheme's law converges to the Brownian one with order 1
    brownian = math.exp(-(d - 1) * 1.0 / kappa)
    gaps = [abs(scheme_contraction(noisy.sigma**2 * dt, d) ** (1.0 / dt) - brownian)
            for dt in (0.02, 0.01, 0.005)]
    assert 1.8 < gaps[0] / gaps[1] < 2.2 and 1.8 < gaps[1] / gaps[2] < 2.2
    assert abs(mean[-1] - brownian) < 4 * se[-1] + gaps[1]


def test_noisy_attention_keeps_tokens_on_the_sphere(rng):
    x0 = normalize(rng.standard_normal((3, 5, 4)))
    traj = simulate(Noisy(SA(1.0), 1.0), x0, [0.0, 1.0], method="euler-maruyama", dt=0.05,
                    seed=3)
    assert not traj.reduced
    assert np.max(np.abs(np.linalg.norm(traj.states, axis=-1) - 1.0)) < 1e-12


def test_phase_variance_grows_linearly_on_angles(rng):
    """Noisy Kuramoto with K = 0: theta(t) = theta(0) + omega t + sqrt(2/kappa) W_t, so the
    phase has mean omega t and variance (2/kappa) t."""
    batch, n, kappa, omega, T = 500, 8, 4.0, 0.7, 2.0
    theta0 = np.tile(rng.uniform(-1.0, 1.0, (1, n)), (batch, 1))
    traj = simulate(Noisy(Kuramoto(omega=omega, coupling=0.0), kappa), theta0, [0.0, 1.0, T],
                    method="euler-maruyama", dt=0.1, seed=5)
    moved = (traj.states[:, 1:] - theta0[:, None]).transpose(1, 0, 2).reshape(2, -1)
    samples = moved.shape[1]
    for k, t in enumerate((1.0, T)):
        variance = (2 / kappa) * t
        assert abs(moved[k].mean() - omega * t) < 4 * math.sqrt(variance / samples)
        assert abs(moved[k].var(ddof=1) - variance) < 4 * variance * math.sqrt(2 / (samples - 1))


def test_seed_reproduces_the_path(rng):
    x0 = normalize(rng.standard_normal((2, 4, 3)))
    noisy = Noisy(SA(1.0), 2.0)
    run = lambda seed: simulate(noisy, x0, [0.0, 0.5], method="euler-maruyama", dt=0.05,  # noqa: E731
                                seed=seed).final
    assert np.array_equal(run(7), run(7))
    assert np.max(np.abs(run(7) - run(8))) > 1e-3


def test_bad_input_is_rejected(rng):
    with pytest.raises(ValueError, match="kappa"):
        Noisy(SA(1.0), 0.0)
    with pytest.raises(ValueError, match="kappa"):
        Noisy(SA(1.0), math.inf)
    with pytest.raises(TypeError, match="kappa"):
        Noisy(SA(1.0), "2")
    with pytest.raises(TypeError, match="wraps a field"):
        Noisy(3.0, 1.0)
    x0 = normalize(rng.standard_normal((1, 2, 3)))
    with pytest.raises(ValueError, match="euler-maruyama"):
        simulate(Noisy(SA(1.0), 1.0), x0, [0.0, 1.0], method="rk4", dt=0.1)
