"""The Gram-space steps equal the token-space schemes (Q = K = V = I closes on G)."""

import numpy as np
import pytest

from dynamics import SA, USA, simulate, uniform_sphere
from dynamics.gram_space import fraction_clustered_from_gram, gram_flow
from dynamics.observables import fraction_clustered_pairs, gram


@pytest.mark.parametrize("method", ["authors", "euler"])
@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_gram_flow_equals_the_token_scheme(rng, method, normalization):
    x0 = uniform_sphere(rng, 3, 7, 5)
    beta = np.array([0.3, 2.5, -1.2])
    field = (SA if normalization == "softmax" else USA)(beta=beta[:, None, None])
    times = np.round(np.arange(0, 13) * 0.25, 12)
    tokens = simulate(field, x0, times, method=method, dt=0.125, reduce=False).values
    want = tokens @ np.swapaxes(tokens, -1, -2)
    got = gram_flow(x0, beta, times, dt=0.125, method=method, normalization=normalization)
    assert got.shape == (3, 13, 7, 7)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.einsum("btii->bti", got), 1.0, atol=1e-14)


def test_the_fraction_on_gram_equals_the_fraction_on_tokens(rng):
    x0 = uniform_sphere(rng, 4, 16, 40)
    beta = np.array([0.5, 1.0, 4.0, 8.0])
    times = np.arange(0, 31) * 0.5
    observe = fraction_clustered_pairs(1e-3)
    want = simulate(SA(beta=beta[:, None, None]), x0, times, method="authors", dt=0.1,
                    observe=observe).values
    got = gram_flow(x0, beta, times, dt=0.1, observe=fraction_clustered_from_gram(1e-3))
    np.testing.assert_array_equal(got, want)
    assert got[:, 0].max() == 0 and got[0, -1] == 1  # uniform starts: nothing clustered at t = 0


def test_gram_flow_refuses_off_grid_times_and_bad_input(rng):
    x0 = uniform_sphere(rng, 1, 4, 3)
    with pytest.raises(ValueError, match="step grid"):
        gram_flow(x0, 1.0, [0.0, 0.15], dt=0.1)
    with pytest.raises(ValueError, match="method"):
        gram_flow(x0, 1.0, [0.0, 0.1], dt=0.1, method="rk4")
    with pytest.raises(ValueError, match="normalization"):
        gram_flow(x0, 1.0, [0.0, 0.1], dt=0.1, normalization="sinkhorn")
    np.testing.assert_allclose(gram(x0)[0], x0[0] @ x0[0].T)
