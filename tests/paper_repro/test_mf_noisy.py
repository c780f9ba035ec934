"""M4: the kappa = 2 bifurcation of the noisy Kuramoto model, from the figure's stored numbers."""

import numpy as np
from scipy.special import i0, i1


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
    assert all("ok" in line for line in report.checks)
