"""C2: Boolean attention in d = 1 (2305.05465 Thm 2.1): rows e_a / e_b, rank <= 3."""

import numpy as np

from paper_repro.c2_boolean_attention import attention_matrix, boolean_structure


def test_c2_limit_is_boolean(make):
    report, data = make("C2", "C2_boolean_attention", scheme="exact")
    ranks = np.array(data["seeds_rank"])
    assert ranks.size == data["parameters"]["seeds"]
    assert ranks.max() <= 3 and ranks.min() >= 1
    assert np.array(data["seeds_exceptional_rows"]).max() <= 1
    shown = data["shown"]
    p0, p_end = np.array(shown["t=0"]["P"]), np.array(shown["t=12"]["P"])
    # row-stochastic at every time; the rank collapses from generic to at most 3
    np.testing.assert_allclose(p0.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p_end.sum(axis=1), 1.0, rtol=1e-12)
    assert shown["t=0"]["rank"] > 3 >= shown["t=12"]["rank"]
    limit = data["shown_limit"]
    assert set(limit["leaders"]) <= set(limit["extremes"])
    rank, rows = report.checks
    assert rank.passed and rank.value == ranks.max() <= 3
    assert rows.passed and rows.value <= 1


def test_boolean_structure_of_hardmax_rows(rng):
    """For tokens far from 0, P is numerically the hardmax: rows are e_argmax or e_argmin."""
    x = rng.permutation(np.array([-3.0, -2.0, -1.5, 1.0, 2.2, 3.4]) * 10)
    t = float(rng.uniform(0.0, 2.0))
    p = attention_matrix(t, x[None, :, None] * np.exp(-t))[0]  # x = e^t z
    result = boolean_structure(p, x)
    assert result["exceptional_rows"] == 0
    assert result["leaders"] == result["extremes"] == sorted([int(np.argmax(x)),
                                                              int(np.argmin(x))])
    assert result["rank"] == 2
