"""F6: g(tau) = (cos tau - beta sin^2 tau) e^{beta cos tau} changes sign exactly at tau*_beta."""

import math

import numpy as np


def test_f6_sign_change_at_tau_star(make):
    report, data = make("F6", "F6_hessian_kernel")
    tau = np.array(data["tau"])
    for beta in data["parameters"]["betas"]:
        key = f"beta={beta:g}"
        star, g = data["tau_star"][key], np.array(data["g"][key])
        # tau* is the root in (0, pi/2) of beta sin^2 tau = cos tau, in closed form
        cos_star = (-1 + math.sqrt(1 + 4 * beta**2)) / (2 * beta)
        assert math.isclose(math.cos(star), cos_star, rel_tol=1e-12)
        # the drawn curve is g, positive inside (-tau*, tau*) and negative outside
        np.testing.assert_allclose(g, (np.cos(tau) - beta * np.sin(tau) ** 2)
                                   * np.exp(beta * np.cos(tau)), rtol=1e-12)
        assert np.all(g[np.abs(tau) < star] > 0) and np.all(g[np.abs(tau) > star] < 0)
        assert math.isclose(g[np.argmin(np.abs(tau))], math.exp(beta), rel_tol=1e-12)
    # tau* sqrt(beta) -> 1 from below as beta grows
    ratios = [data["tau_star"][f"beta={b:g}"] * math.sqrt(b) for b in data["parameters"]["betas"]]
    assert ratios[0] < ratios[1] < 1
    assert len(report.checks) == 4 and all(c.passed for c in report.checks)
    assert all(c.value == 0 for c in report.checks if c.sense == "==")
