"""F1: the ALBERT figure skips cleanly without the model; its histograms, on synthetic tokens;
``--model`` on a random-weight ALBERT saved as safetensors, beside its flow."""

import json

import numpy as np

from dynamics import SA, simulate, uniform_sphere
from paper_repro import FigureRequest, f1_albert, make


def test_f1_skips_without_model(tmp_path, monkeypatch):
    def missing(name, **overrides):
        raise f1_albert.Unavailable("the Python package 'transformers' is not installed")

    monkeypatch.setattr(f1_albert, "_load", missing)
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
    rows = [("24 layers", fake24), ("48 layers", fake48)]
    report = f1_albert.make_figure(FigureRequest(out=tmp_path), rows,
                                   {"source": "synthetic SA tokens"})
    data = json.loads((tmp_path / "F1_albert.json").read_text())
    fractions = [data["mass_above_0.9"]["24 layers"][str(k)] for k in f1_albert.LAYERS_24]
    assert fractions[-1] > fractions[0]
    (check,) = report.checks
    assert check.passed and check.value > 0
    assert len(report.files) == 3


def test_f1_on_a_local_model_shows_its_flow(tmp_path):
    """A random-weight ALBERT saved as safetensors (no tokenizer: seeded token ids) goes
    through ``python -m paper_repro F1 --model PATH``; its flow (Euler, h = 1) reproduces the
    hidden states at every layer."""
    import transformers as tf

    from paper_repro.__main__ import main
    from tests.models.tiny import randomize

    config = tf.AlbertConfig(vocab_size=60, embedding_size=12, hidden_size=24,
                             num_hidden_layers=5, num_attention_heads=4, intermediate_size=40)
    randomize(tf.AlbertModel(config).double().eval(), seed=2).save_pretrained(tmp_path / "m")
    status = main(["F1", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "fig")])
    assert status == 0
    data = json.loads((tmp_path / "fig" / "F1_albert.json").read_text())
    (check,) = data["checks"]
    assert check["passed"] and check["value"] < 1e-12
    labels = data["parameters"]["labels"]
    assert labels == ["5 layers", "flow, Euler h = 1", "depth limit, RK4 h = 0.125"]
    assert data["parameters"]["text"].startswith("random token ids")
    assert data["mass_above_0.9"][labels[0]] == data["mass_above_0.9"][labels[1]]
    gaps = data["limit_geometry_gap"]  # the limit starts at the network's first state
    assert gaps["0"] == 0.0 and all(0 <= g <= 2 for g in gaps.values())


def test_f1_refuses_a_pickled_checkpoint(tmp_path):
    """Loading never unpickles: a model saved only as pytorch_model.bin is refused."""
    import pytest
    import transformers as tf

    from attention.importers import load_model

    config = tf.AlbertConfig(vocab_size=30, embedding_size=8, hidden_size=16,
                             num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    import torch

    model = tf.AlbertModel(config)
    config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="unpickle"):
        load_model(tmp_path)
