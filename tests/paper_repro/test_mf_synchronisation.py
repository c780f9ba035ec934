"""M3: synchronisation versus beta, made by the synchronisation study, from its stored numbers."""

import numpy as np

from experiments.runner import load_study
from paper_repro.mf_synchronisation import TINY_BETAS


def test_m3_thresholds_from_the_study(make, tmp_path):
    report, data = make("M3", "M3_synchronisation")
    betas = np.array(data["parameters"]["betas"])
    np.testing.assert_array_equal(betas, TINY_BETAS)
    for n, fraction in data["synchronising"].items():
        fraction = np.array(fraction)
        assert np.all(fraction[betas >= -0.16] == 1.0)  # 2507.22857: synchronises
        assert np.any(fraction[betas < -2 / 3] < 1.0)  # three clusters stable below -2/3
        stopped = np.array(data["stopped"][n])
        np.testing.assert_allclose(fraction + stopped, 1.0)  # every other start is at rest
        low, high = np.array(data["synchronising_interval"][n])
        assert np.all((low <= fraction) & (fraction <= high))
    eig = data["three_cluster_eigenvalue"]
    beta = np.array(eig["beta"])
    np.testing.assert_allclose(eig["inter"], (0.5 + 0.75 * beta) * np.exp(-beta / 2), atol=1e-12)
    assert len(report.checks) == 4 and all(c.passed for c in report.checks)
    # the figure's numbers are the study's: the store next to it holds them, config included
    ds, config = load_study(tmp_path / data["parameters"]["store"])
    assert config.study == "synchronisation"
    assert config.to_toml() == data["parameters"]["config_toml"]
    diameter = ds["diameter"].values[:, 0, 0]
    np.testing.assert_allclose((diameter < np.pi / 2).mean(axis=0), data["synchronising"]["8"])
