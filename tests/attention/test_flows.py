"""Operators as flows: the bridge to dynamics, exact SA, every integrator, random masks."""

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from attention.config import OperatorConfig, build
from attention.masks import CAUSAL, SlidingWindow
from attention.operator import Operator
from attention.prflash import ONE, PrFlashMask, geometric
from attention.variants.standard import Projections
from dynamics import SA, SPHERE, normalize, simulate, uniform_sphere
from dynamics.fields.operator import OperatorField, euclidean_flow, sphere_flow


def test_identity_operator_is_exactly_sa(rng):
    x = normalize(rng.standard_normal((3, 11, 5)))
    beta = float(rng.uniform(0.5, 4))
    field = sphere_flow(Operator(Projections(d=5), scale=beta))
    np.testing.assert_array_equal(field(0.0, x), SA(beta)(0.0, x))
    xt = torch.as_tensor(x)
    assert torch.equal(field.on(xt)(0.0, xt), SA(beta).on(xt)(0.0, xt))
    causal = sphere_flow(Operator(Projections(d=5), mask=CAUSAL, scale=beta))
    np.testing.assert_array_equal(causal(0.0, x), SA(beta, causal=True)(0.0, x))


def test_euclidean_form_is_the_operator_and_sphere_form_is_tangent(rng):
    op = build(OperatorConfig("mfa", d_model=8, heads=2, latent_dim=6), rng)
    x = normalize(rng.standard_normal((2, 7, 8)))
    np.testing.assert_array_equal(euclidean_flow(op)(0.0, x), op(x))
    v = sphere_flow(op)(0.0, x)
    np.testing.assert_allclose(np.sum(v * x, axis=-1), 0.0, atol=1e-14)
    np.testing.assert_allclose(v, SPHERE.project(x, op(x)), rtol=1e-14)


def test_euler_step_stays_in_the_hull_of_the_visible_tokens(rng):
    """V = I, one head, W_O = I: x_i + h (sum_j P_ij x_j - x_i), h <= 1, is a convex
    combination of the tokens x_i may attend to (checked by a linear programme)."""
    n, d = 12, 3
    W_Q, W_K = rng.standard_normal((1, d, d)), rng.standard_normal((1, d, d))
    for mask in (CAUSAL, SlidingWindow(3), PrFlashMask(geometric(0.5), block=2, seed=1)):
        op = Operator(Projections(W_Q=W_Q, W_K=W_K, d=d), mask=mask, scale=2.0)
        x = rng.standard_normal((1, n, d))
        P = op.weights(x, step=2)[0, 0]
        np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-13)
        allowed = mask.allowed(np.arange(n), np.arange(n), 2)
        assert np.all(P[~allowed] == 0) and np.all(P >= 0)
        for h in (0.3, 1.0):
            step = x + h * (op(x, step=2) - x)
            for i in range(n):
                pts = x[0, allowed[i]]
                res = linprog(np.zeros(len(pts)), A_eq=np.vstack([pts.T, np.ones(len(pts))]),
                              b_eq=np.append(step[0, i], 1.0), bounds=(0, None))
                assert res.status == 0


@pytest.mark.parametrize("variant", ["mha", "ansan", "prflash"])
@pytest.mark.parametrize("method", ["authors", "euler", "rk4", "dopri5"])
def test_causal_anchored_and_prflash_flows_run_through_every_integrator(rng, variant, method):
    extra = {"ansan": dict(anchors=(2, 5)), "prflash": dict(block=2)}.get(variant, {})
    op = build(OperatorConfig(variant, d_model=6, heads=2, **extra), rng)
    x0 = uniform_sphere(rng, 2, 8, 6)
    dt = None if method == "dopri5" else 0.05
    traj = simulate(OperatorField(op, period=0.05), x0, [0.0, 0.5, 1.0], method=method, dt=dt)
    assert traj.values.shape == (2, 3, 8, 6)
    np.testing.assert_allclose(np.linalg.norm(traj.values, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(traj.values[:, 0], x0)
    assert np.all(np.abs(traj.values[:, -1] - x0).max(axis=(-1, -2)) > 1e-3)


def test_deterministic_flows_converge_to_the_adaptive_solution(rng):
    op = build(OperatorConfig("ansan", d_model=6, heads=2, anchors=(3,)), rng)
    x0 = uniform_sphere(rng, 1, 7, 6)
    field = OperatorField(op)
    exact = simulate(field, x0, [0.0, 1.0], method="dopri5", rtol=1e-11, atol=1e-13).final
    errors = [np.abs(simulate(field, x0, [0.0, 1.0], method="rk4", dt=dt).final - exact).max()
              for dt in (0.1, 0.05)]
    assert errors[0] < 1e-5 and 10 < errors[0] / errors[1] < 25  # fourth order


def test_prflash_flow_resamples_each_step_reproducibly(rng):
    op = build(OperatorConfig("prflash", d_model=6, heads=2, block=2, p="geometric",
                              p_param=0.4, mask_seed=7), rng)
    x0 = uniform_sphere(rng, 1, 8, 6)
    dt = 0.1
    field = OperatorField(op, period=dt)
    times = np.round(np.arange(0, 11) * dt, 12)
    traj = simulate(field, x0, times, method="euler", dt=dt)
    again = simulate(field, x0, times, method="euler", dt=dt)
    np.testing.assert_array_equal(traj.values, again.values)
    x = x0
    for k in range(10):  # the same random particle system, written out step by step
        x = normalize(x + dt * SPHERE.project(x, op(x, step=k)))
    np.testing.assert_allclose(traj.final, x, rtol=1e-13, atol=1e-14)
    other = OperatorField(build(OperatorConfig("prflash", d_model=6, heads=2, block=2,
                                               p="geometric", p_param=0.4, mask_seed=8), rng),
                          period=dt)
    assert field.step_index(0.3) == 3 and field.step_index(np.array([0.0, 0.25])).tolist() == [0, 2]
    assert not np.allclose(simulate(other, x0, times, method="euler", dt=dt).final, traj.final)


def test_prflash_with_p_one_flows_like_causal_attention(rng):
    base = OperatorConfig("mha", d_model=6, heads=2)
    op = build(base, 4)
    p_one = Operator(op.heads, mask=PrFlashMask(ONE, block=3, seed=1))
    x0 = uniform_sphere(rng, 2, 9, 6)
    a = simulate(OperatorField(p_one, period=0.1), x0, [0, 1], method="rk4", dt=0.1).final
    b = simulate(OperatorField(op), x0, [0, 1], method="rk4", dt=0.1).final
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_operator_flows_on_jax(rng):
    import jax.numpy as jnp

    op = build(OperatorConfig("ansan", d_model=6, heads=2, anchors=(2,)), 1)
    x0 = uniform_sphere(rng, 2, 5, 6)
    ref = simulate(OperatorField(op), x0, [0, 0.5], method="rk4", dt=0.1).final
    got = simulate(OperatorField(op), jnp.asarray(x0), [0, 0.5], method="rk4", dt=0.1).final
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-11, atol=1e-12)
