"""Synchronisation on the circle on both sides of beta = -0.16 and beta = -2/3 (2507.22857)."""

import math

import numpy as np
import pytest

from dynamics import CircleSA, CircleUSA, simulate
from dynamics.meanfield import (
    SyncConfig,
    arc_length,
    cluster_state_spectrum,
    synchronisation_map,
    synchronisation_outcome,
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


def test_synchronisation_map_on_both_sides_of_the_thresholds():
    config = SyncConfig(betas=(-3.0, -0.16, 0.0, 1.0), n=8, starts=16, seed=3, horizon=100.0)
    result = synchronisation_map(config)
    np.testing.assert_array_equal(result["betas"], config.betas)
    sync = result["synchronised"]
    assert np.all(sync[1:] == 1.0)  # beta >= -0.16: every random start synchronises
    assert sync[0] < 1.0  # beta = -3 < -2/3: some starts end elsewhere ...
    assert result["stationary_unsynchronised"][0] == pytest.approx(1 - sync[0])  # ... at rest
    assert np.all(result["order_parameter"][1:] > 1 - 1e-6)
    assert result["config"]["n"] == 8
    again = synchronisation_map(config)
    np.testing.assert_array_equal(again["arc"], result["arc"])  # a pure function of the config


def test_outcome_classifies_per_member_betas(rng):
    theta = np.stack([np.zeros(6) + 0.3, _three_clusters(2), rng.uniform(-3, 3, 6)])
    betas = np.array([0.5, -1.0, 2.0])
    out = synchronisation_outcome(theta, betas)
    np.testing.assert_array_equal(out["synchronised"], [True, False, False])
    np.testing.assert_array_equal(out["stationary_unsynchronised"], [False, True, False])
    for b in range(3):
        single = synchronisation_outcome(theta[b : b + 1], betas[b])
        assert single["speed"][0] == pytest.approx(out["speed"][b], abs=1e-14)


def test_bad_config():
    with pytest.raises(ValueError, match="starts"):
        SyncConfig(starts=1)
    with pytest.raises(ValueError, match="normalization"):
        SyncConfig(normalization="hardmax")
    with pytest.raises(TypeError, match="SyncConfig"):
        synchronisation_map({"n": 8})
