"""SSD with RoPE (Wonderful Matrices §6.2) as a flow: the velocity is the masked-attention
definition written out term by term, the field is causal, the sphere flow keeps |x_i| = 1,
and the backends and the torch layer agree."""

import numpy as np
import pytest
import torch

from attention.array_api import from_numpy, to_numpy
from attention.ssd import StateSpaceDuality
from attention.ssd_layer import SSDLayer
from dynamics import EUCLIDEAN, SPHERE, normalize, simulate
from dynamics.fields.ssd import SSDField


def _rotate(v: np.ndarray, pos: int, base: float = 10000.0) -> np.ndarray:
    """RoPE of one vector (half layout): pairs (v_k, v_{k+e/2}) turned by pos base^{-2k/e}."""
    e = v.size
    ang = pos * base ** (-np.arange(0, e, 2) / e)
    a, b = v[: e // 2], v[e // 2 :]
    return np.concatenate([a * np.cos(ang) - b * np.sin(ang), b * np.cos(ang) + a * np.sin(ang)])


def _velocity(m: StateSpaceDuality, x: np.ndarray, sphere: bool) -> np.ndarray:
    """dx_i/dt from the raw weights, one member, head and pair (i, j) at a time:
    concat_h [sum_{j<=i} <R_i C_i, R_j B_j> e^{A_h sum_{t=j+1}^i Delta_t} Delta_j x_j W_x^h
    + D_h x_i W_x^h] W_out, then P^perp_{x_i} on the sphere."""
    W_x, W_B, W_C, W_dt, b_dt, A, D, W_out = (
        np.asarray(getattr(m, n)) for n in ("W_x", "W_B", "W_C", "W_dt", "b_dt", "A", "D",
                                            "W_out"))
    batch, n, d = x.shape
    H, p = W_x.shape[0], W_x.shape[2]
    v = np.zeros((batch, n, d))
    for b in range(batch):
        for i in range(n):
            heads = []
            for h in range(H):
                delta = [np.log1p(np.exp(x[b, t] @ W_dt[:, h] + b_dt[h])) for t in range(n)]
                c_i = _rotate(x[b, i] @ W_C[h], i)
                out = D[h] * (x[b, i] @ W_x[h])
                for j in range(i + 1):
                    b_j = _rotate(x[b, j] @ W_B[h], j)
                    decay = np.exp(A[h] * sum(delta[j + 1 : i + 1]))
                    out = out + (c_i @ b_j) * decay * delta[j] * (x[b, j] @ W_x[h])
                heads.append(out)
            y = np.concatenate(heads) @ W_out
            if sphere:
                y = y - (x[b, i] @ y) * x[b, i]
            v[b, i] = y
    assert H * p == W_out.shape[0]
    return v


def _ssd(rng, d=6, heads=2, state=4, head_dim=None) -> StateSpaceDuality:
    return StateSpaceDuality.init(d, heads, state, head_dim, seed=int(rng.integers(1 << 30)),
                                  output=True)


@pytest.mark.parametrize("form", ["quadratic", "recurrent", "chunked"])
@pytest.mark.parametrize("space", [SPHERE, EUCLIDEAN])
def test_velocity_is_the_quadratic_definition(rng, form, space):
    m = _ssd(rng, head_dim=3)  # H p = 6 = d, W_out 6 x 6
    x = normalize(rng.standard_normal((2, 7, 6)))
    if space is EUCLIDEAN:
        x = x * rng.uniform(0.5, 2.0, (2, 7, 1))
    field = SSDField(m, space, form=form, chunk=3)
    expected = _velocity(m, x, sphere=space is SPHERE)
    np.testing.assert_allclose(field(0.7, x), expected, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(field(5.0, x), expected, rtol=1e-11, atol=1e-12)  # autonomous
    assert not field.time_dependent
    assert np.abs(expected).max() > 0.1
    if space is SPHERE:  # tangent: <x_i, v_i> = 0
        np.testing.assert_allclose(np.sum(x * expected, axis=-1), 0.0, atol=1e-13)
        np.testing.assert_allclose(field.drive(0.0, x), _velocity(m, x, sphere=False),
                                   rtol=1e-11, atol=1e-12)


def test_an_output_map_is_the_heads_times_w_out(rng):
    """init(output=True) draws W_out after the other weights, and y = concat_h(...) W_out;
    H p need not equal d (here 2 x 5 = 10 features map back to d = 6)."""
    seed = int(rng.integers(1 << 30))
    bare = StateSpaceDuality.init(6, 2, 4, head_dim=5, seed=seed)
    closed = StateSpaceDuality.init(6, 2, 4, head_dim=5, seed=seed, output=True)
    for name in ("W_x", "W_B", "W_C", "W_dt", "b_dt", "A", "D"):
        np.testing.assert_array_equal(getattr(bare, name), getattr(closed, name))
    assert bare.d_out == 10 and closed.d_out == 6 and closed.W_out.shape == (10, 6)
    x = rng.standard_normal((2, 9, 6))
    np.testing.assert_allclose(closed(x), bare(x) @ closed.W_out, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(SSDField(closed)(0.0, normalize(x)),
                               _velocity(closed, normalize(x), sphere=True),
                               rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("space", [SPHERE, EUCLIDEAN])
def test_token_i_moves_under_tokens_j_le_i_only(rng, space):
    """Causality: moving token k changes no velocity of a token i < k, and does change
    the velocities of tokens i >= k."""
    field = SSDField(_ssd(rng, d=8, heads=2, state=6), space, chunk=4)
    x = normalize(rng.standard_normal((1, 10, 8)))
    v = field(0.0, x)
    for k in (0, 3, 4, 9):
        y = x.copy()
        y[0, k] = normalize(rng.standard_normal(8))
        w = field(0.0, y)
        np.testing.assert_array_equal(w[:, :k], v[:, :k])
        assert np.all(np.abs(w[:, k:] - v[:, k:]).max(axis=-1) > 1e-8)


def test_sphere_flow_keeps_unit_norms(rng):
    """The velocity is tangent, so d|x_i|^2/dt = 0: classical RK4 in the ambient space,
    with no retraction, stays on the sphere up to its O(dt^4) error, and simulate's
    retracted RK4 agrees with it."""
    field = SSDField(_ssd(rng, d=6, heads=3, state=4), SPHERE)
    x0 = normalize(rng.standard_normal((2, 8, 6)))
    h, steps = 0.02, 100
    x = x0
    for k in range(steps):
        t = k * h
        k1 = field(t, x)
        k2 = field(t + h / 2, x + h / 2 * k1)
        k3 = field(t + h / 2, x + h / 2 * k2)
        k4 = field(t + h, x + h * k3)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-7)
    got = simulate(field, x0, [0.0, h * steps], method="rk4", dt=h, reduce=False).final
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-14)
    np.testing.assert_allclose(got, x, atol=1e-7)
    assert np.abs(got - x0).max() > 0.05  # the tokens did move


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backends_agree_with_numpy(rng, backend):
    field = SSDField(_ssd(rng), SPHERE, chunk=2)
    x = normalize(rng.standard_normal((2, 5, 6)))
    other = from_numpy(x, backend)
    got = to_numpy(field.on(other)(0.0, other))
    np.testing.assert_allclose(got, field(0.0, x), rtol=1e-12, atol=1e-13)


def test_torch_layer_is_the_reference_with_parameters(rng):
    """SSDLayer holds the arrays of StateSpaceDuality.init(output=True) as parameters,
    computes the same numbers, and gradients reach every parameter."""
    seed = int(rng.integers(1 << 30))
    layer = SSDLayer(8, heads=2, state=4, seed=seed, dtype=torch.float64, chunk=3)
    ref = StateSpaceDuality.init(8, 2, 4, seed=seed, output=True)
    names = dict(layer.named_parameters())
    assert set(names) == set(StateSpaceDuality.ARRAYS)
    x = rng.standard_normal((2, 7, 8))
    y = layer(torch.as_tensor(x))
    np.testing.assert_allclose(y.detach().numpy(), ref(x), rtol=1e-12, atol=1e-13)
    y.square().sum().backward()
    for name, param in names.items():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().max() > 0, name
    assert SSDLayer(8, 2, 4, output=False)(torch.zeros(1, 3, 8)).shape == (1, 3, 8)
    assert SSDLayer(8, 2, 4, head_dim=3, output=False)(torch.zeros(1, 3, 8)).shape == (1, 3, 6)
    assert SSDLayer(8, 2, 4).state(torch.zeros(1, 3, 8)).shape == (1, 2, 4, 4)


def test_bad_input(rng):
    bare = StateSpaceDuality.init(6, 2, 4, head_dim=5, seed=0)
    with pytest.raises(ValueError, match=r"W_out of shape \(10, 6\)"):
        SSDField(bare)
    with pytest.raises(TypeError, match="StateSpaceDuality"):
        SSDField(np.eye(6))
    m = StateSpaceDuality.init(6, 2, 4, seed=0, output=True)
    with pytest.raises(ValueError, match="form"):
        SSDField(m, form="fft")
    with pytest.raises(ValueError, match="chunk"):
        SSDField(m, chunk=0)
    with pytest.raises(ValueError, match="d = 6"):
        SSDField(m).check(np.zeros((1, 3, 5)))
    with pytest.raises(ValueError, match=r"W_out must have shape \(6, d_out\)"):
        StateSpaceDuality(m.W_x, m.W_B, m.W_C, m.W_dt, m.b_dt, m.A, m.D, W_out=np.ones((5, 6)))
    A = m.A.copy()
    A[0] = np.nan
    broken = StateSpaceDuality(m.W_x, m.W_B, m.W_C, m.W_dt, m.b_dt, A, m.D, W_out=m.W_out)
    with pytest.raises(ValueError, match="SSD parameter A contains 1 NaN"):
        SSDField(broken).on(np.zeros((1, 2, 6)))
    with pytest.raises(ValueError, match="form"):
        SSDLayer(6, 2, 4, form="fft")
