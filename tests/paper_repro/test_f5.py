"""F5: the paper's reading of the four random-matrix phase diagrams, on the simulated P."""

import numpy as np

import paper_repro.f5_random_matrices  # noqa: F401  (registers F5)
from paper_repro.f5_random_matrices import claim, first_crossing, panel_summary


def test_f5_panels_show_the_papers_reading(make):
    report, data = make("F5", "F5_random_matrices")
    betas = np.array(data["parameters"]["betas"])
    times = np.array(data["parameters"]["times"])
    for panel in "abcd":
        prob = np.array(data["probability"][panel])
        assert prob.shape == (betas.size, times.size)
        # d = 128: no two of the 32 random tokens start within delta of each other
        assert np.all(prob[:, 0] == 0)
        assert data["summary"][panel]["claim_holds"], panel
    t_half = np.array(data["summary"]["a"]["t_half"])
    assert np.all((t_half > 5) & (t_half < 10))  # (a): the transition near t = 7 at every beta
    # (b) stays clustered at every beta; (c) and (d) only at small beta
    assert min(data["summary"]["b"]["p_at_T"]) > 0.5
    for panel in "cd":
        assert data["summary"][panel]["p_at_T"][-1] < 0.5
    assert [c.value for c in report.checks] == [True] * 4
    assert all(c.passed for c in report.checks)


def test_first_crossing_and_claims_on_synthetic_panels(rng):
    times = np.linspace(0.0, 30.0, 61)
    betas = np.linspace(0.5, 9.0, 18)
    jump = rng.uniform(6.0, 8.0, size=betas.size)
    sharp = (times[None, :] >= jump[:, None]).astype(float)  # (a): a vertical transition
    crossing = first_crossing(sharp, times)
    assert np.all(np.abs(crossing - jump) <= 0.5)
    summary = panel_summary(sharp, betas, times)
    assert claim("a", summary, betas)[1]
    # a panel clustered only at the smallest beta is (c), not (a) or (b)
    low_only = np.zeros_like(sharp)
    low_only[0, times >= 7.0] = 1.0
    summary = panel_summary(low_only, betas, times)
    assert claim("c", summary, betas)[1]
    assert not claim("a", summary, betas)[1]
    assert not claim("b", summary, betas)[1]
    assert np.isnan(first_crossing(np.zeros((1, times.size)), times)[0])
