"""M2: growth rates of the uniform density's modes, from the figure's stored numbers."""

import numpy as np
import pytest
from scipy.special import iv

from dynamics.theory.circle import dominant_mode, growth_rates
from paper_repro.mf_growth import particle_growth


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
    assert len(report.checks) == 3 and all(c.passed for c in report.checks)
    assert report.checks[2].value <= 1


def test_particles_grow_at_the_linear_rates():
    """4 x 600 uniform particles, SA at beta = 9 (Euler h = 0.01, as in paper.md §11 item 20):
    the fastest modes grow at sigma_k (to ~15%: finite-n nonlinear coupling ~ sqrt(beta/n))
    and the fastest measured mode is k* within one."""
    m = particle_growth(9.0, "softmax", n=600, kmax=10, horizon=2.5, batch=4, seed=4,
                        ceiling=0.15)
    fast = m.predicted >= 0.8 * m.predicted.max()
    assert fast.sum() == 3
    np.testing.assert_allclose(m.measured[fast], m.predicted[fast], atol=0.1)
    assert abs(m.dominant_rate - m.dominant_predicted) <= 1
    assert m.window[1] > 1.0  # a genuine linear window


def test_negative_beta_usa_particles_grow_odd_modes(rng):
    """USA at beta = -4: sigma_k = k^2 I_k(beta)/beta makes the odd modes grow and the even
    ones decay, the fastest being k* = 3 (sigma_3 = 7.5); 3 x 500 particles show both."""
    m = particle_growth(-4.0, "usa", n=500, kmax=8, horizon=0.3, batch=3, seed=rng,
                        ceiling=0.15)
    assert m.dominant_predicted == 3
    np.testing.assert_allclose(m.predicted[2], 9 * iv(3, 4.0) / 4.0, rtol=1e-12)
    assert m.dominant_rate == m.dominant_amplitude == 3
    assert m.measured[2] == pytest.approx(m.predicted[2], rel=0.12)
    assert m.measured[1] < 0 and m.measured[3] < 0  # k = 2, 4 decay
    assert m.window[1] > 0.1
