"""F4: the caption's cluster counts (2 at beta = 4, 3 at beta = 9) as the modal count over seeds,
the d = 2 phase diagram with its metastable rows, and bit-identical output for a fixed seed."""

import json

import numpy as np

from dynamics import cluster_count, normalize, uniform_sphere
from paper_repro import FigureRequest, make
from paper_repro.f4_circle_trajectories import CAPTION, DELTA, N, cluster_counts, z_score

FILES = ("F4_circle_trajectories.json", "F4_circle_trajectories.png",
         "F4_circle_trajectories.pdf")


def test_f4_caption_counts_phase_rows_and_determinism(tmp_path):
    report = make("F4", FigureRequest(out=tmp_path / "a", tiny=True))
    data = json.loads((tmp_path / "a" / FILES[0]).read_text())
    seeds = data["parameters"]["seeds"]
    for beta, expected in CAPTION.items():
        final = np.array(data["counts"][f"beta={beta:g}"]["t=30"])
        middle = np.array(data["counts"][f"beta={beta:g}"]["t=18"])
        assert final.size == seeds
        assert np.bincount(final).argmax() == expected
        # clusters merge and never split: the count never grows from t = 18 to t = 30
        assert np.all(final <= middle)
        assert np.all(final >= 1)
        # the drawn trajectory keeps its 32 tokens on the unit circle
        angles = np.array(data["shown"][f"beta={beta:g}"]["angles"])
        assert angles.shape == (301, N)
        # the phase diagram's row and the circle runs estimate the same fraction of pairs,
        # strictly between 0 and 1 (metastable: several clusters at t = 30)
        pairs = data["pair_fraction_at_T"][f"beta={beta:g}"]
        assert pairs["phase_diagram_beta"] == beta
        assert pairs["z"] < 3
        assert 0.15 < pairs["phase_diagram"] < 0.85 and 0.15 < pairs["circle_runs"] < 0.85
    # the left panel is the d = 2 panel of F3: clustered below beta ~ 1 at t = 30
    panel = np.array(data["phase_diagram"]["probability"])
    assert panel.shape == (len(data["phase_diagram"]["betas"]), len(data["phase_diagram"]["times"]))
    assert panel[0, -1] > 0.9
    assert len(report.checks) == 4 and all(c.passed for c in report.checks)
    modes = [c for c in report.checks if c.sense == "=="]
    assert sorted(c.value for c in modes) == sorted(CAPTION.values())
    # the same seed gives the same bytes (JSON, PNG and PDF), computed afresh elsewhere
    make("F4", FigureRequest(out=tmp_path / "b", tiny=True))
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_f4_schemes_agree_on_most_seeds():
    """The exact flow and the authors' scheme give the same count on most seeds at beta = 4."""
    x0 = uniform_sphere(11, 12, N, 2)
    faithful = cluster_counts(4.0, x0, "faithful")[30.0]
    exact = cluster_counts(4.0, x0, "exact")[30.0]
    assert np.mean(faithful == exact) >= 0.75
    # a start that is already one cluster stays one cluster
    tight = normalize(np.stack([np.ones(N), 1e-6 * np.arange(N)], axis=-1))[None]
    assert cluster_count(tight, DELTA)[0] == 1
    assert cluster_counts(9.0, tight, "exact")[30.0][0] == 1


def test_z_score(rng):
    a = rng.normal(0.3, 0.1, size=400)
    assert z_score(a, a) == 0.0
    # a shift of 5 standard errors of the difference is seen as such
    se = np.sqrt(2 * np.var(a, ddof=1) / a.size)
    assert abs(z_score(a, a + 5 * se) - 5) < 1e-9
