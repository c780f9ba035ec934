"""C5: strong Rényi centres of causal attention stay put (2411.04990, Lemma 5.1)."""

import numpy as np

from paper_repro.c5_renyi_centres import DELTA, arc, renyi_centres


def test_c5_strong_centres_stay_put(make):
    report, data = make("C5", "C5_renyi_centres")
    strong, renyi = data["strong_centres"], data["renyi_centres"]
    assert strong[0] == 0 and set(strong) <= set(renyi)
    moved = {int(k): np.array(v) for k, v in data["centre_displacement"].items()}
    # token 0 is a fixed point of causal attention (up to renormalisation rounding);
    # strong centres move far less than delta
    assert np.all(moved[0] <= 1e-14)
    assert max(moved[k].max() for k in strong) < DELTA / 10
    # at the end every token is close to a Rényi centre, most to a strong one
    assert max(data["final_distance_to_renyi"]) <= DELTA
    assert np.mean(np.array(data["final_distance_to_strong"]) <= DELTA) >= 0.6
    for summary in data["seeds_summary"]:
        assert summary["strong_moved"] < DELTA / 10 and summary["strong"] <= summary["renyi"]
    assert all(c.passed and c.value < DELTA / 10 for c in report.checks)


def test_renyi_parking_by_hand():
    theta = np.array([0.0, 0.4, 0.8, 3.0, -2.9])
    # 0.4 is within delta = 0.5 of centre 0; 0.8 is 0.8 from centre 0 (a centre) but 0.4 from
    # token 1 (not strong); 3.0 and -2.9 are 0.38 apart across pi
    assert renyi_centres(theta, 0.5) == [0, 2, 3]
    assert renyi_centres(theta, 0.5, strong=True) == [0, 3]
    np.testing.assert_allclose(arc(3.0, -2.9), 2 * np.pi - 5.9)
