"""M3: synchronisation versus beta, from the figure's stored numbers."""

import json

import numpy as np

from paper_repro import FIGURES, FigureRequest


def test_m3_thresholds(tmp_path):
    _, make = FIGURES["M3"]
    report = make(FigureRequest(out=tmp_path, seed=0))
    data = json.loads((tmp_path / "M3_synchronisation.json").read_text())
    betas = np.array(data["parameters"]["betas"])
    for fraction in data["synchronised"].values():
        fraction = np.array(fraction)
        assert np.all(fraction[betas >= -0.16] == 1.0)
        assert np.any(fraction[betas < -2 / 3] < 1.0)
    eig = data["three_cluster_eigenvalue"]
    beta = np.array(eig["beta"])
    np.testing.assert_allclose(eig["inter"], (0.5 + 0.75 * beta) * np.exp(-beta / 2), atol=1e-12)
    assert all("ok" in line for line in report.checks)
