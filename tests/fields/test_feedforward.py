"""The feed-forward term of (2.8) and its Lie-Trotter splitting with attention."""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.special

from attention.activations import gelu, relu
from attention.array_api import from_numpy, to_numpy
from dynamics import EUCLIDEAN, SA, LieTrotter, normalize, simulate
from dynamics.fields.feedforward import FeedForward


def mlp(rng, d, m, activation="tanh"):
    return FeedForward(a=rng.standard_normal((m, d)), w=rng.standard_normal((d, m)) / 2,
                       b=rng.standard_normal(m), activation=activation)


def retract(y):
    return y / np.linalg.norm(y, axis=-1, keepdims=True)


def rk4_step(f, t, x, h):
    """Classical RK4 with the retraction, written out."""
    k1 = f(t, x)
    k2 = f(t + h / 2, x + h / 2 * k1)
    k3 = f(t + h / 2, x + h / 2 * k2)
    k4 = f(t + h, x + h * k3)
    return retract(x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4))


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
def test_drive_is_w_sigma_ax_plus_b(rng, activation):
    """Row form: each token x_i moves by w sigma(a x_i + b) (column form of (2.2))."""
    d, m = 3, 5
    ff = mlp(rng, d, m, activation)
    x = normalize(rng.standard_normal((2, 4, d)))
    sigma = {"relu": lambda u: np.maximum(u, 0), "tanh": np.tanh,
             "gelu": lambda u: u * scipy.special.ndtr(u)}[activation]
    expected = np.einsum("dm,bim->bid", ff.w, sigma(np.einsum("md,bid->bim", ff.a, x) + ff.b))
    assert np.allclose(ff.drive(0.0, x), expected, atol=1e-14)
    projected = expected - np.sum(expected * x, axis=-1, keepdims=True) * x
    assert np.allclose(ff(0.0, x), projected, atol=1e-14)


def test_linear_feed_forward_in_rd_has_the_closed_form(rng):
    """sigma = identity in R^d: x' = M x + c with M = w a, c = w b, so
    x(t) = e^{tM} x0 + M^{-1}(e^{tM} - I) c."""
    d, m = 3, 4
    a, w, b = rng.standard_normal((m, d)), rng.standard_normal((d, m)) / 3, rng.standard_normal(m)
    ff = FeedForward(a=a, w=w, b=b, activation=lambda u: u, space=EUCLIDEAN)
    x0 = rng.standard_normal((1, 2, d))
    T = 1.5
    x = simulate(ff, x0, [0.0, T], rtol=1e-11, atol=1e-12).final[0]
    M, c = w @ a, w @ b
    E = scipy.linalg.expm(T * M)
    expected = x0[0] @ E.T + np.linalg.solve(M, (E - np.eye(d)) @ c)
    assert np.allclose(x, expected, atol=1e-8)


def test_time_dependent_parameters_per_member(rng):
    """Callables of t, evaluated at per-member times, equal member-by-member evaluation."""
    d, m = 3, 2
    a0, w0, b0 = rng.standard_normal((m, d)), rng.standard_normal((d, m)), rng.standard_normal(m)
    ff = FeedForward(a=lambda t: math.cos(t) * a0, w=lambda t: (1 + t) * w0,
                     b=lambda t: t * b0, activation="gelu")
    assert ff.time_dependent
    x = normalize(rng.standard_normal((2, 3, d)))
    t = np.array([0.2, 1.7])
    both = ff(t, x)
    for k in range(2):
        assert np.allclose(both[k], ff(float(t[k]), x[k : k + 1])[0], atol=1e-14)


@pytest.mark.parametrize("method", ["euler", "authors", "rk4"])
def test_lie_trotter_step_is_attention_then_mlp(rng, method):
    """One fixed step of LieTrotter(SA, FF) = one step of SA, then one step of FF."""
    d, h = 3, 0.05
    x0 = normalize(rng.standard_normal((2, 5, d)))
    attention, ff = SA(1.5), mlp(rng, d, 4)
    got = simulate(LieTrotter(attention, ff), x0, [0.0, 2 * h], method=method, dt=h,
                   reduce=False).final
    x = x0
    for k in range(2):
        t = k * h
        if method == "euler":
            x = retract(x + h * attention(t, x))
            x = retract(x + h * ff(t, x))
        elif method == "authors":
            x = retract(x + h * attention.drive(t, x))
            x = retract(x + h * ff.drive(t, x))
        else:
            x = rk4_step(ff, t, rk4_step(attention, t, x, h), h)
    assert np.allclose(got, x, atol=1e-14)


def test_splitting_converges_with_order_one(rng):
    """The split RK4 solution tends to the solution of SA + FF with error O(dt)."""
    d = 3
    x0 = normalize(rng.standard_normal((2, 5, d)))
    field = LieTrotter(SA(1.0), mlp(rng, d, 4))
    times = [0.0, 1.0]
    exact = simulate(field, x0, times, rtol=1e-12, atol=1e-13, reduce=False).final
    errors = []
    for dt in (0.1, 0.05, 0.025):
        split = simulate(field, x0, times, method="rk4", dt=dt, reduce=False).final
        errors.append(np.max(np.abs(split - exact)))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all(np.abs(ratios - 2.0) < 0.3), ratios


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backends_agree_with_numpy(rng, backend):
    x = normalize(rng.standard_normal((2, 4, 3)))
    other = from_numpy(x, backend)
    for activation in ("relu", "gelu", "tanh"):
        ff = mlp(rng, 3, 5, activation)
        got = to_numpy(ff.on(other)(0.0, other))
        assert np.allclose(got, ff(0.0, x), atol=1e-12)


def test_named_activations():
    u = np.linspace(-3, 3, 13)
    assert np.array_equal(relu(u), np.maximum(u, 0))
    import torch

    ref = torch.nn.functional.gelu(torch.as_tensor(u)).numpy()
    assert np.allclose(gelu(u), ref, atol=1e-15)


def test_bad_input_is_rejected(rng):
    with pytest.raises(ValueError, match="activation"):
        FeedForward(a=np.ones((2, 3)), w=np.ones((3, 2)), activation="swish")
    with pytest.raises(ValueError, match="needs the matrix w"):
        FeedForward(a=np.ones((2, 3)), w=None)
    x = normalize(rng.standard_normal((1, 2, 3)))
    with pytest.raises(ValueError, match=r"w must have shape \(3, 2\)"):
        FeedForward(a=np.ones((2, 3)), w=np.ones((3, 4))).check(x)
    with pytest.raises(ValueError, match=r"b must have shape \(2,\)"):
        FeedForward(a=np.ones((2, 3)), w=np.ones((3, 2)), b=np.ones(3)).check(x)
    with pytest.raises(ValueError, match=r"a must have shape \(m, 3\)"):
        FeedForward(a=np.ones((2, 4)), w=np.ones((3, 2))).check(x)
