"""C6: normalisation placements - clustering for all, rates e^{-2t} (Post-LN) and 1/t^2 (Pre-LN)."""

import numpy as np

from dynamics import PreLN, simulate, uniform_sphere
from paper_repro.c6_normalization import NGPT, SA, mean_cosine, mean_gap


def test_c6_rates_and_ordering(make):
    report, data = make("C6", "C6_normalization", scheme="exact")
    rates = data["rates"]["fitted"]
    assert abs(rates["Post-LN"] - 2) < 0.02  # 1 - rho ~ e^{-2t}
    assert abs(rates["Pre-LN"] + 2) < 0.05  # 1 - rho ~ t^{-2}
    assert abs(rates["nGPT, alpha = 1"] - 2) < 0.02
    assert abs(rates["nGPT"] - 0.4) < 0.02  # 2 alpha with alpha = 0.2
    rho = {name: np.array(s["mean"]) for name, s in data["rho"].items()}
    times = np.array(data["times"])
    t1, t2, t5 = (int(np.searchsorted(times, t)) for t in (1.0, 2.0, 5.0))
    assert rho["Post-LN"][t5] > 0.99  # Post-LN reaches 1 by t ~ 5 (Survey)
    # Survey's order: Peri-LN (and nGPT with alpha = 1) first, then Post-LN, Pre-LN slower
    assert rho["Peri-LN"][t1] > rho["Post-LN"][t1]
    assert rho["nGPT, alpha = 1"][t1] > rho["Post-LN"][t1]
    assert rho["Post-LN"][t2] > rho["Pre-LN"][t2] and rho["Post-LN"][t5] > rho["Pre-LN"][t5]
    for name, curve in rho.items():
        assert curve[-1] > curve[0] + 0.5, name
    assert "Mix-LN" in data["parameters"]["not_shown"]
    fitted = {c.name.split(": ")[1]: c for c in report.checks}
    assert set(fitted) == {"Post-LN", "Pre-LN", "nGPT", "nGPT, alpha = 1"}
    assert all(c.passed and c.value <= c.bound for c in report.checks)


def test_c6_observables_and_ngpt_field(rng):
    x = uniform_sphere(int(rng.integers(1 << 30)), 3, 5, 7) * rng.uniform(0.5, 2.0, (3, 5, 1))
    theta = x / np.linalg.norm(x, axis=-1, keepdims=True)
    g = theta @ np.swapaxes(theta, -1, -2)
    np.testing.assert_allclose(mean_cosine(x), (g.sum(axis=(1, 2)) - 5) / 20, rtol=1e-12)
    np.testing.assert_allclose(mean_gap(x), 1 - mean_cosine(x), rtol=1e-10)
    # nGPT with alpha: tangent, of length alpha |P^perp (A/|A|)| <= alpha
    field = NGPT(SA(2.0), alpha=0.3)
    v = field(0.0, theta)
    np.testing.assert_allclose(np.sum(v * theta, axis=-1), 0.0, atol=1e-14)
    assert np.all(np.linalg.norm(v, axis=-1) <= 0.3 + 1e-14)
    # Pre-LN radii grow: r' = <theta, A> > 0 once tokens share a hemisphere
    traj = simulate(PreLN(1.0), theta[:1] * 0.1 + theta[:1, :1], np.array([0.0, 1.0]))
    r = np.linalg.norm(traj.values[0], axis=-1)
    assert np.all(r[1] > r[0])
