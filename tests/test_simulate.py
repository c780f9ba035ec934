"""The integrators: geometry, closed forms, orders, events, solver agreement."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dynamics import SA, USA, MultiHeadAttention, SelfAttention, normalize, simulate

FIXED = [("authors", 0.05), ("euler", 0.02), ("rk4", 0.1)]
ADAPTIVE = ["dopri5", "tsit5"]


def sphere_points(rng, batch, n, d):
    return normalize(rng.standard_normal((batch, n, d)))


def orthonormal_tokens(rng, batch, n, d):
    q, _ = np.linalg.qr(rng.standard_normal((batch, d, n)))
    return np.swapaxes(q, -1, -2)


def beta0_inner(t, n):
    """<x_i(t), x_j(t)> for an orthogonal start at beta = 0 (paper §2.10, closed form)."""
    return (np.exp(2 * t) - 1) / (np.exp(2 * t) + n - 1)


@pytest.mark.parametrize(("method", "dt"), [*FIXED, *[(m, None) for m in ADAPTIVE]])
@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_norms_stay_one_over_whole_trajectory(rng, method, dt, normalization):
    x0 = sphere_points(rng, 3, 9, 4)
    field = SelfAttention(beta=2.0, normalization=normalization)
    traj = simulate(field, x0, np.linspace(0, 4, 17), method=method, dt=dt)
    norms = np.linalg.norm(traj.states, axis=-1)
    assert np.max(np.abs(norms - 1)) < 1e-12


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_beta_zero_closed_form(rng, normalization):
    n, d = 5, 7
    x0 = orthonormal_tokens(rng, 2, n, d)
    times = np.linspace(0, 3, 7)
    traj = simulate(SelfAttention(0.0, normalization=normalization), x0, times, method="rk4",
                    dt=1e-3, reduce=False)
    g = np.einsum("btid,btjd->btij", traj.states, traj.states)
    off = g[:, :, ~np.eye(n, dtype=bool)]
    expected = beta0_inner(times, n)[None, :, None]
    assert np.max(np.abs(off - expected)) < 1e-6


@pytest.mark.parametrize(("method", "order"), [("euler", 1), ("authors", 1), ("rk4", 4)])
def test_fixed_step_convergence_order(rng, method, order):
    x0 = sphere_points(rng, 2, 6, 3)
    field = SA(beta=1.5)
    times = np.array([0.0, 1.0])
    ref = simulate(field, x0, times, method="dopri5", rtol=1e-12, atol=1e-13).final
    errors = []
    for dt in (0.1, 0.05, 0.025):
        x = simulate(field, x0, times, method=method, dt=dt).final
        errors.append(np.max(np.abs(x - ref)))
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(rates - order) < 0.35), rates


@pytest.mark.parametrize("method", ADAPTIVE)
def test_adaptive_matches_solve_ivp(rng, method):
    """The sphere is invariant for the field's extension to R^d, so the unconstrained
    DOP853 solution of the ambient ODE is an independent reference."""
    batch, n, d = 1, 7, 3
    x0 = sphere_points(rng, batch, n, d)
    Q = rng.standard_normal((d, d))
    K = rng.standard_normal((d, d))
    field = SA(beta=1.2, Q=Q, K=K)
    times = np.linspace(0, 3, 5)

    def rhs(t, y):
        return field(t, y.reshape(1, n, d)).ravel()

    ref = solve_ivp(rhs, (0, 3), x0.ravel(), method="DOP853", rtol=1e-13, atol=1e-13,
                    t_eval=times).y.T.reshape(len(times), n, d)
    got = simulate(field, x0, times, method=method, rtol=1e-11, atol=1e-12).states[0]
    assert np.max(np.abs(got - ref)) < 1e-9


def test_output_times_off_the_grid_use_side_steps(rng):
    """Outputs between grid points equal one shorter step of the same scheme, and the
    grid trajectory itself is unchanged by asking for them."""
    x0 = sphere_points(rng, 2, 5, 3)
    field = SA(beta=1.0)
    on_grid = simulate(field, x0, [0.0, 0.3, 0.6], method="rk4", dt=0.1)
    with_extra = simulate(field, x0, [0.0, 0.25, 0.3, 0.6], method="rk4", dt=0.1)
    np.testing.assert_array_equal(with_extra.states[:, [0, 2, 3]], on_grid.states)
    at_02 = simulate(field, x0, [0.0, 0.2], method="rk4", dt=0.1).final
    manual = simulate(field, at_02, [0.0, 0.05], method="rk4", dt=0.05).final
    np.testing.assert_allclose(with_extra.states[:, 1], manual, atol=1e-15)


def test_authors_scheme_is_the_papers_update(rng):
    """One step of 'authors' is x <- normalise(x + h A x) (rotf sphere.py / phase-diagrams.py)."""
    x0 = sphere_points(rng, 2, 6, 4)
    beta, h = 3.0, 0.1
    g = beta * np.einsum("bid,bjd->bij", x0, x0)
    a = np.exp(g - g.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    expected = normalize(x0 + h * a @ x0)
    got = simulate(SA(beta), x0, [0.0, h], method="authors", dt=h).final
    np.testing.assert_allclose(got, expected, atol=1e-14)


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_reduced_solver_equals_full_solver(rng, method):
    batch, n, d = 3, 6, 40
    x0 = sphere_points(rng, batch, n, d)
    Q = rng.standard_normal((batch, 5, d)) / np.sqrt(d)
    K = rng.standard_normal((5, d)) / np.sqrt(d)
    fields = [
        SA(beta=2.0, Q=Q, K=K),
        USA(beta=1.0, causal=True),
        MultiHeadAttention((SA(1.0), SA(0.5, QK=rng.standard_normal((d, d)) / d))),
        SelfAttention(beta=1.5, Q=lambda t: np.cos(t) * np.eye(d)),
    ]
    kw = {"dt": 0.05} if method == "rk4" else {"rtol": 1e-9, "atol": 1e-11}
    times = np.linspace(0, 2, 5)
    for field in fields:
        full = simulate(field, x0, times, method=method, reduce=False, **kw)
        red = simulate(field, x0, times, method=method, **kw)
        assert red.reduced and not full.reduced
        assert np.max(np.abs(full.states - red.states)) < 1e-10
        np.testing.assert_array_equal(full.accepted_steps, red.accepted_steps)


def test_reduced_solver_evaluates_gram_observables_in_span(rng):
    from dynamics import fraction_clustered_pairs

    x0 = sphere_points(rng, 4, 8, 64)
    obs = fraction_clustered_pairs(1e-3)
    times = np.linspace(0, 8, 9)
    full = simulate(SA(1.0), x0, times, method="rk4", dt=0.1, observe=obs, reduce=False)
    red = simulate(SA(1.0), x0, times, method="rk4", dt=0.1, observe=obs)
    assert red.reduced and red.values.shape == (4, 9)
    np.testing.assert_array_equal(full.values, red.values)
    assert red.values[:, -1].min() > red.values[:, 0].max()


def test_cluster_event_time_matches_closed_form(rng):
    """beta = 0, orthogonal start: all pairs reach 1 - delta at
    t* = ln((1 + (1 - delta)(n - 1)) / delta) / 2 (paper §11 item 2)."""
    n, d, delta = 8, 8, 1e-3
    x0 = orthonormal_tokens(rng, 3, n, d)
    t_star = 0.5 * math.log((1 + (1 - delta) * (n - 1)) / delta)
    for method, kw, tol in [("rk4", {"dt": 0.01}, 1e-6), ("dopri5", {"rtol": 1e-10}, 2e-6)]:
        traj = simulate(SA(0.0), x0, [0.0, 10.0], method=method, stop_when_clustered=delta, **kw)
        np.testing.assert_allclose(traj.cluster_time, t_star, atol=tol)
        assert traj.accepted_steps.max() < 10.0 / kw.get("dt", 0.001)


def test_clustered_members_stop_and_hold_their_state(rng):
    x0 = sphere_points(rng, 4, 6, 3)
    times = np.linspace(0, 60, 13)
    traj = simulate(SA(0.5), x0, times, method="rk4", dt=0.1, stop_when_clustered=1e-2)
    assert np.all(np.isfinite(traj.cluster_time))
    for b in range(4):
        after = times > traj.cluster_time[b] + 0.1
        frozen = traj.states[b, after]
        np.testing.assert_array_equal(frozen, np.broadcast_to(frozen[-1], frozen.shape))


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_clustering_for_d_at_least_3(rng, beta):
    """Thm 6.1: for d >= 3 a.e. initial datum converges to one point (paper §11 item 11)."""
    x0 = sphere_points(rng, 4, 16, 3)
    traj = simulate(SA(beta), x0, [0.0, 200.0], method="dopri5", rtol=1e-8,
                    stop_when_clustered=1e-6)
    assert np.all(np.isfinite(traj.cluster_time))
    assert np.all(traj.cluster_time < 200.0)


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_stationary_configurations(rng, normalization):
    field = SelfAttention(beta=3.0, normalization=normalization)
    x = sphere_points(rng, 1, 1, 4)
    one = np.repeat(x, 5, axis=1)
    pair = np.concatenate([x, -x], axis=1)
    for config in (x, one, pair):
        assert np.max(np.abs(field(0.0, config))) < 1e-15


def test_causal_leader_is_stationary_and_attracts_all(rng):
    """Causal Thm 4.1 (2411.04990): V = I, random Q, K; every token converges to x_1(0)."""
    d = 3
    x0 = sphere_points(rng, 2, 6, d)
    Q = rng.standard_normal((d, d))
    K = rng.standard_normal((d, d))
    field = SA(1.0, Q=Q, K=K, causal=True)
    assert np.max(np.abs(field(0.0, x0)[:, 0])) < 1e-15
    traj = simulate(field, x0, [0.0, 80.0], method="dopri5", rtol=1e-9)
    final = traj.final
    assert np.max(np.abs(final - x0[:, :1])) < 1e-6


def test_permutation_and_rotation_equivariance(rng):
    n, d = 7, 4
    x0 = sphere_points(rng, 2, n, d)
    perm = rng.permutation(n)
    rot, _ = np.linalg.qr(rng.standard_normal((d, d)))
    times = [0.0, 2.0]
    base = simulate(SA(2.0), x0, times, method="rk4", dt=0.05).final
    permuted = simulate(SA(2.0), x0[:, perm], times, method="rk4", dt=0.05).final
    rotated = simulate(SA(2.0), x0 @ rot.T, times, method="rk4", dt=0.05).final
    np.testing.assert_allclose(permuted, base[:, perm], atol=1e-13)
    np.testing.assert_allclose(rotated, base @ rot.T, atol=1e-13)


def test_cone_collapse_min_inner_nondecreasing(rng):
    """Lemma 6.4: tokens in an open hemisphere around w; min_i <x_i(t), w> never decreases
    (V = I, arbitrary Q, K)."""
    d = 3
    w = np.array([0.0, 0.0, 1.0])
    x0 = sphere_points(rng, 3, 10, d)
    x0[..., 2] = np.abs(x0[..., 2]) + 0.05
    x0 = normalize(x0)
    Q = rng.standard_normal((d, d))
    K = rng.standard_normal((d, d))
    times = np.linspace(0, 20, 201)
    traj = simulate(SA(2.0, Q=Q, K=K), x0, times, method="dopri5", rtol=1e-10)
    r = np.min(traj.states @ w, axis=-1)
    assert np.all(np.diff(r, axis=-1) >= -1e-10)
    assert np.all(r[:, -1] > r[:, 0])


def test_float32_on_request(rng):
    x0 = sphere_points(rng, 2, 6, 3)
    traj = simulate(SA(1.0), x0, [0.0, 1.0], method="rk4", dt=0.1, dtype="float32")
    assert traj.states.dtype == np.float32
    ref = simulate(SA(1.0), x0, [0.0, 1.0], method="rk4", dt=0.1).states
    assert np.max(np.abs(traj.states - ref)) < 1e-5
    assert np.max(np.abs(np.linalg.norm(traj.states, axis=-1) - 1)) < 1e-6


def test_unbatched_input_returns_unbatched(rng):
    x0 = sphere_points(rng, 1, 5, 3)[0]
    traj = simulate(SA(1.0), x0, 1.0, method="rk4", dt=0.1)
    assert traj.states.shape == (2, 5, 3)
