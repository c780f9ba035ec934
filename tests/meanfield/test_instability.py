"""Linear instability of the uniform density: measured rates against sigma_k."""

import numpy as np
import pytest
from scipy.special import iv

from dynamics.meanfield import fit_growth_rates, particle_growth


def test_fit_recovers_exponential_rates(rng):
    rates = rng.uniform(-1, 1, 4)
    times = np.linspace(0, 3, 13)
    amplitudes = rng.uniform(0.1, 1, 4) * np.exp(np.outer(times, rates))
    np.testing.assert_allclose(fit_growth_rates(times, amplitudes), rates, atol=1e-12)
    np.testing.assert_allclose(fit_growth_rates(times, amplitudes, (1.0, 2.0)), rates, atol=1e-12)
    with pytest.raises(ValueError, match="positive"):
        fit_growth_rates(times, -amplitudes)


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
