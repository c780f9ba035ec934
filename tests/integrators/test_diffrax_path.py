"""The diffrax path (JAX, adaptive): agreement with the native driver and with scipy,
exact geometry, the beta = 0 closed form, gradients, the clustering event, float32.

Every distinct shape / solver / dtype / field structure compiles once (seconds), so the
tests share a few configurations: batch 2, n = 5, d = 3 with five output times, and one
member n = d = 4 with the clustering event on (the reduced solver's state).
"""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dynamics.fields.attention import SA, USA, MultiHeadAttention
from dynamics.integrators.diffrax_path import (
    Retracted,
    diffrax_flow,
    integrate_diffrax,
    split_field,
    with_params,
)
from dynamics.observables import gram, min_pairwise_inner
from dynamics.simulate import simulate
from dynamics.space import SPHERE, normalize

TIMES_A = np.linspace(0.0, 2.0, 5)


def _tokens(rng, batch=2, n=5, d=3) -> np.ndarray:
    return normalize(rng.standard_normal((batch, n, d)))


def _orthonormal_tokens(rng, n: int, d: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return q[:n][None]


def _equiangular(t, n: int):
    """<x_i, x_j>(t) from an orthonormal start at beta = 0: (e^{2t} - 1) / (e^{2t} + n - 1)."""
    e = np.exp(2 * np.asarray(t))
    return (e - 1) / (e + n - 1)


def _offdiag(g: np.ndarray) -> np.ndarray:
    n = g.shape[-1]
    return g[..., ~np.eye(n, dtype=bool)]


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_matches_native_driver_and_stays_on_sphere(rng, method):
    x0, beta = _tokens(rng), float(rng.uniform(0.5, 2.0))
    kw = dict(method=method, rtol=1e-10, atol=1e-12)
    ours = simulate(SA(beta=beta), jnp.asarray(x0), TIMES_A, **kw)
    native = simulate(SA(beta=beta), x0, TIMES_A, engine="native", **kw)
    values = np.asarray(ours.values)
    assert values.shape == (2, 5, 5, 3)
    np.testing.assert_allclose(values, native.values, rtol=0, atol=1e-8)
    assert np.max(np.abs(np.linalg.norm(values, axis=-1) - 1)) < 1e-12
    assert np.all(ours.accepted_steps > 0) and ours.cluster_time is None


def test_every_step_is_retracted(rng):
    x0 = jnp.asarray(_tokens(rng, batch=1)[0])
    field = SA(beta=3.0)
    term = diffrax.ODETerm(lambda t, y, args: field(t, y[None])[0])

    def drift(solver) -> float:
        sol = diffrax.diffeqsolve(
            term, solver, 0.0, 2.0, None, x0, saveat=diffrax.SaveAt(steps=True),
            stepsize_controller=diffrax.PIDController(rtol=1e-3, atol=1e-6), max_steps=64,
        )
        ys = np.asarray(sol.ys)
        ys = ys[np.isfinite(ys).all(axis=(1, 2))]
        return float(np.max(np.abs(np.linalg.norm(ys, axis=-1) - 1)))

    assert drift(diffrax.Dopri5()) > 1e-6  # the plain solver leaves the sphere
    assert drift(Retracted(diffrax.Dopri5(), lambda t, y: SPHERE.retract(y))) < 1e-14


def test_outputs_are_on_the_sphere_and_observed(rng):
    # At rtol = 1e-3 interpolated dense output lies ~1e-4 off the sphere unless retracted.
    x0 = jnp.asarray(_tokens(rng))
    kw = dict(rtol=1e-3, atol=1e-6)
    traj = simulate(SA(beta=3.0), x0, TIMES_A, **kw)
    assert np.max(np.abs(np.linalg.norm(np.asarray(traj.values), axis=-1) - 1)) < 1e-12
    observed = simulate(SA(beta=3.0), x0, TIMES_A, observe=min_pairwise_inner, **kw)
    expected = np.stack([min_pairwise_inner(traj.values[:, k]) for k in range(5)], axis=1)
    np.testing.assert_allclose(np.asarray(observed.values), expected, rtol=0, atol=1e-14)


def test_matches_scipy_dop853_on_the_ambient_ode(rng):
    x0, beta = _tokens(rng), float(rng.uniform(0.5, 2.0))
    field = SA(beta=beta)
    ours = simulate(field, jnp.asarray(x0), TIMES_A, rtol=1e-12, atol=1e-13)
    for b in range(2):
        numpy_field = field.on(x0[b : b + 1])

        def rhs(t, y, numpy_field=numpy_field):
            return numpy_field(t, y.reshape(1, 5, 3)).ravel()

        ref = solve_ivp(rhs, (0.0, 2.0), x0[b].ravel(), method="DOP853", t_eval=TIMES_A,
                        rtol=1e-12, atol=1e-12)
        expected = ref.y.T.reshape(5, 5, 3)
        np.testing.assert_allclose(np.asarray(ours.values[b]), expected, rtol=0, atol=1e-9)


def test_beta_zero_orthonormal_start_follows_the_closed_form(rng):
    n, delta = 4, 1e-3  # the event is armed but t* = 4.15 lies beyond the horizon
    x0 = _orthonormal_tokens(rng, n, n)
    traj = simulate(SA(beta=0.0), jnp.asarray(x0), TIMES_A, rtol=1e-11, atol=1e-12,
                    stop_when_clustered=delta)
    assert traj.reduced
    g = _offdiag(np.asarray(gram(traj.values[0])))
    np.testing.assert_allclose(g, np.repeat(_equiangular(TIMES_A, n)[:, None], 12, 1),
                               rtol=0, atol=1e-9)
    assert np.isnan(traj.cluster_time).all()


def test_cluster_time_is_the_equiangular_crossing(rng):
    n, delta = 4, 0.1
    t_star = 0.5 * math.log((1 + (1 - delta) * (n - 1)) / delta)
    x0 = _orthonormal_tokens(rng, n, n)
    traj = simulate(SA(beta=0.0), jnp.asarray(x0), TIMES_A, rtol=1e-11, atol=1e-12,
                    stop_when_clustered=delta)
    assert traj.cluster_time[0] == pytest.approx(t_star, abs=1e-8)
    g = _offdiag(np.asarray(gram(traj.values[0])))
    before = TIMES_A < t_star
    np.testing.assert_allclose(g[before], np.repeat(_equiangular(TIMES_A[before], n)[:, None],
                                                    12, 1), rtol=0, atol=1e-9)
    # after the event the member holds its state at t*, where every <x_i, x_j> = 1 - delta
    np.testing.assert_allclose(g[~before], 1 - delta, rtol=0, atol=1e-8)


def test_reduced_solver_takes_the_same_steps_as_the_full_one(rng):
    # V = I, d = 6 > n = 4: the reduced solver integrates y = U^T x in R^4 with the
    # per-member form U^T Q^T K U; rotation-invariant error norms give identical steps.
    x0 = normalize(rng.standard_normal((2, 4, 6)))
    q, k = (rng.standard_normal((6, 6)) / 6**0.5 for _ in range(2))
    field = SA(beta=float(rng.uniform(0.5, 2.0)), Q=q, K=k)
    kw = dict(rtol=1e-9, atol=1e-12)
    reduced = simulate(field, jnp.asarray(x0), TIMES_A, reduce=True, **kw)
    full = simulate(field, jnp.asarray(x0), TIMES_A, reduce=False, **kw)
    assert reduced.reduced and not full.reduced
    np.testing.assert_allclose(np.asarray(reduced.values), np.asarray(full.values),
                               rtol=0, atol=1e-12)
    np.testing.assert_array_equal(reduced.accepted_steps, full.accepted_steps)
    np.testing.assert_array_equal(reduced.rejected_steps, full.rejected_steps)


def test_cluster_time_matches_the_native_driver(rng):
    x0 = normalize(np.abs(rng.standard_normal((1, 4, 4))))  # one orthant: clusters fast
    field = SA(beta=float(rng.uniform(0.5, 2.0)))
    kw = dict(rtol=1e-11, atol=1e-12, stop_when_clustered=0.05)
    ours = simulate(field, jnp.asarray(x0), TIMES_A, **kw)
    native = simulate(field, x0, TIMES_A, engine="native", **kw)
    t_c = ours.cluster_time[0]
    assert 0 < t_c < TIMES_A[-1]
    # the native driver interpolates the gap linearly inside one step: O(h^2)
    assert t_c == pytest.approx(native.cluster_time[0], abs=1e-4)
    before = TIMES_A < t_c
    np.testing.assert_allclose(np.asarray(ours.values[0, before]), native.values[0, before],
                               rtol=0, atol=1e-8)
    # frozen after the event: every later output is the state at the cluster time
    final = np.asarray(ours.values[0, ~before])
    np.testing.assert_array_equal(final, np.broadcast_to(final[:1], final.shape))
    assert _offdiag(final[0] @ final[0].T).min() == pytest.approx(0.95, abs=1e-8)


def test_gradients_match_central_differences(rng):
    x0 = jnp.asarray(_tokens(rng))
    weights = jnp.asarray(rng.standard_normal((2, 5, 5)))
    field = SA(beta=float(rng.uniform(0.5, 2.0))).on(x0)
    flow = diffrax_flow(field, x0, TIMES_A, rtol=1e-12, atol=1e-13)

    def loss(x, params):
        final = flow(x, params).states[:, -1]
        return jnp.sum(weights * gram(final))

    gx, gp = jax.grad(loss, argnums=(0, 1))(x0, flow.params)
    eps = 1e-4
    beta = flow.params["beta"]
    fd_beta = (loss(x0, {"beta": beta + eps}) - loss(x0, {"beta": beta - eps})) / (2 * eps)
    assert float(gp["beta"]) == pytest.approx(float(fd_beta), rel=1e-6)
    # a tangent direction at x0; the curve normalize(x0 + s v) has velocity v at s = 0
    v = jnp.asarray(rng.standard_normal(x0.shape))
    v = v - jnp.sum(v * x0, axis=-1, keepdims=True) * x0
    fd_x = (loss(normalize(x0 + eps * v), flow.params)
            - loss(normalize(x0 - eps * v), flow.params)) / (2 * eps)
    assert float(jnp.sum(gx * v)) == pytest.approx(float(fd_x), rel=1e-6)


def test_float32_without_x64(rng):
    x0 = _tokens(rng)
    reference = simulate(SA(beta=1.0), jnp.asarray(x0), TIMES_A, rtol=1e-10, atol=1e-12)
    with jax.enable_x64(False):
        traj = simulate(SA(beta=1.0), jnp.asarray(x0, dtype=jnp.float32), TIMES_A,
                        rtol=1e-6, atol=1e-7)
        values = np.asarray(traj.values)
    assert values.dtype == np.float32
    assert np.max(np.abs(np.linalg.norm(values, axis=-1) - 1)) < 1e-6
    np.testing.assert_allclose(values, np.asarray(reference.values), rtol=0, atol=2e-5)


def test_running_out_of_steps_is_an_error(rng):
    x0 = jnp.asarray(_tokens(rng, batch=1, n=2, d=2))
    with pytest.raises(RuntimeError, match="max_steps=3"):
        integrate_diffrax(SA(beta=1.0).on(x0), x0, TIMES_A, max_steps=3)


def test_field_parameters_round_trip_through_params(rng):
    x = jnp.asarray(_tokens(rng))
    q = jnp.asarray(rng.standard_normal((2, 3, 3)))  # per member
    field = MultiHeadAttention((SA(beta=1.5, Q=q), USA(beta=0.5))).on(x)
    params, skeleton = split_field(field, floats=True)
    assert sorted(params) == ["heads.0.Q", "heads.0.beta", "heads.1.beta"]
    np.testing.assert_allclose(with_params(skeleton, params)(0.0, x), field(0.0, x), atol=1e-15)
    doubled = {**params, "heads.1.beta": 2 * params["heads.1.beta"]}
    expected = MultiHeadAttention((SA(beta=1.5, Q=q), USA(beta=1.0)))
    np.testing.assert_allclose(with_params(skeleton, doubled)(0.0, x), expected(0.0, x),
                               atol=1e-15)


def test_bad_arguments_are_rejected(rng):
    x0 = _tokens(rng)
    with pytest.raises(ValueError, match="solver must be one of"):
        diffrax_flow(SA(), jnp.asarray(x0), TIMES_A, solver="rk4")
    with pytest.raises(TypeError, match="JAX array"):
        diffrax_flow(SA(), x0, TIMES_A)
    flow = diffrax_flow(SA().on(jnp.asarray(x0)), jnp.asarray(x0), TIMES_A)
    with pytest.raises(ValueError, match="built for batch 2"):
        flow(jnp.asarray(x0[:1]))
    with pytest.raises(ValueError, match="params must have the keys"):
        flow(jnp.asarray(x0), {"QK": jnp.eye(3)})
