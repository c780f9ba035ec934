"""F2: the thresholds of the regime map, and the n^2/pi^2 vs 4(n-1)^2/pi^2 discrepancy."""

import math


def test_f2_thresholds(make):
    report, data = make("F2", "F2_regime_map")
    values = data["thresholds"]
    n = values["n"]
    assert values["beta_large_quoted"] == n**2 / math.pi**2
    # the proof's condition (n - 1) tau*_beta = pi/2 holds exactly at beta_large_proof:
    # beta sin^2 tau = cos tau with tau = pi / (2 (n - 1))
    tau = math.pi / (2 * (n - 1))
    beta = values["beta_large_proof"]
    assert math.isclose(beta * math.sin(tau) ** 2, math.cos(tau), rel_tol=1e-12)
    # ... which is about 4 (n-1)^2/pi^2 (tau* ~ beta^(-1/2)), ~3.75 times the quoted value
    assert abs(beta / values["four_(n-1)^2/pi^2"] - 1) < 1e-3
    assert 3.5 < beta / values["beta_large_quoted"] < 4
    # the quoted value corresponds to (n - 1) tau* ~ pi, not pi/2
    assert math.pi / 2 < values["(n-1)tau*_at_quoted"] < math.pi
    # Wendel: certain hemisphere at d = n, one half at d = n/2
    assert values["wendel_d=n"] == 1 and values["wendel_d=n/2"] == 0.5
    assert values["d_star_beta=1"] > 1e16
    assert len(report.files) == 3 and len(report.checks) == 3
    assert all(c.passed for c in report.checks)
    assert report.checks[0].value == values["(n-1)tau*_at_quoted"] < math.pi
