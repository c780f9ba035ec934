"""F4: the caption's cluster counts (2 at beta = 4, 3 at beta = 9) as the modal count over seeds."""

import numpy as np

from dynamics import cluster_count, normalize, uniform_sphere
from paper_repro.f4_circle_trajectories import CAPTION, DELTA, N, cluster_counts


def test_f4_modal_cluster_counts_match_the_caption(make):
    report, data = make("F4", "F4_circle_trajectories")
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
    assert all("agrees" in line for line in report.checks)


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
