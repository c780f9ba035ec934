"""M1: particles -> PDE, from the figure's stored numbers."""

import numpy as np
import pytest

from paper_repro.mf_convergence import mean_field_gap, start_density

START = start_density()


def test_m1_w1_decays_like_root_n_under_dobrushin(make):
    stem = "M1_mean_field_convergence"
    report, data = make("M1", stem, seed=1)
    assert sorted(p.name for p in report.files) == [f"{stem}.{e}" for e in ("json", "pdf", "png")]
    w1 = np.array(data["w1"])  # (ns, seeds, times)
    times = np.array(data["times"])
    bound = w1[:, :, :1] * np.exp(data["dobrushin_rate"] * times)
    assert np.all(w1 <= bound + 1e-12)
    ns = np.array(data["parameters"]["ns"])
    for index in (0, -1):
        slope = np.polyfit(np.log(ns), np.log(w1[:, :, index].mean(axis=1)), 1)[0]
        assert -0.75 < slope < -0.25
    # quantile starts follow the characteristics: n W1 = pi/2 at every t
    np.testing.assert_allclose(np.array(data["quantile_n_w1"])[-1], np.pi / 2, atol=1e-3)
    np.testing.assert_allclose(data["mass"], 1.0, atol=1e-13)
    assert min(data["min_density"]) > 0
    assert len(report.checks) == 4 and all(c.passed for c in report.checks)


def test_particles_converge_to_the_pde_like_root_n():
    gap = mean_field_gap(START, 1.0, "softmax", ns=(50, 200, 800), times=(0.0, 1.0, 2.0),
                         seeds=6, seed=11)
    for index in (0, -1):
        assert -0.7 < gap.slope(index) < -0.3
    assert np.all(gap.w1 <= gap.bound + 1e-12)
    assert gap.solution.min_density.min() > 0  # the PDE stayed resolved


def test_quantile_starts_converge_like_one_over_n():
    gap = mean_field_gap(START, 1.0, "usa", ns=(40, 160, 640), times=(0.0, 1.0), seeds=1,
                         quantiles=True)
    assert gap.slope(0) == pytest.approx(-1.0, abs=0.05)
    assert gap.slope(-1) == pytest.approx(-1.0, abs=0.05)
