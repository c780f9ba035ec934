"""Nothing silent (issue 15): bad inputs and overflow raise clear errors, never NaN.

* USA / CircleUSA refuse an inverse temperature whose weights e^{beta |Q||K|} overflow the
  tokens' dtype, once, when simulate sees the dtype (numpy and torch, float64 and float32);
* a trajectory that becomes non-finite stops with NonFiniteStateError naming the member
  and the time (numpy and torch drivers, fixed and adaptive, the compiled engine);
* interaction_energy is computed in log-sum-exp form: correct where the old shifted sums
  under- or overflowed, an OverflowError naming the limit where the energy itself is
  beyond the dtype;
* observables reject NaN/inf, points off the sphere, complex dtypes and delta outside (0, 2).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
import pytest
import torch

import dynamics
from attention.array_api import asarray_like, to_numpy
from dynamics import (
    SA,
    SPHERE,
    USA,
    CircleUSA,
    Field,
    Noisy,
    NonFiniteStateError,
    bind,
    cluster_count,
    cluster_labels,
    clustered,
    clustering_time,
    fraction_clustered_pairs,
    gram_dimension,
    indicator_rank,
    min_inner_with,
    min_pairwise_inner,
    normalize,
    pairwise_inner_products,
    simulate,
)
from dynamics.fields.attention import SelfAttention
from dynamics.theory import interaction_energy


def sphere_points(rng, batch, n, d, dtype=np.float64):
    return normalize(rng.standard_normal((batch, n, d))).astype(dtype)


def log_limit(dtype, n):
    """The largest exponent USA may reach: log(finfo.max) - log n - 1."""
    return math.log(float(np.finfo(dtype).max)) - math.log(n) - 1.0


def on_backend(x, backend):
    return torch.as_tensor(x) if backend == "torch" else x


# -- 1. USA at an overflowing beta is refused before integrating ----------------------


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_usa_refuses_a_beta_whose_weights_overflow(rng, backend, dtype):
    batch, n, d = 2, int(rng.integers(4, 20)), 3
    x0 = on_backend(sphere_points(rng, batch, n, d, dtype), backend)
    limit = log_limit(dtype, n)
    beta = limit * (1.0 + rng.uniform(0.01, 5.0))
    theta0 = on_backend(rng.uniform(-np.pi, np.pi, (batch, n)).astype(dtype), backend)
    scale = math.sqrt(limit * rng.uniform(1.05, 3.0))  # |Q||K| beta = scale^2 > limit
    cases = [
        (USA(beta), x0),
        (USA(np.array([1.0, beta])), x0),  # one member over the limit
        (SelfAttention(-beta / 2 - 1.0, normalization="usa-shifted"), x0),  # e^{2|beta|}
        (USA(1.0, Q=scale * np.eye(d), K=scale * np.eye(d)), x0),
        (CircleUSA(beta), theta0),
    ]
    for field, x in cases:
        for method, options in (("rk4", {"dt": 0.1}), ("dopri5", {"max_steps": 500})):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                with pytest.raises(OverflowError, match="beta"):
                    simulate(field, x, [0.0, 1.0], method=method, **options)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_usa_below_the_limit_is_accepted_and_its_velocity_is_finite(rng, backend, dtype):
    batch, n, d = 2, int(rng.integers(4, 20)), 3
    x = on_backend(sphere_points(rng, batch, n, d, dtype), backend)
    beta = log_limit(dtype, n) - rng.uniform(0.5, 20.0)
    for field in (USA(beta), SA(10 * beta), SelfAttention(beta, normalization="usa-shifted")):
        field.check(x)
        v = to_numpy(field.on(x)(0.0, x))
        assert np.all(np.isfinite(v))
    theta = on_backend(rng.uniform(-np.pi, np.pi, (batch, n)).astype(dtype), backend)
    CircleUSA(beta).check(theta)
    assert np.all(np.isfinite(to_numpy(CircleUSA(beta).on(theta)(0.0, theta))))


# -- 2. non-finite trajectories stop with NonFiniteStateError ----------------------------


@dataclass(frozen=True)
class BlowUp(Field):
    """A field that is 0 except for ``member`` from time ``t_star`` on, where it is NaN."""

    member: int
    t_star: float

    space = SPHERE

    def __call__(self, t: Any, x: Any) -> Any:
        batch = x.shape[0]
        times = np.broadcast_to(np.asarray(to_numpy(t), dtype=float), (batch,))
        bad = (np.arange(batch) == self.member) & (times >= self.t_star)
        return 0.0 * x + asarray_like(np.where(bad, np.nan, 0.0)[:, None, None], x)


FIXED = [("euler", 0.05), ("rk4", 0.1), ("authors", 0.05)]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("method,dt", FIXED)
def test_fixed_steps_stop_at_the_first_non_finite_velocity(rng, backend, method, dt):
    batch, n, d = int(rng.integers(2, 6)), 5, 3
    member = int(rng.integers(batch))
    t_star = float(rng.uniform(0.2, 0.8))
    x0 = on_backend(sphere_points(rng, batch, n, d), backend)
    with pytest.raises(NonFiniteStateError) as info:
        simulate(BlowUp(member, t_star), x0, [0.0, 1.0], method=method, dt=dt, reduce=False)
    error = info.value
    assert error.members == (member,)
    assert t_star <= error.time < t_star + dt + 1e-12
    assert f"member {member}" in str(error) and f"{error.time:.6g}" in str(error)
    assert isinstance(error, FloatingPointError)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_adaptive_steps_stop_at_the_first_non_finite_velocity(rng, backend, method):
    batch, n, d = int(rng.integers(2, 6)), 5, 3
    member = int(rng.integers(batch))
    t_star = float(rng.uniform(0.2, 0.8))
    x0 = on_backend(sphere_points(rng, batch, n, d), backend)
    with pytest.raises(NonFiniteStateError) as info:
        simulate(BlowUp(member, t_star), x0, [0.0, 1.0], method=method, max_steps=2000,
                 engine="native")
    assert info.value.members == (member,)
    assert t_star <= info.value.time <= 1.0


def test_noisy_fields_stop_too(rng):
    batch, n, d = 3, 5, 3
    member, t_star = int(rng.integers(batch)), float(rng.uniform(0.2, 0.8))
    x0 = sphere_points(rng, batch, n, d)
    with pytest.raises(NonFiniteStateError) as info:
        simulate(Noisy(BlowUp(member, t_star), 4.0), x0, np.linspace(0, 1, 11),
                 method="euler-maruyama", dt=0.05, seed=int(rng.integers(1000)))
    assert info.value.members == (member,)
    assert t_star <= info.value.time < t_star + 0.05 + 1e-12


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_stiff_usa_below_the_overflow_limit_stops_with_the_step_as_cause(rng, backend):
    """USA at beta ~ 500 passes the pre-check (its weights are representable) but rk4 with
    dt = 0.1 throws the stages off the sphere: the first non-finite velocity stops it."""
    x0 = on_backend(sphere_points(rng, 2, int(rng.integers(4, 16)), 3), backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(NonFiniteStateError) as info:
            simulate(USA(float(rng.uniform(400.0, 650.0))), x0, [0.0, 1.0], method="rk4",
                     dt=0.1)
    assert 0.0 <= info.value.time <= 0.1 and len(info.value.members) >= 1


def _poisoned(monkeypatch, member: int, index: int):
    """The compiled engine, as if its kernel had produced NaN for ``member`` from output
    ``index`` on (the check is simulate's, after the engine returns)."""
    import dynamics.compiled as compiled

    real = compiled.integrate_compiled

    def poisoned(*args, **kwargs):
        raw = real(*args, **kwargs)
        values = np.array(to_numpy(raw.values))
        values[member, index:] = np.nan
        raw.values = asarray_like(values, raw.values)
        return raw

    monkeypatch.setattr(compiled, "integrate_compiled", poisoned)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("observe", [None, "cluster_count"])
def test_the_compiled_engine_outputs_are_checked(rng, monkeypatch, backend, observe):
    batch, n, d = 3, 6, 3
    member, index = int(rng.integers(batch)), int(rng.integers(1, 11))
    times = np.linspace(0.0, 1.0, 11)
    _poisoned(monkeypatch, member, index)
    hook = None if observe is None else bind(cluster_count, delta=1e-3)
    cases = [(SA(float(rng.uniform(0.5, 5.0))), sphere_points(rng, batch, n, d)),
             (CircleUSA(float(rng.uniform(0.5, 5.0))), rng.uniform(-3, 3, (batch, n)))]
    for field, x0 in cases:
        with pytest.raises(NonFiniteStateError) as info:
            simulate(field, on_backend(x0, backend), times, engine="compiled", observe=hook)
        assert info.value.members == (member,)
        assert info.value.time == pytest.approx(times[index])


def test_finite_runs_are_unchanged(rng):
    x0 = sphere_points(rng, 3, 6, 3)
    for method, options in (("rk4", {"dt": 0.1}), ("dopri5", {"engine": "native"}),
                            ("dopri5", {"engine": "compiled"})):
        traj = simulate(USA(float(rng.uniform(0.5, 3.0))), x0, np.linspace(0, 2, 5),
                        method=method, **options)
        assert np.all(np.isfinite(traj.values))


# -- 3. interaction energy: log-sum-exp, OverflowError where it is beyond the dtype ------


def _mp_energy(x, beta, convention):
    """The energy of dynamics.theory.energy's docstring at 60 digits, per member."""
    mpmath.mp.dps = 60
    out = []
    for member in np.asarray(x):
        n = member.shape[0]
        g = member @ member.T
        b = mpmath.mpf(beta)
        total = mpmath.fsum(mpmath.exp(b * mpmath.mpf(float(v))) for v in g.ravel())
        if convention == "particles":
            value = total / (2 * b * n**2)
        elif convention == "metastable":
            value = total * mpmath.exp(-b) / (2 * b * n**2)
        elif convention == "staircase":
            value = total * mpmath.exp(-b) / n**2
        elif convention == "self-attention":
            value = total / (2 * b)
        else:  # appendix-c
            value = (total - n * n) / (2 * b)
        out.append(float(value))
    return np.array(out)


@pytest.mark.parametrize("convention",
                         ["particles", "metastable", "staircase", "self-attention", "appendix-c"])
def test_energy_matches_high_precision_at_moderate_beta(rng, convention):
    x = sphere_points(rng, 3, int(rng.integers(3, 12)), 4)
    for beta in (float(rng.uniform(0.5, 60.0)), -float(rng.uniform(0.5, 60.0))):
        np.testing.assert_allclose(interaction_energy(x, beta, convention),
                                   _mp_energy(x, beta, convention), rtol=1e-11)


@pytest.mark.parametrize("convention", ["particles", "self-attention"])
def test_energy_at_large_negative_beta_where_the_old_shift_failed(rng, convention):
    """beta < 0 with the tokens in a cap: the energy ~ e^{|beta| max(-G)} is representable,
    but the old shift by |beta| overflowed there (math.exp(|beta|): math range error)."""
    e1 = np.eye(3)[0]
    x = normalize(e1 + 0.2 * rng.standard_normal((2, int(rng.integers(3, 8)), 3)))
    angle = rng.uniform(1.65, 1.9, 2)  # one pair at an obtuse angle: G_min < 0
    x[:, 0] = np.stack([np.cos(angle), np.sin(angle), 0 * angle], axis=-1)
    g_min = np.min(x @ np.swapaxes(x, -1, -2), axis=(-2, -1))
    beta = -float(rng.uniform(720.0, 1200.0))
    assert np.all(g_min < 0) and np.all(-beta * -g_min < 700.0)  # E is representable
    got = interaction_energy(x, beta, convention)
    np.testing.assert_allclose(got, _mp_energy(x, beta, convention), rtol=1e-10)
    assert np.all(got < 0)


def test_energy_beyond_the_dtype_raises_a_clear_overflow(rng):
    x = sphere_points(rng, 2, int(rng.integers(2, 10)), 3)
    beta = float(rng.uniform(720.0, 5000.0))
    for convention in ("particles", "self-attention", "appendix-c"):
        with pytest.raises(OverflowError, match="beta"):
            interaction_energy(x, beta, convention)
    with pytest.raises(OverflowError, match="beta"):
        interaction_energy(torch.as_tensor(x, dtype=torch.float32), beta / 6)


def test_scaled_energies_are_finite_at_beta_4000_and_reach_their_limit(rng):
    """Distinct points: e^{beta (G_ij - 1)} -> 0 off the diagonal, so 2 beta n E_metastable
    -> 1 and n E_staircase -> 1; at consensus E_metastable = 1/(2 beta), E_staircase = 1."""
    n = int(rng.integers(2, 10))
    x = sphere_points(rng, 3, n, 32)  # distinct: 1 - <x_i, x_j> of order 1
    beta = 4000.0 * rng.uniform(1.0, 2.0)
    np.testing.assert_allclose(2 * beta * n * interaction_energy(x, beta, "metastable"), 1.0,
                               rtol=1e-10)
    np.testing.assert_allclose(n * interaction_energy(x, beta, "staircase"), 1.0, rtol=1e-10)
    together = np.repeat(x[:, :1], n, axis=1)
    np.testing.assert_allclose(interaction_energy(together, beta, "metastable"),
                               1 / (2 * beta), rtol=1e-10)
    per_member = np.array([beta, 2 * beta, 3 * beta])
    np.testing.assert_allclose(interaction_energy(x, per_member, "metastable"),
                               1 / (2 * per_member * n), rtol=1e-10)


# -- 4. observables reject bad inputs ------------------------------------------------------


def _observables(delta=1e-3):
    w = np.array([1.0, 0.0, 0.0])
    return {
        "cluster_count": lambda x: cluster_count(x, delta),
        "cluster_labels": lambda x: cluster_labels(x, delta),
        "fraction_clustered_pairs": lambda x: fraction_clustered_pairs(delta)(x),
        "clustered": lambda x: clustered(x, delta),
        "indicator_rank": lambda x: indicator_rank(x, delta),
        "gram_dimension": gram_dimension,
        "pairwise_inner_products": pairwise_inner_products,
        "min_pairwise_inner": min_pairwise_inner,
        "min_inner_with": lambda x: min_inner_with(x, w),
        "interaction_energy": lambda x: interaction_energy(x, 2.0),
        "clustering_time": lambda x: clustering_time([0.0, 1.0], np.stack([x, x], 1), delta),
    }


def _bad_points(rng, backend):
    x = sphere_points(rng, 2, 5, 3)
    b, i = int(rng.integers(2)), int(rng.integers(5))
    nan, inf, off = x.copy(), x.copy(), x.copy()
    nan[b, i, 0] = np.nan
    inf[b, i, 1] = -np.inf
    off[b, i] *= 1.0 + rng.uniform(1e-4, 0.5)
    cases = {"nan": (nan, ValueError), "inf": (inf, ValueError), "off": (off, ValueError)}
    cases = {k: (on_backend(v, backend), e) for k, (v, e) in cases.items()}
    cases["complex"] = (x.astype(np.complex128), TypeError)
    if backend == "torch":
        cases["complex"] = (torch.as_tensor(x, dtype=torch.complex128), TypeError)
    return cases


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_observables_reject_bad_points(rng, backend):
    for name, fn in _observables().items():
        if name == "clustering_time" and backend == "torch":
            continue
        for x, error in _bad_points(rng, backend).values():
            with pytest.raises(error, match=r"\bx\b|states"):
                fn(x)


def test_observables_accept_points_on_the_sphere_to_their_dtype(rng):
    for dtype in (np.float64, np.float32):
        x = sphere_points(rng, 2, 6, 3, dtype)
        for fn in _observables().values():
            fn(x)


@pytest.mark.parametrize("delta", [math.nan, math.inf, -math.inf, 0.0, 2.0, -0.1, 2.5, True])
def test_observables_reject_delta_outside_zero_two(rng, delta):
    x = sphere_points(rng, 2, 5, 3)
    calls = [lambda: fraction_clustered_pairs(delta),
             lambda: cluster_count(x, delta),
             lambda: clustered(x, delta),
             lambda: indicator_rank(x, delta),
             lambda: dynamics.cluster_gap(x, delta),
             lambda: clustering_time([0.0, 1.0], np.stack([x, x], 1), delta)]
    for call in calls:
        with pytest.raises(ValueError, match="delta"):
            call()


def test_fraction_of_clustered_pairs_is_a_fraction(rng):
    x = sphere_points(rng, 3, int(rng.integers(2, 9)), 3)
    delta = float(rng.uniform(1e-3, 1.999))
    got = to_numpy(fraction_clustered_pairs(delta)(x))
    g = x @ np.swapaxes(x, -1, -2)
    n = x.shape[1]
    expected = ((g >= 1 - delta).sum(axis=(-2, -1)) - n) / (n * (n - 1))
    np.testing.assert_allclose(got, expected)
    assert np.all((got >= 0) & (got <= 1))


def test_complex_attention_weights_are_refused(rng):
    d = 3
    q = rng.standard_normal((d, d)) + 1j * rng.standard_normal((d, d))
    for name in ("Q", "K", "V", "QK"):
        with pytest.raises(TypeError, match=name):
            SelfAttention(1.0, **{name: q})
