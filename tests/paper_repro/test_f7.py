"""F7: the trajectory figure's claim (clustering, monotone energy) from its stored numbers."""

import numpy as np
from PIL import Image


def test_f7_clusters_and_energy_increases(make, tmp_path):
    report, data = make("F7", "F7_trajectories", scheme="exact", seed=3)
    names = sorted(p.name for p in report.files)
    assert names == ["F7_circle.gif", "F7_sphere.gif", "F7_trajectories.json",
                     "F7_trajectories.pdf", "F7_trajectories.png"]
    energy = np.array(data["energy_S2"])
    beta, n = data["parameters"]["beta"], data["parameters"]["n"]
    assert np.all(np.diff(energy) >= -1e-12)
    # one cluster at T = 15 on S^2 and S^1: the energy is at its maximum e^beta / (2 beta)
    assert data["clusters_at_T"] == {"S2": 1, "S1": 1}
    np.testing.assert_allclose(energy[-1], np.exp(beta) / (2 * beta), rtol=1e-3)
    assert energy[0] < 0.8 * energy[-1]
    assert n == 64 and data["scheme"] == "exact" and data["tiny"]
    (check,) = report.checks
    assert check.passed and check.value == np.diff(energy).min() >= check.bound == -1e-12
    # the movies have the requested frames (tiny: 4) and show the flow, not a still
    with Image.open(tmp_path / "F7_circle.gif") as gif:
        assert gif.n_frames == 4
        first = np.asarray(gif.convert("RGB"))
        gif.seek(3)
        last = np.asarray(gif.convert("RGB"))
    assert np.any(first != last)
