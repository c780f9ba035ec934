"""Attention paths agree with the materialised reference on random inputs."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attention import attend, attend_chunked, attend_fast, attention_weights
from attention.reference import NORMALIZATIONS


def _inputs(rng, batch, n, m, e, f):
    q = rng.standard_normal((batch, n, e))
    k = rng.standard_normal((batch, m, e))
    v = rng.standard_normal((batch, m, f))
    return q, k, v


def _dense_numpy(q, k, v, beta, normalization, causal):
    """Independent float64 definition: explicit loops over rows."""
    batch, n, _ = q.shape
    m = k.shape[1]
    out = np.zeros((batch, n, v.shape[-1]))
    for b in range(batch):
        bb = beta[b] if np.ndim(beta) else beta
        for i in range(n):
            keys = range(min(i + 1, m)) if causal else range(m)
            s = np.array([bb * q[b, i] @ k[b, j] for j in keys])
            if normalization == "softmax":
                w = np.exp(s - s.max())
                w /= w.sum()
            else:
                w = np.exp(s - (bb if normalization == "usa-shifted" else 0.0)) / m
            out[b, i] = w @ v[b, list(keys)]
    return out


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("causal", [False, True])
def test_reference_matches_row_by_row_definition(rng, normalization, causal):
    q, k, v = _inputs(rng, 2, 7, 7, 3, 4)
    beta = 1.7
    expected = _dense_numpy(q, k, v, beta, normalization, causal)
    got = attend(q, k, v, beta, normalization=normalization, causal=causal)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_softmax_rows_are_probability_vectors(rng):
    q, k, _ = _inputs(rng, 3, 9, 9, 5, 1)
    a = attention_weights(q, k, 2.5, causal=True)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-13)
    assert np.all(a >= 0)
    assert np.all(np.triu(a, 1) == 0)


def test_fully_masked_row_is_refused_not_zero(rng):
    """A query with no key is an error naming the row (attention.masks.check_rows)."""
    q, k, v = _inputs(rng, 1, 4, 4, 3, 3)
    mask = np.ones((4, 4), dtype=bool)
    mask[2] = False
    with pytest.raises(ValueError, match=r"rows \[2\]"):
        attend(q, k, v, 1.0, mask=mask)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("causal", [False, True])
def test_chunked_equals_dense(rng, normalization, causal):
    q, k, v = _inputs(rng, 2, 301, 301, 4, 6)
    beta = np.array([0.5, 3.0])[:, None, None]
    dense = attend(q, k, v, beta, normalization=normalization, causal=causal)
    for chunk in (64, 100, 257):
        got = attend_chunked(q, k, v, beta, normalization=normalization, causal=causal, chunk=chunk)
        np.testing.assert_allclose(got, dense, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_route_equals_reference(rng, normalization, causal):
    q, k, v = _inputs(rng, 3, 130, 130, 5, 5)
    beta = 1.3
    ref = attend(q, k, v, beta, normalization=normalization, causal=causal)
    via_numpy = attend_fast(q, k, v, beta, normalization=normalization, causal=causal, path="sdpa")
    np.testing.assert_allclose(via_numpy, ref, rtol=1e-10, atol=1e-12)
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
    tb = torch.tensor([0.2, 1.3, -0.7], dtype=torch.float64)[:, None, None]
    ref_b = attend(q, k, v, tb.numpy(), normalization=normalization, causal=causal)
    via_torch = attend_fast(tq, tk, tv, tb, normalization=normalization, causal=causal)
    np.testing.assert_allclose(via_torch.numpy(), ref_b, rtol=1e-10, atol=1e-12)


def test_sdpa_float32_close_to_float64_reference(rng):
    q, k, v = _inputs(rng, 2, 200, 200, 8, 8)
    ref = attend(q, k, v, 0.9)
    got = attend_fast(*(torch.from_numpy(a).float() for a in (q, k, v)), 0.9)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), ref, rtol=2e-5, atol=2e-5)


def test_jax_paths_equal_numpy(rng):
    q, k, v = _inputs(rng, 2, 50, 50, 3, 3)
    ref = attend(q, k, v, 2.0, normalization="usa", causal=True)
    jq, jk, jv = (jnp.asarray(a) for a in (q, k, v))
    for path in ("auto", "reference", "chunked"):
        got = attend_fast(jq, jk, jv, 2.0, normalization="usa", causal=True, path=path)
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_small_path_equals_the_row_by_row_definition(rng, normalization):
    """The a-priori row shift changes nothing: numpy and torch, per-member beta of both signs."""
    q, k, v = _inputs(rng, 3, 17, 23, 4, 6)
    beta = np.array([0.4, -2.5, 3.1])[:, None, None]
    want = _dense_numpy(q, k, v, beta[:, 0, 0], normalization, False)
    got = attend_fast(q, k, v, beta, normalization=normalization, path="small")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    tq, tk, tv, tb = (torch.from_numpy(a) for a in (q, k, v, beta))
    got_torch = attend_fast(tq, tk, tv, tb, normalization=normalization)  # auto: small
    np.testing.assert_allclose(got_torch.numpy(), want, rtol=1e-12, atol=1e-13)


def test_small_path_falls_back_to_the_row_maximum_when_the_bound_is_loose(rng):
    """float32 with |beta| ||q|| ||k|| in the hundreds: the bound shift would underflow rows."""
    q, k, v = _inputs(rng, 2, 12, 12, 3, 3)
    q *= 40.0
    want = _dense_numpy(q, k, v, 2.0, "softmax", False)
    got = attend_fast(*(a.astype(np.float32) for a in (q, k, v)), 2.0, path="small")
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


def test_sphere_rows_shift_by_exactly_beta(rng):
    """On the sphere with q = k the bound c_i = beta is the diagonal score: the largest
    weight of every row is exactly exp(0) = 1 before normalisation, so no precision is lost
    even at beta = 300 in float64."""
    x = rng.standard_normal((2, 30, 3))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    want = _dense_numpy(x, x, x, 300.0, "softmax", False)
    np.testing.assert_allclose(attend_fast(x, x, x, 300.0, path="small"), want, rtol=1e-11)


def test_path_errors():
    q = np.ones((1, 2, 3))
    with pytest.raises(ValueError, match="normalization"):
        attend_fast(q, q, q, 1.0, normalization="sparsemax")
    with pytest.raises(ValueError, match="path"):
        attend_fast(q, q, q, 1.0, path="flash")
    with pytest.raises(ValueError, match="sdpa"):
        attend_fast(jnp.asarray(q), jnp.asarray(q), jnp.asarray(q), 1.0, path="sdpa")
    with pytest.raises(ValueError, match="small"):
        attend_fast(q, q, q, 1.0, causal=True, path="small")


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    e=st.integers(1, 9),
    beta=st.floats(-6, 6),
    normalization=st.sampled_from(NORMALIZATIONS),
    causal=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_all_paths_agree_on_random_shapes(n, e, beta, normalization, causal, seed):
    q, k, v = _inputs(np.random.default_rng(seed), 2, n, n, e, e)
    ref = attend(q, k, v, beta, normalization=normalization, causal=causal)
    for path in ("chunked", "sdpa") if causal else ("chunked", "sdpa", "small"):
        got = attend_fast(q, k, v, beta, normalization=normalization, causal=causal, path=path)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-10)
