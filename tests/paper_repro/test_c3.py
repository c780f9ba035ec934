"""C3: the energy staircase plateaus equal sum_q m_q^2 / n^2 (0.20/0.28/0.44/0.52/1.00)."""

import math

import numpy as np

from paper_repro.c3_staircase import ascend, cluster_masses, initial_angles, plateaus


def test_c3_plateaus_match_cluster_masses(make):
    report, data = make("C3", "C3_staircase")
    expected = [[1, 1, 1, 1, 1], [2, 1, 1, 1], [3, 1, 1], [3, 2], [5]]
    for key, curve in data["curves"].items():
        beta = float(key.split("=")[1])
        found = curve["plateaus"]
        assert [p["masses"] for p in found] == expected
        for p in found:
            assert math.isclose(p["level"], sum(m * m for m in p["masses"]) / 25)
        if beta >= 1000:
            assert all(abs(p["plateau"] - p["level"]) <= 0.005 for p in found[1:])
        # the energy reaches its maximum 1 in finite rescaled time, 0.09 to 0.12 in the paper
        assert 0.085 < curve["end_time"] < 0.125
        assert curve["first_merger"] == [0, 1]
    ends = [data["curves"][k]["end_time"] for k in data["curves"]]
    assert ends == sorted(ends, reverse=True)  # larger beta finishes sooner
    plateau = [c for c in report.checks if "plateau" in c.name]
    assert len(plateau) == sum(float(k.split("=")[1]) >= 1000 for k in data["curves"])
    assert all(c.passed and c.value <= 0.005 for c in plateau)
    assert all(c.passed for c in report.checks)


def test_ascent_is_monotone_and_masses_are_read_on_the_circle():
    history, running = ascend((2000.0,), initial_angles(), max_iter=3000)
    theta = history[running[:, 0], 0]
    diff = theta[:, :, None] - theta[:, None, :]
    energy = np.exp(2000.0 * (np.cos(diff) - 1)).mean(axis=(1, 2))
    assert np.all(np.diff(energy) > -1e-12)
    # groups wrap around the circle: -pi + 1e-4 and pi - 1e-4 are one cluster
    assert cluster_masses(np.array([[-math.pi + 1e-4, math.pi - 1e-4, 0.0, 1.0, 1.0005]])) == [
        (2, 2, 1)]
    times = np.arange(4.0)
    out = plateaus(times, np.array([0.2, 0.25, 0.28, 0.28]), [(1, 1), (1, 1), (2,), (2,)])
    assert [p["masses"] for p in out] == [(1, 1), (2,)] and out[1]["plateau"] == 0.28
