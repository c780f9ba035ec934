"""M4: the kappa = 2 bifurcation of the noisy Kuramoto model, from the figure's stored numbers."""

import json

import numpy as np
from scipy.special import i0, i1

from paper_repro import FIGURES, FigureRequest


def test_m4_bifurcation(tmp_path):
    _, make = FIGURES["M4"]
    report = make(FigureRequest(out=tmp_path, seed=0))
    data = json.loads((tmp_path / "M4_noisy_bifurcation.json").read_text())
    kappa, r = np.array(data["kappa"]), np.array(data["self_consistent"])
    assert np.all(r[kappa <= 2] == 0)
    above = kappa > 2
    np.testing.assert_allclose(i1(kappa * r)[above] / i0(kappa * r)[above], r[above], atol=1e-10)
    np.testing.assert_allclose(data["pde"], r, atol=1e-4)
    np.testing.assert_allclose(np.array(data["particles"])[above], r[above], atol=0.05)
    n = data["parameters"]["n"]
    assert np.all(np.array(data["particles"])[~above] < 4 / np.sqrt(n))
    assert all("ok" in line for line in report.checks)
