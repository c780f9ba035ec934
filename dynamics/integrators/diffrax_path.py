"""The JAX adaptive path: diffrax Dopri5 / Tsit5 on the sphere, vmapped over the batch.

Every batch member is one diffrax solve with its own steps; ``jax.vmap`` runs them
side by side inside one ``jax.jit``. Four pieces adapt diffrax to the package:

* ``Retracted`` wraps the Runge-Kutta solver: each step returns R(y1) (each token
  divided by its norm) and hands R(y1) to the dense output (Dopri5's interpolant ends
  there; Tsit5's ignores y1). The FSAL stage f(t1, y1), taken before the retraction,
  is reused at R(y1), as the native driver does: R moves y1 by the normal part of the
  local error, O(h^6), so the reuse perturbs the next step by O(h^7), below the error
  estimate, and saves one field evaluation per step.
* ``TokenNormController`` feeds diffrax's ``PIDController`` the Euclidean norms of the
  tokens instead of their coordinates, so the accepted error is
  sqrt(mean_i (|e_i| / (atol + rtol max(|x_i|, |y_i|)))^2) (``adaptive.error_norm``);
  it and the starting step are rotation invariant, so the reduced solver takes the
  same steps as the full one.
* the field's arrays and float parameters (beta, Q, K, V, QK, per head) are pulled out
  of the frozen dataclass into a dict ``params`` that travels as traced ``args``: one
  compilation serves every parameter value (and every rtol, atol, delta), and
  ``jax.grad`` reaches them through :func:`diffrax_flow`.
* with ``delta`` a ``diffrax.Event`` stops a member when
  min_{i != j} <x_i, x_j> - (1 - delta) crosses 0 upwards; a Newton root find on the
  dense output gives the time, and later outputs hold the state at that time.

Outputs are the dense output at the requested times, retracted: diffrax steps where
its controller likes and interpolates (unlike the native driver, it does not shorten
steps onto output times).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from attention.array_api import Array, is_jax, namespace
from dynamics.fields.base import Field
from dynamics.integrators.adaptive import GROW, SAFETY, SHRINK
from dynamics.integrators.fixed import RawSolution
from dynamics.observables import min_pairwise_inner
from dynamics.validation import check_delta, check_real, check_times

SOLVERS: dict[str, type[diffrax.AbstractAdaptiveSolver]] = {
    "dopri5": diffrax.Dopri5,
    "tsit5": diffrax.Tsit5,
}


# -- one member's geometry ---------------------------------------------------------------
def _token_norms(v: Array) -> Array:
    """|v_i| per token of one member: (n, d) -> (n,); angle states (n,) -> |v_i|."""
    return jnp.abs(v) if v.ndim == 1 else jnp.linalg.norm(v, axis=-1)


def _rms(v: Array) -> Array:
    return jnp.sqrt(jnp.mean(v * v))


class Retracted(diffrax.AbstractAdaptiveSolver):
    """A diffrax solver whose every step is followed by the retraction y1 <- R(t0, y1).

    The error estimate and the FSAL stage of the wrapped solver are passed on as they
    are (module docstring). Not an ``AbstractWrappedSolver``: that would forward
    ``isinstance(., AbstractRungeKutta)``, and diffrax's forward-mode adjoints then
    rewrite a Runge-Kutta field (``scan_kind``) this wrapper does not have.
    """

    solver: diffrax.AbstractAdaptiveSolver
    retract: Callable[[Any, Array], Array] = eqx.field(static=True)

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):  # type: ignore[override]
        return self.solver.interpolation_cls

    def order(self, terms):
        return self.solver.order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1, error, dense, state, result = self.solver.step(
            terms, t0, t1, y0, args, solver_state, made_jump
        )
        y1 = self.retract(t0, y1)
        return y1, error, {**dense, "y1": y1}, state, result


def _initial_step(terms, t0, t1, y0, args, func, error_order, rtol, atol) -> Array:
    """Hairer-Norsett-Wanner starting step in the token norm (as ``adaptive.initial_step``)."""
    span = t1 - t0
    scale = atol + rtol * _token_norms(y0)
    f0 = func(terms, t0, y0, args)
    d0 = _rms(_token_norms(y0) / scale)
    d1 = _rms(_token_norms(f0) / scale)
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = jnp.where(small, 1e-6, 0.01 * d0 / jnp.where(small, 1.0, d1))
    h0 = jnp.minimum(h0, span)
    f1 = func(terms, t0 + h0, y0 + h0 * f0, args)
    d2 = _rms(_token_norms(f1 - f0) / scale) / h0
    big = jnp.maximum(d1, d2)
    tiny = big <= 1e-15
    h1 = jnp.where(
        tiny,
        jnp.maximum(1e-6, h0 * 1e-3),
        (0.01 / jnp.where(tiny, 1.0, big)) ** (1.0 / (error_order + 1)),
    )
    return jnp.minimum(jnp.minimum(100 * h0, h1), span)


class TokenNormController(diffrax.AbstractAdaptiveStepSizeController):
    """``PIDController`` judging errors by token norms: rotation invariant, one member."""

    pid: diffrax.PIDController

    @property
    def rtol(self):
        return self.pid.rtol

    @property
    def atol(self):
        return self.pid.atol

    @property
    def norm(self):
        return self.pid.norm

    def wrap(self, direction):
        return TokenNormController(self.pid.wrap(direction))

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        if dt0 is None:
            dt0 = _initial_step(
                terms, t0, t1, y0, args, func, error_order, self.pid.rtol, self.pid.atol
            )
            dt0 = jax.lax.stop_gradient(dt0)
        return self.pid.init(terms, t0, t1, y0, dt0, args, func, error_order)

    def adapt_step_size(
        self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
    ):
        # PIDController scales elementwise: e / (atol + rtol max(|y0|, |y1|)); fed one
        # number per token it computes exactly the RMS over tokens of the token ratios.
        return self.pid.adapt_step_size(
            t0,
            t1,
            _token_norms(y0),
            _token_norms(y1_candidate),
            args,
            _token_norms(y_error),
            error_order,
            controller_state,
        )


# -- the field's arrays as a pytree ------------------------------------------------------
# A field is a tree: tuples and dataclasses are nodes (named by index or field name),
# everything else a leaf. Its arrays are addressed by dotted paths ("heads.0.Q").
def _children(obj: Any) -> dict[str, Any] | None:
    """The named children of a node (tuple items, dataclass fields); None for a leaf."""
    if isinstance(obj, tuple):
        return {str(i): v for i, v in enumerate(obj)}
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: vars(obj)[f.name] for f in fields(obj)}
    return None


def _rebuilt(obj: Any, children: dict[str, Any]) -> Any:
    """``obj`` with new children, bypassing __init__/__post_init__ (whose checks would
    convert traced values to numpy); ``obj`` itself when no child changed."""
    old = _children(obj)
    if all(children[k] is old[k] for k in old):
        return obj
    if isinstance(obj, tuple):
        return tuple(children.values())
    new = copy.copy(obj)
    for name, value in children.items():
        object.__setattr__(new, name, value)
    return new


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def split_field(field: Any, *, floats: bool = False) -> tuple[dict[str, Any], Any]:
    """(params, skeleton): the JAX arrays inside ``field`` by dotted path (with
    ``floats``, its Python floats too), and the field with those entries set to None."""
    params: dict[str, Any] = {}

    def strip(obj: Any, path: str) -> Any:
        if is_jax(obj) or (floats and isinstance(obj, float)):
            params[path] = obj
            return None
        children = _children(obj)
        if children is None:
            return obj
        return _rebuilt(obj, {k: strip(v, _join(path, k)) for k, v in children.items()})

    return params, strip(field, "")


def with_params(skeleton: Any, params: dict[str, Array], prefix: str = "") -> Any:
    """The field of :func:`split_field` with ``params`` put back (no re-validation, so
    the values may be tracers)."""
    if prefix in params:
        return params[prefix]
    children = _children(skeleton)
    if children is None:
        return skeleton
    return _rebuilt(skeleton, {k: with_params(v, params, _join(prefix, k))
                               for k, v in children.items()})


def _batch_shared_paths(obj: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the parts of ``obj`` that fields declare ``batch_shared``."""
    shared = [_join(prefix, name) for name in obj.batch_shared] if isinstance(obj, Field) else []
    for name, child in (_children(obj) or {}).items():
        shared += _batch_shared_paths(child, _join(prefix, name))
    return shared


