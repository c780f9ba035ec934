"""Rescaled pure self-attention z = e^{-tV} x (paper (9.2)-(9.3)) and the results of
2305.05465 it is built for (paper Table 1, §11 item 21)."""

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial import ConvexHull

from attention.array_api import from_numpy, to_numpy
from attention.reference import attention_weights
from dynamics import PureSelfAttention, simulate
from dynamics.fields.rescaled import (
    RescaledSelfAttention,
    flow_matrix,
    from_rescaled,
    to_rescaled,
)


def softmax_rows(s):
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


def test_field_is_formula_9_3(rng):
    """z_dot_i = sum_j A_ij V (z_j - z_i), A = softmax(beta <Q e^{tV} z_i, K e^{tV} z_j>)."""
    n, d, t, beta = 5, 3, 0.7, 1.3
    Q, K, V = rng.standard_normal((3, d, d)) / 2
    z = rng.standard_normal((1, n, d))
    E = scipy.linalg.expm(t * V)
    y = z[0] @ E.T
    A = softmax_rows(beta * (y @ Q.T) @ (y @ K.T).T)
    expected = np.einsum("ij,ijd->id", A, (z[0][None, :, :] - z[0][:, None, :]) @ V.T)
    field = RescaledSelfAttention(PureSelfAttention(beta, Q=Q, K=K, V=V))
    assert np.allclose(field(t, z)[0], expected, atol=1e-13)


def test_reproduces_pure_self_attention(rng):
    """x(t) = e^{tV} z(t) solves (9.1); both integrated with tight adaptive tolerances."""
    n, d = 5, 3
    Q, K, V = rng.standard_normal((3, d, d)) / 2
    x0 = rng.standard_normal((2, n, d))
    times = np.linspace(0.0, 2.0, 5)
    attention = PureSelfAttention(1.0, Q=Q, K=K, V=V)
    x = simulate(attention, x0, times, rtol=1e-11, atol=1e-12).states
    z = simulate(RescaledSelfAttention(attention), x0, times, rtol=1e-11, atol=1e-12).states
    for k, t in enumerate(times):
        assert np.max(np.abs(from_rescaled(t, z[:, k], V) - x[:, k])) < 1e-9
        assert np.max(np.abs(to_rescaled(t, x[:, k], V) - z[:, k])) < 1e-9
    assert np.max(np.abs(x[:, -1] - z[:, -1])) > 0.1  # the rescaling is not the identity


def test_flow_matrix_per_member_times(rng):
    V = rng.standard_normal((3, 3))
    like = np.zeros((2, 1, 3))
    both = flow_matrix(np.array([0.3, -1.2]), V, like)
    assert np.allclose(both[0], scipy.linalg.expm(0.3 * V))
    assert np.allclose(both[1], scipy.linalg.expm(-1.2 * V))
    assert np.allclose(flow_matrix(0.5, None, like), np.exp(0.5) * np.eye(3))


def test_repulsive_v_collapses_to_origin_with_uniform_attention(rng):
    """2305.05465 Thm C.5: V = -I, Q = K = I: |x_i(t)| -> 0 and A(t) -> 1/n (no rescaling
    needed). Linearising A around 1/n gives the covariance C = (1/n) sum_i (x_i - xbar)^T
    (x_i - xbar) the law C' = -2 C^2 [derived], so t tr C -> d/2 for a spread start."""
    n, d = 6, 2
    angles = 2 * np.pi * np.arange(n) / n
    x0 = 1.5 * np.stack([np.cos(angles), np.sin(angles)], axis=-1)[None]
    x0 = x0 + 0.1 * rng.standard_normal((1, n, d))
    times = np.array([0.0, 5.0, 10.0, 20.0, 30.0])
    V = -np.eye(d)
    z = simulate(RescaledSelfAttention(PureSelfAttention(1.0, V=V)), x0, times,
                 rtol=1e-9, atol=1e-12).states[0]
    x = np.stack([from_rescaled(t, z[k][None], V)[0] for k, t in enumerate(times)])
    radius = np.max(np.linalg.norm(x, axis=-1), axis=-1)
    spread = np.array([np.max(np.abs(attention_weights(xk, xk, 1.0) - 1 / n)) for xk in x])
    assert np.all(np.diff(radius) < 0) and radius[-1] < 0.2 * radius[0]
    assert np.all(np.diff(spread) < 0) and spread[-1] < 0.02
    y = x - x.mean(axis=1, keepdims=True)
    trace_c = np.mean(np.sum(y * y, axis=-1), axis=-1)
    assert abs(times[-1] * trace_c[-1] - d / 2) < 0.1 * d / 2


def test_identity_v_shrinks_the_convex_hull(rng):
    """2305.05465 Thm 3.1 (V = I): z_dot_i = sum_j A_ij (z_j - z_i) points into the hull, so
    hull(z(t)) is non-increasing (set inclusion) and its area decreases."""
    n, d = 8, 2
    z0 = rng.standard_normal((1, n, d))
    times = np.linspace(0.0, 2.0, 9)
    z = simulate(RescaledSelfAttention(PureSelfAttention(1.0)), z0, times, rtol=1e-10,
                 atol=1e-12, reduce=False).states[0]
    areas = []
    for k in range(len(times) - 1):
        hull = ConvexHull(z[k])
        areas.append(hull.volume)
        # every later point satisfies the facet inequalities a.z + b <= 0 of hull(z(t_k))
        slack = z[k + 1] @ hull.equations[:, :2].T + hull.equations[:, 2]
        assert np.max(slack) < 1e-9
    areas.append(ConvexHull(z[-1]).volume)
    assert np.all(np.diff(areas) < 0)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backends_agree_with_numpy(rng, backend):
    z = rng.standard_normal((2, 4, 3))
    V = rng.standard_normal((3, 3)) / 2
    other = from_numpy(z, backend)
    t = np.array([0.4, 1.1])
    for field in (RescaledSelfAttention(PureSelfAttention(1.0, V=V)),
                  RescaledSelfAttention(PureSelfAttention(0.5, QK=V))):
        got = to_numpy(field.on(other)(t, other))
        assert np.allclose(got, field(t, z), atol=1e-11)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="constant value matrix"):
        RescaledSelfAttention(PureSelfAttention(1.0, V=lambda t: np.eye(2)))
    with pytest.raises(TypeError, match="SelfAttention"):
        RescaledSelfAttention("attention")
