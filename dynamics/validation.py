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
        norms = np.linalg.norm(to_numpy(x), axis=-1)
        err = float(np.max(np.abs(norms - 1.0)))
        if err > tol:
            raise ValueError(
                f"{name} has points off the unit sphere (max | |x_i| - 1 | = {err:.3g} > "
                f"{tol:g}); project them with dynamics.normalize(x) first"
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
    if not (isinstance(delta, (int, float)) and 0 < delta < 2 and math.isfinite(delta)):
        raise ValueError(
            f"the clustering threshold delta must lie in (0, 2) (pairs count as clustered when "
            f"<x_i, x_j> >= 1 - delta), got {delta!r}"
        )
    return float(delta)