# -- the compiled solve ------------------------------------------------------------------
@dataclass(frozen=True)
class _Config:
    """Everything static about a solve: the jit cache key."""

    skeleton: Any
    per_member: tuple[str, ...]
    solver: str
    clustering: bool
    max_steps: int


class FlowSolution(NamedTuple):
    """Arrays (batch, ...): states (batch, T, ...) at the requested times (frozen after
    the clustering event), cluster_time (NaN: none), accepted/rejected step counts,
    out_of_steps (max_steps reached) and failed (any diffrax failure)."""

    states: Array
    cluster_time: Array
    accepted: Array
    rejected: Array
    out_of_steps: Array
    failed: Array


def _solve_member(config: _Config, times, tol, x0, params) -> FlowSolution:
    """One member: x0 (n, d) or (n,); ``tol`` holds rtol, atol, delta (traced scalars)."""
    skeleton = config.skeleton

    def retract(t, y):  # the field's own retraction (dynamics.fields.base), one member
        return skeleton.retract(t, y[None])[0]

    def vector_field(t, y, args):
        v = with_params(skeleton, args)(t, y[None])
        if v.shape != (1, *y.shape):
            raise ValueError(
                f"the field returned shape {v.shape} for one member of shape {(1, *y.shape)}; "
                "time-dependent per-member parameters are not supported on the diffrax path"
            )
        return v[0]

    def save(t, y, args):
        return retract(t, y)

    def gap(t, y, args, **kwargs):
        return min_pairwise_inner(retract(t, y)[None])[0] - (1.0 - tol["delta"])

    rtol, atol = tol["rtol"], tol["atol"]
    controller = TokenNormController(
        diffrax.PIDController(rtol=rtol, atol=atol, safety=SAFETY, factormin=SHRINK,
                              factormax=GROW)
    )
    subs = [diffrax.SubSaveAt(ts=times, fn=save)]
    event = None
    if config.clustering:
        subs.append(diffrax.SubSaveAt(t1=True, fn=save))  # the state at the event
        floor = 64 * jnp.finfo(x0.dtype).eps
        root = optx.Newton(rtol=jnp.maximum(rtol, floor), atol=jnp.maximum(atol, floor))
        event = diffrax.Event(gap, root, direction=True)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        Retracted(SOLVERS[config.solver](), retract),
        t0=times[0],
        t1=times[-1],
        dt0=None,
        y0=x0,
        args=params,
        saveat=diffrax.SaveAt(subs=subs),
        stepsize_controller=controller,
        event=event,
        max_steps=config.max_steps,
        throw=False,
    )
    states = sol.ys[0]
    accepted = sol.stats["num_accepted_steps"]
    rejected = sol.stats["num_rejected_steps"]
    cluster_time = jnp.full((), jnp.nan, dtype=times.dtype)
    if config.clustering:
        # diffrax marks the outputs after the event with inf: hold the state at the event.
        hit = sol.event_mask
        later = hit & ~jnp.isfinite(sol.ts[0])
        states = jnp.where(_expand(later, states), sol.ys[1][0], states)
        cluster_time = jnp.where(hit, sol.ts[1][0], cluster_time)
        # A float event needs a sign change: members clustered at t0 are handled here.
        at_start = gap(times[0], x0, params) >= 0
        states = jnp.where(at_start, jnp.broadcast_to(x0, states.shape), states)
        cluster_time = jnp.where(at_start, times[0], cluster_time)
        accepted = jnp.where(at_start, 0, accepted)
        rejected = jnp.where(at_start, 0, rejected)
    out_of_steps = sol.result == diffrax.RESULTS.max_steps_reached
    failed = ~diffrax.is_okay(sol.result)
    return FlowSolution(states, cluster_time, accepted, rejected, out_of_steps, failed)


