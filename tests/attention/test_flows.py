"""Operators as flows: the bridge to dynamics, exact SA, every integrator, random masks."""

from dataclasses import replace

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
    combination of x_i and the tokens it attends to (checked by a linear programme), under
    every mask: causal, sliding window, anchors, PrFlash (all keep x_i itself) and DMA's
    top-w (which may drop x_i's own key)."""
    from attention.anchored import AnchorMask
    from attention.variants.dma import DynamicMaskBias

    n, d = 12, 3
    W_Q, W_K = rng.standard_normal((1, d, d)), rng.standard_normal((1, d, d))
    dma = DynamicMaskBias(rng.standard_normal((d, 1)), np.zeros(1), np.ones(1), window=3)
    cases = [(CAUSAL, None), (SlidingWindow(3), None), (AnchorMask((3, 7)), None),
             (PrFlashMask(geometric(0.5), block=2, seed=1), None), (CAUSAL, dma)]
    for mask, bias in cases:
        op = Operator(Projections(W_Q=W_Q, W_K=W_K, d=d), mask=mask, bias=bias, scale=2.0)
        x = rng.standard_normal((1, n, d))
        P = op.weights(x, step=2)[0, 0]
        np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-13)
        seen = P > 0
        assert np.all(P >= 0) and not np.any(seen & ~mask.allowed(np.arange(n), np.arange(n), 2))
        if bias is not None:
            assert seen.sum(-1).tolist() == np.minimum(np.arange(1, n + 1), 3).tolist()
        for h in (0.3, 1.0):
            step = x + h * (op(x, step=2) - x)
            for i in range(n):
                pts = x[0, seen[i] | (np.arange(n) == i)]
                res = linprog(np.zeros(len(pts)), A_eq=np.vstack([pts.T, np.ones(len(pts))]),
                              b_eq=np.append(step[0, i], 1.0), bounds=(0, None))
                assert res.status == 0


FLOW_VARIANTS = {"mha": {}, "ansan": dict(anchors=(2, 5)), "prflash": dict(block=2, p_param=0.4)}


@pytest.mark.parametrize("variant", FLOW_VARIANTS)
def test_causal_anchored_and_prflash_flows_run_through_every_integrator(rng, variant):
    """Every scheme integrates the same ODE: its error against a tight adaptive solution
    shrinks at the scheme's order. PrFlash's field jumps when the mask is redrawn (every
    period P): a fixed-step scheme whose steps divide P meets the jumps at step ends, where
    RK4's last stage already sees the next draw, so there RK4 is first order like Euler
    (the adaptive schemes locate the jumps by rejecting steps)."""
    from dynamics import Noisy

    op = build(OperatorConfig(variant, d_model=6, heads=2, **FLOW_VARIANTS[variant]), rng)
    x0 = uniform_sphere(rng, 3, 8, 6)
    P, times = 0.25, [0.0, 0.5, 1.0]
    field = OperatorField(op, period=P)
    exact = simulate(field, x0, times, method="dopri5", rtol=1e-11, atol=1e-13).final

    def error(method, **kw):
        traj = simulate(field, x0, times, method=method, **kw)
        np.testing.assert_allclose(np.linalg.norm(traj.values, axis=-1), 1.0, atol=1e-12)
        np.testing.assert_array_equal(traj.values[:, 0], x0)
        return np.abs(traj.final - exact).max()

    for method in ("authors", "euler", "rk4"):
        coarse, fine = error(method, dt=P / 8), error(method, dt=P / 16)
        order = np.log2(coarse / fine)
        if method == "rk4" and variant != "prflash":
            assert fine < 1e-7 and order > 3.5, (method, coarse, fine)
        else:
            assert fine < 2e-2 and 0.8 < order < 2.0, (method, coarse, fine)
    for method in ("dopri5", "tsit5"):
        assert error(method, rtol=1e-8, atol=1e-10) < 1e-5
    # Euler-Maruyama with vanishing noise (sigma = sqrt(2 / kappa) = 1.4e-6) is Euler
    noisy = simulate(Noisy(field, 1e12), x0, times, method="euler-maruyama", dt=P / 8, seed=1)
    euler = simulate(field, x0, times, method="euler", dt=P / 8)
    np.testing.assert_allclose(noisy.final, euler.final, atol=2e-5)
    assert np.abs(noisy.final - euler.final).max() > 0


def test_prflash_flow_through_the_diffrax_path(rng):
    """On JAX arrays the adaptive solve runs in diffrax, which traces t: the mask of each
    step is drawn through a host callback and the solve meets the numpy solution (a flow
    that kept the first draw throughout would be far off)."""
    import jax.numpy as jnp

    op = build(OperatorConfig("prflash", d_model=6, heads=2, block=2, p_param=0.4), rng)
    x0 = uniform_sphere(rng, 3, 8, 6)
    times = [0.0, 0.5, 1.0]
    field = OperatorField(op, period=0.25)
    exact = simulate(field, x0, times, method="dopri5", rtol=1e-10, atol=1e-12).final
    got = simulate(field, jnp.asarray(x0), times, method="dopri5", rtol=1e-7, atol=1e-9).final
    np.testing.assert_allclose(np.asarray(got), exact, atol=5e-4)
    frozen = simulate(OperatorField(op, period=10.0), x0, times, method="dopri5").final
    assert np.abs(frozen - exact).max() > 1e-2


def test_diffrax_path_with_as_many_members_as_heads(rng):
    """Operator weights (heads, d, e) are shared even when heads == batch."""
    import jax.numpy as jnp

    op = build(OperatorConfig("mha", d_model=4, heads=2), rng)
    x0 = uniform_sphere(rng, 2, 3, 4)
    exact = simulate(OperatorField(op), x0, [0.0, 0.5], method="dopri5", rtol=1e-10,
                     atol=1e-12).final
    got = simulate(OperatorField(op), jnp.asarray(x0), [0.0, 0.5], method="dopri5",
                   rtol=1e-10, atol=1e-12).final
    np.testing.assert_allclose(np.asarray(got), exact, atol=1e-7)


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


def test_member_operators_flow_each_member_under_its_own_operator(rng):
    """One simulate call over members with different weights and scales equals the members
    simulated one by one (fixed steps: to rounding; adaptive: per-member steps)."""
    from dynamics.fields.operator import MemberOperators

    ops = [replace(build(OperatorConfig(v, d_model=6, heads=2, block=2), int(s)), scale=beta)
           for v, s, beta in (("mha", 1, 0.5), ("prflash", 2, 2.0), ("mqa", 3, 1.0))]
    x0 = uniform_sphere(rng, 3, 7, 6)
    field = MemberOperators(ops, period=0.1)
    assert field.time_dependent and not field.span_preserving
    for method, kw in (("rk4", dict(dt=0.1)), ("dopri5", dict(rtol=1e-9, atol=1e-11))):
        together = simulate(field, x0, [0.0, 1.0], method=method, **kw).final
        for b, op in enumerate(ops):
            alone = simulate(OperatorField(op, period=0.1), x0[b : b + 1], [0.0, 1.0],
                             method=method, **kw).final
            np.testing.assert_allclose(together[b : b + 1], alone, rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="3 operators for a batch of 2"):
        simulate(field, x0[:2], [0.0, 1.0], method="rk4", dt=0.1)
