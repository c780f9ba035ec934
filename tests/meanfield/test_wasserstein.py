"""W1 on the circle: closed forms and an independent cut-the-circle computation."""

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from dynamics.meanfield import CircleDensity, w1_circle


def test_point_mass_against_uniform_is_quarter_circle(rng):
    # int_0^{2pi} |1 - theta/(2pi) - 1/2| dtheta = pi/2, wherever the point sits
    uniform = CircleDensity.uniform(4)
    for a in rng.uniform(-10, 10, 3):
        assert w1_circle(np.array([a]), uniform) == pytest.approx(np.pi / 2, abs=1e-6)


@pytest.mark.parametrize("n", [7, 100])
def test_uniform_quantiles_are_pi_over_2n(n):
    uniform = CircleDensity.uniform(4)
    theta = uniform.sample(0, 1, n, quantiles=True)[0]
    assert w1_circle(theta, uniform) == pytest.approx(np.pi / (2 * n), rel=1e-4)


def test_matches_the_best_cut_of_the_line_distance(rng):
    """W1 on the circle = min over cut points of the line W1 (scipy) after cutting there."""
    rho = CircleDensity.von_mises(1.5, float(rng.uniform(0, 6)), modes=40)
    theta = rho.sample(rng, 1, 40)[0]
    ours = w1_circle(theta, rho)
    size = 20000
    nodes = (np.arange(size) + 0.5) * 2 * np.pi / size
    weights = rho.density_at(nodes)
    cuts = np.concatenate([np.mod(theta, 2 * np.pi) + 1e-9, np.linspace(0, 2 * np.pi, 200)])
    line = min(
        wasserstein_distance(np.mod(theta - a, 2 * np.pi), np.mod(nodes - a, 2 * np.pi),
                             v_weights=weights)
        for a in cuts
    )
    assert ours == pytest.approx(line, abs=2e-5)


def test_rotation_invariance_and_batching(rng):
    rho = CircleDensity.von_mises(2.0, 0.0, modes=40)
    alpha = float(rng.uniform(0, 2 * np.pi))
    turned = CircleDensity.von_mises(2.0, alpha, modes=40)
    theta = rho.sample(rng, 3, 60)
    np.testing.assert_allclose(w1_circle(theta, rho), w1_circle(theta + alpha, turned), atol=1e-6)
    assert w1_circle(theta, rho).shape == (3,)


def test_bad_input():
    rho = CircleDensity.uniform(4)
    with pytest.raises(ValueError, match="NaN"):
        w1_circle(np.array([0.1, np.nan]), rho)
    with pytest.raises(TypeError, match="CircleDensity"):
        w1_circle(np.array([0.1]), np.ones(8))