def _expand(mask: Array, like: Array) -> Array:
    return jnp.reshape(mask, mask.shape + (1,) * (like.ndim - mask.ndim))


def _solve_batch(config: _Config, times, tol, x0, params) -> FlowSolution:
    axes = {name: 0 if name in config.per_member else None for name in params}
    member = functools.partial(_solve_member, config, times, tol)
    return jax.vmap(member, in_axes=(0, axes))(x0, params)


_solve_batch_jit = jax.jit(_solve_batch, static_argnums=0)


def _run(config: _Config, *arrays) -> FlowSolution:
    try:
        hash(config)
    except TypeError:  # the field holds something unhashable: compile for this call only
        return jax.jit(functools.partial(_solve_batch, config))(*arrays)
    return _solve_batch_jit(config, *arrays)


# -- public entry points -----------------------------------------------------------------
@dataclass(frozen=True)
class DiffraxFlow:
    """A compiled, differentiable solve of one field: ``flow(x0, params) -> FlowSolution``.

    ``params`` (default ``flow.params``) maps dotted paths ("beta", "QK", "heads.0.Q")
    to the field's arrays and float parameters; pass a modified dict, or differentiate:

        flow = diffrax_flow(SA(beta=2.0).on(x0), x0, times, rtol=1e-8)
        jax.grad(lambda p: loss(flow(x0, p).states))(flow.params)["beta"]

    One compilation serves every value of ``params``, ``x0``, ``times`` (same length),
    ``rtol``, ``atol`` and ``delta``. Nothing is raised here (the result may be
    traced): members with ``out_of_steps`` or ``failed`` hold inf after the last time
    reached; :func:`integrate_diffrax` turns those flags into errors.
    """

    params: dict[str, Array]
    times: Array
    tol: dict[str, Array]
    batch: int
    config: _Config

    def __call__(self, x0: Array, params: dict[str, Array] | None = None) -> FlowSolution:
        if tuple(x0.shape[:1]) != (self.batch,):
            raise ValueError(f"this flow was built for batch {self.batch}, got x0 {x0.shape}")
        params = self.params if params is None else params
        if set(params) != set(self.params):
            raise ValueError(
                f"params must have the keys {sorted(self.params)}, got {sorted(params)}"
            )
        return _run(self.config, self.times, self.tol, x0, params)


