"""C4: the n = 5 metastable two-cluster state and its merge time from the two-cluster ODE."""


import numpy as np

from dynamics import CircleSA, simulate
from paper_repro.c4_metastability import two_cluster_merge_time


def test_c4_metastable_state_and_merge_time(make):
    report, data = make("C4", "C4_metastability")
    two = data["two_clusters"]
    assert sorted(two["masses"]) == [2, 3]
    merge = data["merge_time"]
    # two clusters persist for hundreds of time units after forming within a few
    assert two["formed_at"] < 10 and merge["simulated"] > 300
    assert abs(merge["two_cluster_ode"] - merge["simulated"]) < 0.01 * merge["simulated"]
    counts = data["cluster_count_changes"]["counts"]
    assert counts == sorted(counts, reverse=True) and counts[-1] == 1
    merge_check, energy_check = report.checks
    assert energy_check.passed and energy_check.value >= -1e-12
    assert merge_check.passed and merge_check.value < 0.01


def test_two_cluster_reduction_against_two_tokens(rng):
    """Two single tokens (masses 1, 1) are exactly the reduced system: compare merge times."""
    beta, gap = float(rng.uniform(1.0, 4.0)), float(rng.uniform(1.5, 2.5))
    predicted = two_cluster_merge_time(gap, (1, 1), "exact", beta=beta, delta=1e-3)
    times = np.linspace(0.0, predicted * 1.2, 1201)
    theta = simulate(CircleSA(beta), np.array([[0.0, gap]]), times, rtol=1e-10,
                     atol=1e-12).values[0]
    separation = np.abs(theta[:, 1] - theta[:, 0])
    simulated = times[np.argmax(np.cos(separation) >= 1 - 1e-3)]
    assert abs(simulated - predicted) <= 1.5 * (times[1] - times[0])
    # the faithful map approaches the ODE as the step shrinks
    coarse = two_cluster_merge_time(gap, (1, 1), "faithful", beta=beta, h=0.1)
    fine = two_cluster_merge_time(gap, (1, 1), "faithful", beta=beta, h=0.01)
    assert abs(fine - predicted) < abs(coarse - predicted) / 5 + 0.02
