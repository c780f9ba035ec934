"""The f3-panel benchmark's from-scratch dense loop is the authors' scheme, step for step."""

import math

import numpy as np

from dynamics import SA, fraction_clustered_pairs, simulate
from experiments.bench.f3_panel import clustered_fraction, dense_step, draw_tokens


def test_dense_loop_is_the_authors_scheme(rng):
    beta = float(rng.uniform(0.5, 9.0))
    x0 = draw_tokens(rng, batch=3, n=6, d=10)
    np.testing.assert_allclose(np.linalg.norm(x0, axis=-1), 1.0, rtol=1e-14)
    x = x0
    for _ in range(20):
        x, _ = dense_step(x, beta)
    times = np.round(np.arange(21) * 0.1, 10)
    ours = simulate(SA(beta), x0, times, method="authors", dt=0.1, reduce=False).final
    np.testing.assert_allclose(x, ours, atol=1e-12)
    # the statistic from the step's Gram matrix is the package's observable; delta puts the
    # threshold at the median off-diagonal inner product, so about half the pairs count
    _, gram = dense_step(x, beta)
    delta = 1.0 - float(np.median(gram[:, ~np.eye(6, dtype=bool)]))
    expected = float(np.mean(fraction_clustered_pairs(delta)(x)))
    assert 0.3 < expected < 0.7
    assert math.isclose(clustered_fraction(gram, delta), expected, rel_tol=1e-12)
