"""F1: the ALBERT figure skips cleanly without the model; its histograms, on synthetic tokens."""

import json

import numpy as np

from dynamics import SA, simulate, uniform_sphere
from paper_repro import FigureRequest, f1_albert, make


def test_f1_skips_without_model(tmp_path, monkeypatch):
    def missing(seed):
        raise f1_albert.Unavailable("the Python package 'transformers' is not installed")

    monkeypatch.setattr(f1_albert, "hidden_states", missing)
    report = make("F1", FigureRequest(out=tmp_path))
    assert report.files == [] and list(tmp_path.iterdir()) == []
    assert report.checks == [] and "transformers" in report.skipped


def test_f1_histograms_on_synthetic_tokens(tmp_path, rng):
    """Tokens evolved by SA stand in for the layers: mass moves to 1 with depth."""
    n, d = 40, 16
    x0 = uniform_sphere(int(rng.integers(1 << 30)), 1, n, d) * rng.uniform(0.5, 3.0, (1, n, 1))
    times = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 6.0])
    states = simulate(SA(1.0), x0 / np.linalg.norm(x0, axis=-1, keepdims=True), times,
                      method="rk4", dt=0.05).values[0]
    fake24 = {layer: 2.5 * states[k] for k, layer in enumerate(f1_albert.LAYERS_24)}
    fake48 = {layer: states[k] for k, layer in enumerate(f1_albert.LAYERS_48)}
    hists = f1_albert.layer_histograms(fake24)
    for h in hists.values():
        assert np.isclose(np.sum(h.density * np.diff(h.edges)), 1.0)
    # Freedman-Diaconis: bin width at most 2 IQR N^(-1/3) over the n(n-1) pairs
    values = states[0] @ states[0].T
    pairs = values[~np.eye(n, dtype=bool)]
    q75, q25 = np.percentile(pairs, [75, 25])
    width = np.diff(hists[0].edges)
    assert np.all(width <= 2 * (q75 - q25) * pairs.size ** (-1 / 3) + 1e-12)
    assert np.isclose(hists[0].edges[0], pairs.min()) and np.isclose(hists[0].edges[-1],
                                                                     pairs.max())
    # with the diagonal (the authors' notebook) n extra values equal to 1
    near = f1_albert.mass_near_one(fake24)
    near_diag = f1_albert.mass_near_one(fake24, include_diagonal=True)
    for layer in near:
        assert np.isclose(near_diag[layer], (near[layer] * n * (n - 1) + n) / n**2)
    report = f1_albert.make_figure(FigureRequest(out=tmp_path), fake24, fake48,
                                   {"source": "synthetic SA tokens"})
    data = json.loads((tmp_path / "F1_albert.json").read_text())
    fractions = [data["mass_above_0.9"][str(k)] for k in f1_albert.LAYERS_24]
    assert fractions[-1] > fractions[0]
    (check,) = report.checks
    assert check.passed and check.value > 0
    assert len(report.files) == 3
