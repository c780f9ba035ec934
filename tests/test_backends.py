"""numpy, torch and JAX run the same code and give the same numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics import SA, USA, SelfAttention, normalize, simulate


def _as(backend, a):
    return {"numpy": np.asarray, "torch": torch.from_numpy, "jax": jnp.asarray}[backend](a)


def _np(a):
    return a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize(("method", "kw"), [("rk4", {"dt": 0.05}), ("authors", {"dt": 0.1}),
                                            ("dopri5", {"rtol": 1e-9, "atol": 1e-11})])
def test_backends_agree_with_numpy(rng, backend, method, kw):
    d = 4
    x0 = normalize(rng.standard_normal((2, 7, d)))
    Q = rng.standard_normal((3, d))
    K = rng.standard_normal((3, d))
    V = rng.standard_normal((d, d))
    field_np = SA(1.3, Q=Q, K=K, V=V, causal=True)
    field_b = SA(1.3, Q=_as(backend, Q), K=_as(backend, K), V=_as(backend, V), causal=True)
    times = np.linspace(0, 2, 5)
    ref = simulate(field_np, x0, times, method=method, **kw)
    got = simulate(field_b, _as(backend, x0), times, method=method, engine="native", **kw)
    assert type(got.states) is type(_as(backend, x0))
    np.testing.assert_allclose(_np(got.states), ref.states, atol=1e-11)
    np.testing.assert_array_equal(got.accepted_steps, ref.accepted_steps)


def test_numpy_parameters_follow_the_tokens_backend(rng):
    """Parameters given as numpy arrays are moved to the tokens' backend and dtype."""
    x0 = normalize(rng.standard_normal((1, 5, 3)))
    Q = rng.standard_normal((3, 3))
    t = simulate(SA(1.0, Q=Q), torch.from_numpy(x0).float(), [0.0, 1.0], method="rk4", dt=0.1)
    assert t.states.dtype == torch.float32
    j = simulate(SA(1.0, Q=Q), jnp.asarray(x0), [0.0, 1.0], method="rk4", dt=0.1)
    np.testing.assert_allclose(np.asarray(j.states), t.states.double().numpy(), atol=1e-5)


def test_jax_float32_without_x64(rng):
    x0 = normalize(rng.standard_normal((2, 6, 3))).astype(np.float32)
    with jax.enable_x64(False):
        traj = simulate(USA(0.7), jnp.asarray(x0), [0.0, 1.0], method="rk4", dt=0.1)
        assert traj.states.dtype == jnp.float32
    ref = simulate(USA(0.7), x0.astype(np.float64), [0.0, 1.0], method="rk4", dt=0.1)
    np.testing.assert_allclose(np.asarray(traj.states), ref.states, atol=2e-6)


def test_torch_per_member_beta(rng):
    x0 = normalize(rng.standard_normal((3, 6, 3)))
    betas = np.array([0.0, 1.0, 4.0])
    together = simulate(SA(torch.tensor(betas)), torch.from_numpy(x0), [0.0, 2.0],
                        method="rk4", dt=0.1).final.numpy()
    for b, beta in enumerate(betas):
        alone = simulate(SA(float(beta)), x0[b:b + 1], [0.0, 2.0], method="rk4", dt=0.1).final
        np.testing.assert_allclose(together[b], alone[0], atol=1e-13)


@settings(max_examples=20, deadline=None)
@given(
    batch=st.integers(1, 3),
    n=st.integers(1, 9),
    d=st.integers(2, 6),
    beta=st.floats(-3, 6),
    normalization=st.sampled_from(["softmax", "usa", "usa-shifted"]),
    causal=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_field_is_tangent_and_torch_equals_numpy(batch, n, d, beta, normalization, causal, seed):
    rng = np.random.default_rng(seed)
    x = normalize(rng.standard_normal((batch, n, d)))
    Q = rng.standard_normal((d, d))
    field = SelfAttention(beta, Q=Q, normalization=normalization, causal=causal)
    v = field(0.0, x)
    scale = max(1.0, float(np.max(np.abs(v))))
    assert np.max(np.abs(np.sum(v * x, axis=-1))) < 1e-12 * scale
    vt = field.on(torch.from_numpy(x))(0.0, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(vt, v, atol=1e-12 * scale)
