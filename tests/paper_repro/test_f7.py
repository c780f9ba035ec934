"""F7: the trajectory figure's claim (clustering, monotone energy) from its stored numbers."""

import json

import numpy as np

from paper_repro import FIGURES, FigureRequest


def test_f7_clusters_and_energy_increases(tmp_path):
    _, make = FIGURES["F7"]
    report = make(FigureRequest(out=tmp_path, scheme="exact", seed=3))
    names = sorted(p.name for p in report.files)
    assert names == ["F7_trajectories.json", "F7_trajectories.pdf", "F7_trajectories.png"]
    data = json.loads((tmp_path / "F7_trajectories.json").read_text())
    energy = np.array(data["energy_S2"])
    beta, n = data["parameters"]["beta"], data["parameters"]["n"]
    assert np.all(np.diff(energy) >= -1e-12)
    # one cluster at T = 15 on S^2: the energy is at its maximum e^beta / (2 beta)
    assert data["clusters_at_T"]["S2"] == 1
    np.testing.assert_allclose(energy[-1], np.exp(beta) / (2 * beta), rtol=1e-3)
    assert energy[0] < 0.8 * energy[-1]
    assert n == 64 and data["scheme"] == "exact"
    assert any("non-decreasing" in line and "ok" in line for line in report.checks)
