"""Linear instability of the uniform density: fitted rates (the particle measurement is
in tests/paper_repro/test_mf_growth.py)."""

import numpy as np
import pytest

from dynamics.meanfield import fit_growth_rates


def test_fit_recovers_exponential_rates(rng):
    rates = rng.uniform(-1, 1, 4)
    times = np.linspace(0, 3, 13)
    amplitudes = rng.uniform(0.1, 1, 4) * np.exp(np.outer(times, rates))
    np.testing.assert_allclose(fit_growth_rates(times, amplitudes), rates, atol=1e-12)
    np.testing.assert_allclose(fit_growth_rates(times, amplitudes, (1.0, 2.0)), rates, atol=1e-12)
    with pytest.raises(ValueError, match="positive"):
        fit_growth_rates(times, -amplitudes)
