"""M2: growth rates of the uniform density's modes, from the figure's stored numbers."""

import numpy as np

from dynamics.theory.circle import dominant_mode, growth_rates


def test_m2_rates_and_dominant_mode(make):
    report, data = make("M2", "M2_mode_growth", seed=2)
    k = np.array(data["modes"])
    beta = data["parameters"]["beta"]
    theory = growth_rates(beta, k, "softmax")
    np.testing.assert_allclose(data["theory"], theory, rtol=1e-12)
    np.testing.assert_allclose(data["pde_measured"], theory, atol=1e-4)
    negative = growth_rates(data["parameters"]["negative_beta"], k, "softmax")
    np.testing.assert_allclose(data["pde_measured_negative_beta"], negative, atol=1e-4)
    fast = theory >= 0.8 * theory.max()
    np.testing.assert_allclose(np.array(data["particles_measured"])[fast], theory[fast], atol=0.15)
    k_star = dominant_mode(beta)
    assert data["dominant_predicted"] == k_star == 4
    assert np.all(np.abs(np.array(data["dominant_particles_t2_to_5"]) - k_star) <= 1)
    assert all("ok" in line for line in report.checks)
