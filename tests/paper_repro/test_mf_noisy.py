"""M4: the kappa = 2 bifurcation of the noisy Kuramoto model, from the figure's stored numbers."""

import numpy as np
import pytest
from scipy.special import i0, i1

from dynamics.meanfield import kuramoto_order
from paper_repro.mf_noisy import particle_order_parameter


def test_m4_bifurcation(make):
    report, data = make("M4", "M4_noisy_bifurcation", seed=0)
    kappa, r = np.array(data["kappa"]), np.array(data["self_consistent"])
    assert np.all(r[kappa <= 2] == 0)
    above = kappa > 2
    np.testing.assert_allclose(i1(kappa * r)[above] / i0(kappa * r)[above], r[above], atol=1e-10)
    np.testing.assert_allclose(data["pde"], r, atol=1e-4)
    np.testing.assert_allclose(np.array(data["particles"])[above], r[above], atol=0.05)
    n = data["parameters"]["n"]
    assert np.all(np.array(data["particles"])[~above] < 4 / np.sqrt(n))
    assert len(report.checks) == 3 and all(c.passed for c in report.checks)
    assert report.checks[2].bound == 4 / np.sqrt(n)


def test_noisy_particles_bifurcate_at_kappa_two():
    below = particle_order_parameter(1.0, n=800, horizon=30.0, burn_in=15.0, seed=2)
    above = particle_order_parameter(4.0, n=800, horizon=30.0, burn_in=15.0, seed=2)
    assert below < 0.1  # finite-n fluctuations only, ~ n^{-1/2}
    assert above == pytest.approx(kuramoto_order(4.0), abs=0.03)
