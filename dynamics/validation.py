"""Checks at the public boundary. Each failure says what was expected and how to fix it.

Inner loops never call these; public entry points call them once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attention.array_api import Array, backend_of, to_numpy

SPHERE_TOL = 1e-6


def check_real(name: str, value: Any, *, positive: bool = False, nonnegative: bool = False):
    """A finite real scalar or array; optional sign constraint."""
    arr = np.asarray(to_numpy(value) if not isinstance(value, (int, float)) else value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not np.all(arr > 0):
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonnegative and not np.all(arr >= 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def check_floating(name: str, x: Array) -> None:
    backend = backend_of(x)
    kind = str(x.dtype)
    if "float" not in kind:
        raise TypeError(
            f"{name} must be a floating-point {backend} array (float32 or float64), got {kind}"
        )


def check_finite(name: str, x: Array) -> None:
    a = to_numpy(x)
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{name} contains {bad} NaN or infinite entries")


def check_tokens(
    x: Array,
    *,
    space_name: str = "sphere",
    name: str = "x0",
    tol: float = SPHERE_TOL,
) -> None:
    """Tokens of shape (batch, n, d) (or (batch, n) for angles), finite, on the space."""
    rank = 2 if space_name == "angles" else 3
    shape = tuple(x.shape)
    if len(shape) != rank:
        expected = "(batch, n)" if rank == 2 else "(batch, n, d)"
        raise ValueError(f"{name} must have shape {expected}, got {shape}")
    check_floating(name, x)
    if shape[1] < 1:
        raise ValueError(f"{name} needs n >= 1 tokens, got n = {shape[1]}")
    if shape[0] < 1:
        raise ValueError(f"{name} needs a batch of at least one configuration, got {shape}")
    if space_name == "sphere" and shape[2] < 2:
        raise ValueError(f"tokens on the sphere S^(d-1) need d >= 2, got d = {shape[2]}")
    check_finite(name, x)
    if space_name == "sphere":
        _check_unit_norms(name, to_numpy(x), tol)


def _check_unit_norms(name: str, a: np.ndarray, tol: float) -> None:
    """Raise ValueError if some |a_i| (last axis) is farther than tol from 1."""
    if a.size == 0:
        return
    err = float(np.max(np.abs(np.linalg.norm(a, axis=-1) - 1.0)))
    if err > tol:
        raise ValueError(
            f"{name} has points off the unit sphere (max | |x_i| - 1 | = {err:.3g} > "
            f"{tol:g} for {a.dtype}); project them with dynamics.normalize(x) first"
        )


def check_times(times: Any) -> np.ndarray:
    """Output times: a finite, strictly increasing 1-d sequence with at least two entries."""
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or t.size < 2:
        raise ValueError(
            "times must be a 1-d increasing sequence [t0, ..., T] with at least two entries "
            f"(or a scalar horizon T > 0), got shape {t.shape}"
        )
    if not np.all(np.isfinite(t)):
        raise ValueError("times must be finite")
    if not np.all(np.diff(t) > 0):
        raise ValueError("times must be strictly increasing")
    return t


def check_delta(delta: float) -> float:
    """The clustering threshold delta in (0, 2) (NaN and booleans are refused)."""
    if isinstance(delta, (np.floating, np.integer)):
        delta = delta.item()
    if isinstance(delta, bool) or not (
        isinstance(delta, (int, float)) and math.isfinite(delta) and 0 < delta < 2
    ):
        raise ValueError(
            f"the clustering threshold delta must lie in (0, 2) (pairs count as clustered when "
            f"<x_i, x_j> >= 1 - delta), got {delta!r}"
        )
    return float(delta)


class NonFiniteStateError(FloatingPointError):
    """A trajectory became non-finite (NaN or infinite) during ``simulate``.

    ``members``: the batch indices affected; ``time``: the time at which it was seen (the
    field's time at the evaluation that gave it, or the first output time holding it).
    """

    def __init__(self, message: str, *, members: Any = (), time: float = math.nan) -> None:
        super().__init__(message)
        self.members = tuple(int(m) for m in members)
        self.time = float(time)


_CAUSES = ("likely causes: a field whose velocity overflows (unnormalised attention with "
           "beta |Q| |K| large, tokens growing in R^d), or a step too large for the field's "
           "stiffness; use SA or normalization='usa-shifted', a smaller dt or beta, or an "
           "adaptive method")


def non_finite_error(what: str, bad: np.ndarray, time: float) -> NonFiniteStateError:
    """The error for members ``bad`` (host booleans (batch,)) whose ``what`` became NaN or
    infinite at ``time``, with the likely causes."""
    members = np.flatnonzero(bad)
    first = int(members[0])
    others = f" ({members.size} members: {members[:8].tolist()})" if members.size > 1 else ""
    return NonFiniteStateError(
        f"{what} of member {first} became non-finite (NaN or inf) at t = {time:.6g}{others}; "
        f"{_CAUSES}",
        members=members, time=time,
    )


def is_traced(x: Any) -> bool:
    """True for a JAX tracer (a value inside ``jax.jit``/``vmap``): no host checks there."""
    return "Tracer" in type(x).__name__ and type(x).__module__.startswith("jax")


def dtype_name(x: Array) -> str:
    return str(x.dtype).removeprefix("torch.")


def log_float_max(x: Array) -> float:
    """log of the largest finite number of x's floating dtype (709.78 for float64)."""
    if backend_of(x) == "torch":
        import torch

        return math.log(torch.finfo(x.dtype).max)
    return math.log(float(np.finfo(np.dtype(x.dtype)).max))


def sphere_tolerance(x: Array) -> float:
    """How far |x_i| may be from 1: SPHERE_TOL, or 1000 eps of a coarser dtype (<= 1e-2)."""
    if backend_of(x) == "torch":
        import torch

        eps = torch.finfo(x.dtype).eps
    else:
        eps = float(np.finfo(np.dtype(x.dtype)).eps)
    return min(max(SPHERE_TOL, 1000.0 * eps), 1e-2)


def check_sphere_points(x: Array, *, name: str = "x", rank: int | None = 3,
                        tol: float | None = None) -> None:
    """Points of the unit sphere for an observable: an array of ``rank`` axes (any rank >= 2
    when None; the last one is d), real floating, finite, |x_i| = 1 within ``tol`` (default:
    :func:`sphere_tolerance` of its dtype). Values traced by JAX are not checked."""
    shape = tuple(getattr(x, "shape", ()))
    if not hasattr(x, "dtype") or (len(shape) != rank if rank is not None else len(shape) < 2):
        want = f"{rank} axes (batch, n, d)" if rank == 3 else f"{rank or '>= 2'} axes"
        raise ValueError(f"{name} must be an array of points with {want}, got shape {shape}")
    check_floating(name, x)
    if is_traced(x):
        return
    a = to_numpy(x)
    check_finite(name, a)
    _check_unit_norms(name, a, sphere_tolerance(x) if tol is None else tol)


def check_exponent(name: str, bound: float, x: Array, *, what: str, fix: str) -> None:
    """Refuse a computation whose values reach e^bound when e^bound (with a margin of
    ``log n + 1``, n = x.shape[-2]: sums of n such terms) overflows x's dtype."""
    limit = log_float_max(x) - math.log(max(int(x.shape[-2]), 1)) - 1.0
    if bound > limit:
        raise OverflowError(
            f"{name}: {what} reaches e^{bound:.4g}, beyond the largest {dtype_name(x)} "
            f"(the limit here is e^{limit:.4g}: log(finfo.max) - log n - 1); {fix}"
        )
