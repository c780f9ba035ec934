"""Constructors refuse what they would silently change (issue 15, "nothing silent"):
complex weights (their imaginary part would be dropped), non-integral or boolean sizes
(8.7 bits would become 8, heads=True would be one head), and a boolean mask that leaves a
query with no key (one behaviour everywhere: ValueError naming the rows)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from attention import attend, attention_weights, grouped_attention
from attention.config import OperatorConfig, build
from attention.variants.saq import Staircase
from attention.variants.standard import Projections


def _complex(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@pytest.mark.parametrize("name", ["W_Q", "W_K", "W_V", "W_O"])
def test_complex_projection_weights_are_refused(rng, name):
    H, d, e = 2, 8, 4
    shape = (H, e, d) if name == "W_O" else (H, d, e)
    for w in (_complex(rng, shape), torch.as_tensor(_complex(rng, shape))):
        with pytest.raises(TypeError, match=name):
            Projections(**{name: w}, d=d)


def test_complex_factorised_and_latent_weights_are_refused(rng):
    cfg = OperatorConfig("mfa", d_model=16, heads=2)
    op = build(cfg, int(rng.integers(100)))
    heads = op.heads
    with pytest.raises(TypeError, match="Q"):
        replace(heads, Q=heads.Q * (1 + 1j))
    op = build(OperatorConfig("mla", d_model=16, heads=2), int(rng.integers(100)))
    heads = op.heads
    with pytest.raises(TypeError, match="W_DKV"):
        replace(heads, W_DKV=heads.W_DKV * (1 + 1j))


@pytest.mark.parametrize("bad", [8.7, 4.0, True, "8", np.float64(2.5)])
def test_non_integral_bit_widths_are_refused(bad):
    with pytest.raises((TypeError, ValueError), match="saq_bits"):
        OperatorConfig("saq", d_model=16, heads=4, saq_bits=(bad,))
    with pytest.raises((TypeError, ValueError), match="bit widths"):
        Staircase(bits=(bad,))


@pytest.mark.parametrize("name", ["heads", "d_model", "head_dim", "groups", "latent_dim",
                                  "block", "window"])
@pytest.mark.parametrize("bad", [True, False, 4.0, 2.5])
def test_booleans_and_floats_are_not_sizes(name, bad):
    kwargs = {"d_model": 16, "heads": 4, name: bad}
    with pytest.raises((TypeError, ValueError), match=name):
        OperatorConfig("gqa" if name == "groups" else "mha", **kwargs)


@pytest.mark.parametrize("key", ["heads", "groups", "d"])
def test_projection_sizes_reject_booleans(key):
    with pytest.raises(TypeError, match=key):
        Projections(**{"d": 8, key: True})


def test_integer_sizes_still_work(rng):
    heads = int(rng.integers(1, 5))
    cfg = OperatorConfig("saq", d_model=8 * heads, heads=np.int64(heads),
                         saq_bits=(np.int32(8), 4))
    assert cfg.saq_bits == (8, 4) and all(type(b) is int for b in cfg.saq_bits)
    assert Projections(d=8, heads=heads).n_heads == heads


# -- a query row with no key ----------------------------------------------------------------


def _empty_row_mask(rng, n, m):
    allowed = rng.random((n, m)) < 0.6
    allowed[np.arange(n), rng.integers(0, m, n)] = True
    row = int(rng.integers(n))
    allowed[row] = False
    return allowed, row


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_query_with_no_key_is_refused(rng, backend):
    n, m, e = int(rng.integers(3, 10)), int(rng.integers(3, 10)), 4
    q, k, v = (rng.standard_normal(s) for s in ((n, e), (m, e), (m, e)))
    allowed, row = _empty_row_mask(rng, n, m)
    if backend == "torch":
        q, k, v, allowed = (torch.as_tensor(a) for a in (q, k, v, allowed))
    for normalization in ("softmax", "usa", "usa-shifted"):
        with pytest.raises(ValueError, match=rf"mask.*rows \[{row}\]"):
            attend(q, k, v, 1.0, mask=allowed, normalization=normalization)
        with pytest.raises(ValueError, match=rf"mask.*rows \[{row}\]"):
            attention_weights(q, k, 1.0, mask=allowed, normalization=normalization)
    q4, k4, v4 = (a[None, None] for a in (q, k, v))
    for path in ("auto", "reference"):
        with pytest.raises(ValueError, match=rf"mask.*rows \[{row}\]"):
            grouped_attention(q4, k4, v4, 1.0, mask=allowed, path=path)


def test_causal_and_mask_together_can_empty_a_row(rng):
    """Row 0 under causal sees key 0 only: a mask hiding key 0 leaves it with nothing."""
    n, e = int(rng.integers(3, 9)), 4
    q = rng.standard_normal((n, e))
    allowed = np.ones((n, n), dtype=bool)
    allowed[0, 0] = False
    with pytest.raises(ValueError, match=r"rows \[0\]"):
        attend(q, q, q, 1.0, mask=allowed, causal=True)
    with pytest.raises(ValueError, match=r"rows \[0\]"):
        grouped_attention(q[None, None], q[None, None], q[None, None], 1.0, mask=allowed,
                          causal=True)


def test_rows_with_a_key_are_the_softmax_over_the_allowed_keys(rng):
    n, m, e = 6, 7, 3
    q, k, v = (rng.standard_normal(s) for s in ((n, e), (m, e), (m, 2)))
    allowed = rng.random((n, m)) < 0.5
    allowed[np.arange(n), rng.integers(0, m, n)] = True
    beta = float(rng.uniform(0.1, 3.0))
    s = np.where(allowed, beta * q @ k.T, -np.inf)
    w = np.exp(s - s.max(axis=1, keepdims=True))
    expected = (w / w.sum(axis=1, keepdims=True)) @ v
    np.testing.assert_allclose(attend(q, k, v, beta, mask=allowed), expected, rtol=1e-12)
