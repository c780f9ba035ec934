"""Synchronisation on the circle on both sides of beta = -0.16 and beta = -2/3 (2507.22857)."""

import math

import numpy as np
import pytest

from dynamics import SA, CircleSA, CircleUSA, angles_to_points, simulate
from dynamics.meanfield import (
    arc_length,
    cluster_state_spectrum,
    diameter,
    synchronisation_outcome,
    three_cluster_eigenvalue,
)


def _three_clusters(per_cluster: int) -> np.ndarray:
    return np.repeat(2 * np.pi * np.arange(3) / 3, per_cluster)


def test_three_cluster_state_is_stable_exactly_below_minus_two_thirds():
    for beta in (-0.7, -2 / 3 - 1e-6, -2 / 3 + 1e-6, -0.6):
        intra, inter = cluster_state_spectrum(beta, 3)
        closed = (0.5 + 0.75 * beta) * math.exp(-beta / 2)
        np.testing.assert_allclose(inter, closed, rtol=1e-12, atol=1e-15)
        assert intra < 0
        assert (inter.max() < 0) == (beta < -2 / 3)


@pytest.mark.parametrize("beta", [-1.3, -0.4, 0.8])
def test_cluster_spectrum_matches_the_particle_jacobian(beta):
    theta = _three_clusters(2)[None]
    field = CircleUSA(beta)
    eps = 1e-6
    jac = np.empty((6, 6))
    for j in range(6):
        step = np.zeros_like(theta)
        step[0, j] = eps
        jac[:, j] = (field(0.0, theta + step) - field(0.0, theta - step))[0] / (2 * eps)
    intra, inter = cluster_state_spectrum(beta, 3)
    # units: the spectrum is per particle of mass 1/n; rotations give the zero eigenvalue
    expected = np.sort(np.r_[0.0, intra, intra, intra, inter])
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh((jac + jac.T) / 2)), expected,
                               atol=1e-7)


@pytest.mark.parametrize(("beta", "synchronises"), [(-1.0, False), (-0.4, True)])
def test_perturbed_three_clusters_stay_or_merge(rng, beta, synchronises):
    theta = _three_clusters(3)[None] + 1e-3 * rng.standard_normal((1, 9))
    final = simulate(CircleSA(beta), theta, [0.0, 150.0], method="dopri5", rtol=1e-8).final
    arc = float(arc_length(np.asarray(final))[0])
    if synchronises:
        assert arc < 1e-4
    else:
        assert arc == pytest.approx(4 * np.pi / 3, abs=1e-6)


def test_outcome_diameter_speed_and_order(rng):
    """Angles and points give the same numbers; a three-cluster state at beta = -1 is at
    rest (speed 0) with diameter 2 pi/3 and order 0; a cluster has diameter = its arc."""
    spread = float(rng.uniform(0.01, 0.5))
    theta = np.stack([rng.uniform(0, spread, 6) + float(rng.uniform(-3, 3)),
                      _three_clusters(2), rng.uniform(-3, 3, 6)])
    betas = np.array([0.5, -1.0, 2.0])
    field = CircleSA(betas)
    out = synchronisation_outcome(field, theta)
    np.testing.assert_allclose(out["diameter"][0], arc_length(theta[0]), rtol=1e-12)
    np.testing.assert_allclose(out["diameter"][1], 2 * np.pi / 3, rtol=1e-12)
    assert out["speed"][1] < 1e-14 and out["speed"][2] > 1e-3
    np.testing.assert_allclose(out["order"][1], 0.0, atol=1e-15)
    np.testing.assert_allclose(out["order"], np.abs(np.exp(1j * theta).mean(axis=1)), rtol=1e-12)
    points = SA(betas).on(angles_to_points(theta))
    again = synchronisation_outcome(points, angles_to_points(theta))
    for key in ("diameter", "speed", "order"):
        np.testing.assert_allclose(again[key], out[key], rtol=1e-10, atol=1e-14)


def test_diameter_keeps_precision_for_tight_clusters(rng):
    x = rng.standard_normal(3)
    x /= np.linalg.norm(x)
    y = rng.standard_normal(3)
    y -= (y @ x) * x
    y /= np.linalg.norm(y)
    angle = 1e-9
    pair = np.stack([x, np.cos(angle) * x + np.sin(angle) * y])[None]
    assert diameter(pair)[0] == pytest.approx(angle, rel=1e-6)
    assert diameter(np.stack([x, -x])[None])[0] == pytest.approx(np.pi)


def test_three_cluster_eigenvalue_closed_form(rng):
    for beta in rng.uniform(-4, 3, 5):
        np.testing.assert_allclose(three_cluster_eigenvalue(beta),
                                   cluster_state_spectrum(float(beta), 3)[1], rtol=1e-12)
