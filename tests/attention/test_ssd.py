"""SSD with RoPE (attention.md §9): chunked, recurrent and quadratic forms agree with the
definition written out term by term; the kernel depends on relative positions only."""

import numpy as np
import pytest
import torch

from attention.positional import Rope
from attention.ssd import StateSpaceDuality


def _definition(m: StateSpaceDuality, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """y_i = sum_{j<=i} <R_i C_i, R_j B_j> exp(A sum_{t=j+1}^i Delta_t) Delta_j x_j + D x_i,
    one member, head and pair (i, j) at a time."""
    B, n, _ = x.shape
    H, p = m.n_heads, m.head_dim
    y = np.zeros((B, n, H * p))
    rope = m.rope
    for b in range(B):
        for h in range(H):
            delta = np.logaddexp(0.0, x[b] @ m.W_dt[:, h] + m.b_dt[h])
            xs = x[b] @ m.W_x[h]
            bs, cs = x[b] @ m.W_B[h], x[b] @ m.W_C[h]
            if rope is not None:
                bs, cs = rope(bs, pos), rope(cs, pos)
            for i in range(n):
                out = m.D[h] * xs[i]
                for j in range(i + 1):
                    decay = np.exp(m.A[h] * delta[j + 1 : i + 1].sum())
                    out = out + (cs[i] @ bs[j]) * decay * delta[j] * xs[j]
                y[b, i, h * p : (h + 1) * p] = out
    return y


@pytest.mark.parametrize("rope", [Rope(), None])
def test_the_three_forms_equal_the_definition(rng, rope):
    m = StateSpaceDuality.init(10, 2, 6, seed=int(rng.integers(1 << 30)), rope=rope)
    x = rng.standard_normal((2, 13, 10))
    pos = np.arange(13)
    expected = _definition(m, x, pos)
    np.testing.assert_allclose(m(x, form="quadratic"), expected, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(m(x, form="recurrent"), expected, rtol=1e-11, atol=1e-12)
    for chunk in (1, 4, 5, 13, 20):  # the result does not depend on the chunk size
        np.testing.assert_allclose(m(x, form="chunked", chunk=chunk), expected, rtol=1e-11,
                                   atol=1e-12)
    assert np.abs(expected).max() > 0.1


def test_rope_makes_the_kernel_relative(rng):
    """Shifting every position by a constant leaves the output unchanged; without RoPE the
    positions do not enter at all, and with it they do (a rotated B, C changes y)."""
    m = StateSpaceDuality.init(12, 3, 8, seed=int(rng.integers(1 << 30)))
    x = rng.standard_normal((1, 17, 12))
    pos = np.sort(rng.choice(100, 17, replace=False))
    y = m(x, pos)
    np.testing.assert_allclose(m(x, pos + 1234), y, rtol=1e-10, atol=1e-11)
    assert not np.allclose(m(x, pos * 2), y)


def test_the_state_is_all_a_decoder_keeps(rng):
    """The state after a prefix, carried through the recurrence over the rest, gives the
    outputs of the whole sequence; its size H N p does not grow with the sequence."""
    m = StateSpaceDuality.init(8, 2, 4, head_dim=3, seed=int(rng.integers(1 << 30)))
    x = rng.standard_normal((2, 15, 8))
    for n in (4, 15):
        assert m.state(x[:, :n]).shape == (2, 2, 4, 3)
    assert m.state_elements == 2 * 4 * 3
    h = m.state(x[:, :9])
    xh, b, c, delta = m._inputs(x, np.arange(15))
    A = m.A
    ys = []
    for i in range(9, 15):  # the recurrence from h, one token at a time
        h = np.exp(A * delta[..., i])[..., None, None] * h + (
            delta[..., i, None, None] * b[..., i, :, None] * xh[..., i, None, :])
        ys.append((c[..., i, None, :] @ h)[..., 0, :] + m.D[:, None] * xh[..., i, :])
    tail = np.stack(ys, axis=2).transpose(0, 2, 1, 3).reshape(2, 6, 6)
    np.testing.assert_allclose(tail, m(x)[:, 9:], rtol=1e-11, atol=1e-12)


def test_backends_agree(rng):
    import jax.numpy as jnp

    x = rng.standard_normal((2, 11, 8))
    seed = int(rng.integers(1 << 30))
    ref = StateSpaceDuality.init(8, 2, 4, seed=seed)(x)
    got = StateSpaceDuality.init(8, 2, 4, seed=seed, backend="torch")(torch.as_tensor(x))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-13)
    got = StateSpaceDuality.init(8, 2, 4, seed=seed, backend="jax")(jnp.asarray(x), chunk=3)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-13)


def test_bad_input(rng):
    m = StateSpaceDuality.init(8, 2, 4, seed=0)
    with pytest.raises(ValueError, match="form"):
        m(rng.standard_normal((1, 3, 8)), form="fft")
    with pytest.raises(ValueError, match=r"\(batch, n, 8\)"):
        m(rng.standard_normal((1, 3, 7)))
    with pytest.raises(ValueError, match="even"):
        StateSpaceDuality.init(8, 2, 5, seed=0)
    with pytest.raises(ValueError, match="W_dt"):
        StateSpaceDuality(m.W_x, m.W_B, m.W_C, m.W_dt[:, :1], m.b_dt, m.A, m.D)
