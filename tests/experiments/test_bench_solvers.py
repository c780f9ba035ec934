"""The solver benchmark (``bench --suite solvers``): its contenders - the package's engine,
diffrax, torchode, scipy, torchdiffeq, each written independently - solve the same problem,
so their clustering times agree; at tight tolerances the engine and scipy agree to 1e-6."""

import numpy as np
import pytest

from experiments.bench.solvers import Disagreement, Problem, compare, contender, run_problem


def test_contenders_agree_on_a_small_problem():
    problem = Problem("sa", 8, 3, 4, beta=1.5, horizon=30.0)
    names = ("engine", "native", "diffrax-vmap", "scipy", "torchode", "torchdiffeq", "authors")
    result = run_problem(problem, names, repeats=1, loop_seeds=2,
                         seed=int(np.random.default_rng().integers(1 << 30)), log=lambda s: None)
    contenders = result["contenders"]
    assert set(contenders) == set(names)
    for name in ("native", "diffrax-vmap", "scipy", "torchode", "torchdiffeq"):
        assert contenders[name]["max_time_difference"] < 1e-3 * 30
    assert contenders["native"]["max_time_difference"] < 1e-9  # the same steps
    # the authors' Euler scheme with h = 0.1 is off by O(h), and reported as such
    assert 1e-6 < contenders["authors"]["max_time_difference"] < 2.0
    assert 0 < result["fraction_of_limit"]


def test_engine_and_scipy_agree_at_tight_tolerances():
    problem = Problem("sa", 6, 3, 3, beta=1.0, horizon=40.0, rtol=1e-11, atol=1e-13)
    x0 = problem.initial(int(np.random.default_rng().integers(1 << 30)))
    ours, _ = contender("engine").prepare(problem)(x0)
    scipy_times, _ = contender("scipy").prepare(problem)(x0)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(scipy_times, ours, rtol=1e-6)


def test_disagreements_stop_the_run():
    reference = np.array([3.0, np.nan, 5.0])
    assert compare("x", reference + 1e-4, reference) == pytest.approx(1e-4)
    with pytest.raises(Disagreement, match="censored"):
        compare("x", np.array([3.0, 4.0, 5.0]), reference)
    with pytest.raises(Disagreement, match="relative difference"):
        compare("x", reference * 1.01, reference)
