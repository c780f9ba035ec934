"""A compiled engine for batches of small problems: clustering-time, phase-diagram and
cluster-count studies, where each member is a few dozen tokens in a few dimensions.

For such problems the cost of the numpy path is not arithmetic but the per-call overhead
of many small array operations, and a batch moving in lockstep waits for its slowest
member. Here (numba, compiled on first use and cached on disk) each member runs its own
adaptive loop to its own end: stages, error norm, step control, retraction and the
clustering check fused in one compiled function (``dynamics.compiled.adaptive``), members
in parallel over the machine's cores. The right-hand side (``dynamics.compiled.kernels``)
uses the structure of the sphere: with Q = K = I the exponentials are symmetric, so each
one serves two rows, and one shift per member replaces the row maxima.

It takes the same steps as the numpy reference (``dynamics.integrators.adaptive``), so
both give the same trajectories and clustering times to rounding (tested). It applies to

* ``SelfAttention`` with Q = K = V = I (``SA``, ``USA``, shifted USA, causal or not) on the
  sphere, and ``CircleAttention`` (``CircleSA``,
  ``CircleUSA``) in angles, with beta a number or one per member;
* the adaptive methods ("dopri5", "tsit5", ``dynamics.compiled.adaptive``) and the
  deterministic fixed-step ones ("euler", "rk4", "authors", ``dynamics.compiled.fixed``),
  float64 numpy arrays or CPU torch tensors.

``simulate(..., engine="auto")`` takes it wherever it applies; ``engine="compiled"``
insists (and says why not where it cannot); ``engine="native"`` keeps the numpy path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attention.array_api import Array, asarray_like, backend_of, namespace, to_numpy
from attention.reference import NORMALIZATIONS
from dynamics.fields.attention import SelfAttention
from dynamics.fields.base import Field
from dynamics.fields.circle import CircleAttention
from dynamics.integrators.adaptive import too_many_steps
from dynamics.integrators.fixed import RawSolution
from dynamics.integrators.recording import ClusterEvent
from dynamics.integrators.tableaux import RK4, ButcherTableau
from dynamics.space import Angles, Sphere
from dynamics.validation import non_finite_error

FIXED_TABLEAUX: dict[str, tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]] = {
    "euler": (((),), (1.0,)),
    "authors": (((),), (1.0,)),  # Euler on the unprojected drive
    "rk4": (RK4.a, RK4.b),
}
"""The fixed-step schemes the compiled engine takes: (a, b) of their explicit tableaux."""
COMPILED_METHODS: tuple[str, ...] = ("dopri5", "tsit5", *FIXED_TABLEAUX)
MAX_TOKENS = 1024
"""Tokens per member up to which the compiled engine runs (its work arrays are n x n)."""


def unsupported(field: Field, x0: Array, method: str | None = None) -> str | None:
    """Why the compiled engine cannot integrate ``field`` from x0 with ``method`` (None: it
    can; ``method=None`` asks about the field and the tokens only)."""
    if method is not None and method not in COMPILED_METHODS:
        return f"it runs the methods {COMPILED_METHODS}, not {method!r}"
    if backend_of(x0) not in ("numpy", "torch"):
        return f"it runs numpy arrays and CPU torch tensors, got {backend_of(x0)} arrays"
    if backend_of(x0) == "torch" and x0.device.type != "cpu":
        return "it runs on the CPU (CUDA tensors go through the Triton kernels)"
    if str(x0.dtype).removeprefix("torch.") != "float64":
        return f"it computes in float64, the tokens are {x0.dtype}"
    if x0.shape[-1 if isinstance(field.space, Angles) else -2] > MAX_TOKENS:
        return (f"it is for small members (n <= {MAX_TOKENS}; each keeps n x n work arrays); "
                "large n goes through attention.symmetric on the native path")
    if isinstance(field, SelfAttention):
        if any(p is not None for p in (field.Q, field.K, field.V, field.QK)):
            return "it integrates attention with Q = K = V = I (SA, USA); this field has weights"
        if not isinstance(field.space, Sphere):
            return "it integrates attention on the sphere (pure self-attention in R^d: native)"
    elif not isinstance(field, CircleAttention):
        return (f"it integrates SelfAttention with Q = K = V = I and CircleAttention, not "
                f"{type(field).__name__}")
    if callable(field.beta):
        return "it takes beta as a number or one per member, not a function of time"
    if field.sigma != 0.0:
        return "it integrates deterministic fields"
    return None


def _model(field: SelfAttention | CircleAttention) -> int:
    from dynamics.compiled.kernels import CIRCLE_FIELD, EUCLIDEAN_FIELD, SPHERE_FIELD

    if isinstance(field, CircleAttention):
        return CIRCLE_FIELD
    return SPHERE_FIELD if isinstance(field.space, Sphere) else EUCLIDEAN_FIELD


def _betas(beta: Any, batch: int) -> np.ndarray:
    values = np.ravel(to_numpy(beta)).astype(np.float64)
    return np.ascontiguousarray(np.broadcast_to(values, (batch,)) if values.size == 1
                                else values.reshape(batch))


def _tableau_arrays(tableau: ButcherTableau) -> tuple[np.ndarray, ...]:
    s = tableau.stages
    a = np.zeros((s, s))
    for i, row in enumerate(tableau.a):
        a[i, : len(row)] = row
    if tableau.b_error is None or tuple(tableau.a[-1]) != tuple(tableau.b[: s - 1]):
        raise ValueError(f"{tableau.name} is not an embedded FSAL pair")
    return (np.array(tableau.c, dtype=np.float64), a, np.array(tableau.b, dtype=np.float64),
            np.array(tableau.b_error, dtype=np.float64))


def integrate_compiled(
    field: SelfAttention | CircleAttention,
    x0: Array,
    times: np.ndarray,
    *,
    tableau: ButcherTableau,
    rtol: float,
    atol: float,
    observe,
    event: ClusterEvent,
    max_steps: int = 100_000,
    progress=None,
) -> RawSolution:
    """The adaptive driver's contract (``dynamics.integrators.adaptive``) on the compiled
    engine: states at ``times`` passed through ``observe``, clustering times, step counts."""
    from dynamics.compiled.adaptive import TOO_MANY_STEPS, solve_batch

    reason = unsupported(field, x0)
    if reason is not None:
        raise ValueError(f"the compiled engine cannot run this: {reason}")
    states, circle = _states(field, x0)
    batch, n, d = states.shape
    c, a, b, b_error = _tableau_arrays(tableau)
    out = np.empty((batch, len(times), n, d))
    cluster = np.full(batch, np.nan)
    accepted = np.zeros(batch, dtype=np.int64)
    rejected = np.zeros(batch, dtype=np.int64)
    status = np.zeros(batch, dtype=np.int64)
    kind = NORMALIZATIONS.index(field.normalization)
    delta = -1.0 if event.delta is None else float(event.delta)
    solve_batch(states, _model(field), _betas(field.beta, batch), kind, bool(field.causal),
                np.ascontiguousarray(times, dtype=np.float64), c, a, b, b_error,
                int(tableau.order), -1.0 / (tableau.error_order + 1), float(rtol), float(atol),
                delta, int(max_steps), out, cluster, accepted, rejected, status)
    if (status == TOO_MANY_STEPS).any():
        raise too_many_steps(max_steps, float(times[-1]),
                             np.flatnonzero(status == TOO_MANY_STEPS))
    if progress is not None:
        progress.advance_to(float(times[-1]))
    return RawSolution(_values(out, x0, circle, observe, len(times)), cluster, accepted,
                       rejected)


def integrate_compiled_fixed(
    field: SelfAttention | CircleAttention,
    x0: Array,
    times: np.ndarray,
    *,
    method: str,
    dt: float,
    observe,
    event: ClusterEvent,
    progress=None,
) -> RawSolution:
    """The fixed-step driver's contract (``dynamics.integrators.fixed``) on the compiled
    engine: states at ``times`` passed through ``observe``, clustering times, step counts.
    A member whose state stops being finite raises ``NonFiniteStateError`` (the members and
    the end time of the first such step)."""
    from dynamics.compiled.fixed import solve_batch_fixed
    from dynamics.compiled.kernels import EUCLIDEAN_FIELD, SPHERE_FIELD

    reason = unsupported(field, x0, method)
    if reason is not None or method not in FIXED_TABLEAUX:
        raise ValueError(f"the compiled engine cannot run this: {reason or method}")
    states, circle = _states(field, x0)
    batch, n, d = states.shape
    rows, b = FIXED_TABLEAUX[method]
    a = np.zeros((len(b), len(b)))
    for i, row in enumerate(rows):
        a[i, : len(row)] = row
    model = _model(field)
    stage_model = EUCLIDEAN_FIELD if method == "authors" and model == SPHERE_FIELD else model
    out = np.empty((batch, len(times), n, d))
    cluster = np.full(batch, np.nan)
    steps = np.zeros(batch, dtype=np.int64)
    broken = np.full(batch, np.nan)
    delta = -1.0 if event.delta is None else float(event.delta)
    solve_batch_fixed(states, model, stage_model, _betas(field.beta, batch),
                      NORMALIZATIONS.index(field.normalization), bool(field.causal),
                      np.ascontiguousarray(times, dtype=np.float64), a,
                      np.array(b, dtype=np.float64), float(dt), delta, out, cluster, steps,
                      broken)
    if np.isfinite(broken).any():
        bad = np.isfinite(broken)
        raise non_finite_error("the state", bad, float(np.min(broken[bad])))
    if progress is not None:
        progress.advance_to(float(times[-1]))
    return RawSolution(_values(out, x0, circle, observe, len(times)), cluster, steps,
                       np.zeros(batch, dtype=np.int64))


def _states(field: Field, x0: Array) -> tuple[np.ndarray, bool]:
    """x0 as a float64 C-contiguous (batch, n, d) array (angles: d = 1), and whether it was
    angles."""
    states = np.ascontiguousarray(to_numpy(x0), dtype=np.float64)
    circle = isinstance(field.space, Angles)
    return (states[..., None] if circle else states), circle


def _values(out: np.ndarray, x0: Array, circle: bool, observe, count: int) -> Array:
    """The states (batch, T, n, d) back in x0's backend (angles: (batch, T, n)), observed."""
    values = asarray_like(out[..., 0] if circle else out, x0)
    if observe is not None:
        xp = namespace(values)
        values = xp.stack([observe(values[:, k]) for k in range(count)], axis=1)
    return values


__all__ = ["COMPILED_METHODS", "FIXED_TABLEAUX", "integrate_compiled", "integrate_compiled_fixed",
           "unsupported"]
