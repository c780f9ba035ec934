"""M1: particles -> PDE, from the figure's stored numbers."""

import json

import numpy as np

from paper_repro import FIGURES, FigureRequest


def test_m1_w1_decays_like_root_n_under_dobrushin(tmp_path):
    _, make = FIGURES["M1"]
    report = make(FigureRequest(out=tmp_path, seed=1))
    stem = "M1_mean_field_convergence"
    assert sorted(p.name for p in report.files) == [f"{stem}.{e}" for e in ("json", "pdf", "png")]
    data = json.loads((tmp_path / f"{stem}.json").read_text())
    w1 = np.array(data["w1"])  # (ns, seeds, times)
    times = np.array(data["times"])
    bound = w1[:, :, :1] * np.exp(data["dobrushin_rate"] * times)
    assert np.all(w1 <= bound + 1e-12)
    ns = np.array(data["parameters"]["ns"])
    for index in (0, -1):
        slope = np.polyfit(np.log(ns), np.log(w1[:, :, index].mean(axis=1)), 1)[0]
        assert -0.75 < slope < -0.25
    np.testing.assert_allclose(data["mass"], 1.0, atol=1e-13)
    assert min(data["min_density"]) > 0
    assert all("ok" in line for line in report.checks)
