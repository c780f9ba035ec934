"""F8: the equiangular curve (6.9), the authors' scheme's exact map, and their crossing times."""

import math

import numpy as np

from dynamics import SA, gram, orthogonal, simulate, theory
from paper_repro.f8_equiangular import authors_boundary_beta, authors_map, crossing


def test_f8_curves_and_scheme_bias(make):
    report, data = make("F8", "F8_equiangular")
    for key, record in data["curves"].items():
        beta = float(key.split("=")[1])
        exact, faithful = record["exact"], record["faithful"]
        # Thm 6.8: from an orthogonal start the exact flow follows (6.9) ...
        assert exact["max_dev_orthogonal"] < 1e-7
        # ... and the authors' scheme follows its own equiangular map to rounding
        assert faithful["max_dev_orthogonal"] < 1e-12
        assert exact["orthogonal_spread"] < 1e-10
        # Thm 6.9: uniform starts at d = 1024 stay close to the curve
        assert exact["max_dev_uniform"] < 0.1 and faithful["max_dev_uniform"] < 0.1
        # the authors' scheme clusters later: its crossing time is biased upwards
        assert record["t_star_authors_map"] > record["t_star_ode"]
        np.testing.assert_allclose(record["t_star_ode"], theory.crossing_time(beta, 32, 1e-3))
    boundary = data["boundary_beta_at_T"]
    # Gamma_inf,delta at t = 30 for n = 32 lies between the paper's overlay and its d = 1024 panel
    assert 6.85 < boundary["exact (6.9)"] < 7.0
    assert 6.7 < boundary["authors scheme"] < boundary["exact (6.9)"]
    assert len(report.checks) == 3 * len(data["curves"]) + 1
    assert all(c.passed for c in report.checks)
    last = report.checks[-1]
    assert last.value == boundary["authors scheme"] - boundary["exact (6.9)"] < 0


def test_authors_map_is_the_scheme_and_tends_to_the_ode(rng):
    beta, n, h = float(rng.uniform(0.5, 5.0)), 6, 0.1
    # the map is the authors' step applied to an equiangular configuration (independent check)
    x0 = orthogonal(int(rng.integers(1 << 30)), 1, n, n)
    times = np.round(np.arange(41) * h, 10)
    sim = simulate(SA(beta), x0, times, method="authors", dt=h, observe=gram).values[0]
    gaps = authors_map(beta, n, h, 40)
    np.testing.assert_allclose(1 - sim[:, 0, 1], gaps, rtol=1e-10, atol=1e-14)
    # as h -> 0 the map converges to (6.9) at first order
    errors = []
    for step in (0.02, 0.01):
        k = round(2.0 / step)
        errors.append(abs(authors_map(beta, n, step, k)[-1]
                          - theory.solve_equiangular([0.0, 2.0], beta, n).gap[-1]))
    assert 1.7 < errors[0] / errors[1] < 2.3
    # beta = 0 closed form of the crossing and of the boundary's inverse
    assert math.isclose(crossing(np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0.25), 0.25)
    t30 = authors_boundary_beta(30.0)
    gaps = authors_map(t30, 32, 0.1, 300)
    assert math.isclose(gaps[-1], 1e-3, rel_tol=2e-2)