def diffrax_flow(
    field: Any,
    x0: Array,
    times: Any,
    *,
    solver: str = "dopri5",
    rtol: float = 1e-6,
    atol: float = 1e-9,
    delta: float | None = None,
    max_steps: int = 100_000,
) -> DiffraxFlow:
    """Prepare the diffrax solve of ``field`` (already ``field.on(x0)``) for states shaped
    like ``x0`` (batch-first JAX array; its dtype, float32 or float64, is the solve's).

    A field array is per member when it has x0's rank and x0's batch as leading axis
    (beta (batch, 1, 1), Q (batch, k, d), ...); every other array is shared, and so is
    every array under a part that the field declares ``batch_shared`` (an attention
    operator's weights (heads, d, e) are shared even when heads == batch). Python floats
    (a scalar beta) become traced scalars unless the field branches on them.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {tuple(SOLVERS)}, got {solver!r}")
    if not is_jax(x0):
        raise TypeError(f"x0 must be a JAX array, got {type(x0).__name__}")
    if not isinstance(field, Field):
        raise TypeError(f"field must be a dynamics.Field, got {type(field).__name__}")
    check_real("rtol", rtol, positive=True)
    check_real("atol", atol, positive=True)
    if delta is not None:
        delta = check_delta(delta)
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    dtype = x0.dtype
    times = jnp.asarray(check_times(times), dtype=dtype)
    params, skeleton = _traceable_split(field, x0, times[0])
    batch = int(x0.shape[0])
    shared = _batch_shared_paths(field)
    per_member = tuple(sorted(
        k for k, v in params.items()
        if v.ndim == x0.ndim and v.shape[0] == batch
        and not any(k == p or k.startswith(p + ".") for p in shared)
    ))
    config = _Config(skeleton, per_member, solver, delta is not None, int(max_steps))
    tol = {
        name: jnp.asarray(value, dtype=dtype)
        for name, value in (("rtol", rtol), ("atol", atol), ("delta", delta or 0.0))
    }
    return DiffraxFlow(params=params, times=times, tol=tol, batch=batch, config=config)


def _traceable_split(field: Any, x0: Array, t0: Array) -> tuple[dict[str, Array], Any]:
    """Split with floats traced, unless evaluating the field then needs a concrete float."""
    params, skeleton = split_field(field, floats=True)
    params = {k: jnp.asarray(v, dtype=x0.dtype) if isinstance(v, float) else v
              for k, v in params.items()}
    try:
        jax.eval_shape(lambda p, x: with_params(skeleton, p)(t0, x), params, x0)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        params, skeleton = split_field(field)  # a float read on the host (RoPE's base, say)
    return params, skeleton


def integrate_diffrax(
    field: Any,
    x0: Array,
    times: Any,
    *,
    observe: Callable[[Array], Array] | None = None,
    progress: Any = None,
    **options: Any,
) -> RawSolution:
    """The driver behind ``simulate`` for JAX arrays and adaptive methods; ``options`` are
    :func:`diffrax_flow`'s (solver, rtol, atol, delta, max_steps).

    Returns values (batch, T, ...) = observe(states) (a JAX array), and host arrays
    cluster_time (batch,) (NaN: never; all NaN without ``delta``), accepted, rejected.
    One compiled solve reports no ``progress``.
    Raises RuntimeError when a member runs out of ``max_steps`` or the solve fails.
    """
    flow = diffrax_flow(field, x0, times, **options)
    solver, max_steps = flow.config.solver, flow.config.max_steps
    sol = flow(x0)
    out_of_steps = np.asarray(sol.out_of_steps)
    if out_of_steps.any():
        raise RuntimeError(
            f"diffrax ({solver}) exceeded max_steps={max_steps} for batch members "
            f"{np.flatnonzero(out_of_steps).tolist()} before t = {float(flow.times[-1])}; "
            "loosen rtol/atol, shorten the horizon, or raise max_steps"
        )
    failed = np.asarray(sol.failed)
    if failed.any():
        raise RuntimeError(
            f"diffrax ({solver}) failed for batch members {np.flatnonzero(failed).tolist()} "
            "(non-finite values or a failed event root find)"
        )
    values = sol.states
    if observe is not None:
        # Slice by slice, outside any trace: observables may return numpy (cluster counts).
        slices = [observe(values[:, j]) for j in range(values.shape[1])]
        values = namespace(slices[0]).stack(slices, axis=1)
    return RawSolution(
        values=values,
        cluster_time=np.asarray(sol.cluster_time, dtype=float),
        accepted=np.asarray(sol.accepted, dtype=np.int64),
        rejected=np.asarray(sol.rejected, dtype=np.int64),
    )
