"""Initial configurations of tokens, drawn from explicit seeds.

Every sampler has the signature ``name(seed, batch, n, d, ..., *, backend, dtype, device)``
and returns (batch, n, d) tokens (angles: (batch, n)). Draws are made with
``numpy.random.default_rng(seed)`` (or a given Generator) and then moved to the backend,
so one seed gives the same numbers on numpy, torch and JAX; float64 unless asked
otherwise (float32 for JAX without x64).

* ``uniform_sphere``  i.i.d. uniform on S^{d-1}: normalised standard Gaussians.
* ``orthogonal``      a uniformly random orthonormal n-frame (d >= n): the start of Thm 6.8.
* ``equiangular``     <x_i, x_j> = rho for all i != j, randomly rotated; Gram (1-rho) I + rho 11^T
                      is positive definite iff -1/(n-1) < rho < 1.
* ``cone``            i.i.d. uniform on the cap {<x, w> >= cos alpha}. For x uniform on S^{d-1},
                      (1 - <x, w>)/2 ~ Beta((d-1)/2, (d-1)/2); the height is drawn from that law
                      conditioned on the cap by inverting its CDF (exact, no rejection), the
                      direction orthogonal to w uniformly.
* ``hemisphere``      the open hemisphere {<x, w> > 0} (alpha = pi/2): Lemma 6.4's setting.
* ``uniform_angles``  i.i.d. uniform angles on the circle, (batch, n).
* ``uniform_box``     i.i.d. uniform in [-a, a]^d (pure self-attention starts of 2305.05465).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import betainc, betaincinv

from attention.array_api import Array, BackendName, from_numpy, rng

Seed = int | np.random.Generator


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_sphere_dim(d: int) -> None:
    if d < 2:
        raise ValueError(f"tokens on the sphere S^(d-1) need d >= 2, got d = {d}")


def _normalize(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _haar_frames(gen: np.random.Generator, batch: int, n: int, d: int) -> np.ndarray:
    """(batch, d, n) with orthonormal columns, uniformly (Haar) distributed: QR of a
    Gaussian matrix with the signs of R's diagonal moved into Q."""
    q, r = np.linalg.qr(gen.standard_normal((batch, d, n)))
    signs = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    return q * np.where(signs == 0, 1.0, signs)[:, None, :]


def _axis(w: Any, batch: int, d: int) -> np.ndarray:
    """The unit axis of a cap as (batch, 1, d); default e_1."""
    if w is None:
        axis = np.zeros((batch, d))
        axis[:, 0] = 1.0
        return axis[:, None, :]
    arr = np.asarray(w, dtype=float)
    if arr.shape not in ((d,), (batch, d)):
        raise ValueError(f"the axis w must have shape ({d},) or ({batch}, {d}), got {arr.shape}")
    norm = np.linalg.norm(arr, axis=-1, keepdims=True)
    if not np.all(np.isfinite(arr)) or np.any(norm == 0):
        raise ValueError("the axis w must be a finite nonzero vector")
    return np.broadcast_to(arr / norm, (batch, d))[:, None, :]


def uniform_sphere(
    seed: Seed, batch: int, n: int, d: int, *,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """(batch, n, d) tokens i.i.d. uniform on S^{d-1}."""
    _check_sizes(batch=batch, n=n, d=d)
    _check_sphere_dim(d)
    x = _normalize(rng(seed).standard_normal((batch, n, d)))
    return from_numpy(x, backend, dtype, device)


def orthogonal(
    seed: Seed, batch: int, n: int, d: int, *,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """(batch, n, d) orthonormal tokens, <x_i, x_j> = delta_ij, a Haar-random frame; d >= n."""
    _check_sizes(batch=batch, n=n, d=d)
    if d < n:
        raise ValueError(f"n = {n} orthonormal tokens need d >= n, got d = {d}")
    x = np.swapaxes(_haar_frames(rng(seed), batch, n, d), -1, -2)
    return from_numpy(x, backend, dtype, device)


def equiangular(
    seed: Seed, batch: int, n: int, d: int, rho: float, *,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """(batch, n, d) unit tokens with <x_i, x_j> = rho for every i != j, randomly rotated.

    X = S F^T with F a Haar (d, n) frame and S = sqrt(G) the symmetric square root of
    G = (1 - rho) I + rho 11^T, in closed form S = a I + b 11^T with a = sqrt(1 - rho),
    b = (sqrt(1 + (n - 1) rho) - a)/n; then X X^T = S^2 = G. Needs d >= n and
    -1/(n-1) < rho < 1 (G positive definite).
    """
    _check_sizes(batch=batch, n=n, d=d)
    lower = -1.0 / (n - 1) if n > 1 else -math.inf
    if not (isinstance(rho, (int, float)) and lower < rho < 1):
        raise ValueError(
            f"equiangular tokens need -1/(n-1) < rho < 1 (here {lower:.4g} < rho < 1), "
            f"got rho = {rho!r}"
        )
    if d < n:
        raise ValueError(f"n = {n} equiangular tokens with rho in (-1/(n-1), 1) need d >= n, "
                         f"got d = {d}")
    a = math.sqrt(1.0 - rho)
    b = (math.sqrt(1.0 + (n - 1) * rho) - a) / n
    root = a * np.eye(n) + b * np.ones((n, n))
    x = root @ np.swapaxes(_haar_frames(rng(seed), batch, n, d), -1, -2)
    return from_numpy(x, backend, dtype, device)


def cone(
    seed: Seed, batch: int, n: int, d: int, alpha: float, *, w: Any = None,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """(batch, n, d) tokens i.i.d. uniform on the cap {x : <x, w> >= cos alpha}, 0 < alpha <= pi.

    w: the cap's axis, (d,) or (batch, d), normalised here; default e_1. With
    v = (1 - <x, w>)/2 ~ Beta(a, a), a = (d-1)/2, conditioned on v <= sin^2(alpha/2):
    v = I^{-1}_a(U I_a(sin^2(alpha/2))), U ~ U(0, 1), I the regularised incomplete beta.
    alpha = pi is the whole sphere.
    """
    _check_sizes(batch=batch, n=n, d=d)
    _check_sphere_dim(d)
    if not (isinstance(alpha, (int, float)) and 0 < alpha <= math.pi):
        raise ValueError(f"the cap's half-angle alpha must lie in (0, pi], got {alpha!r}")
    axis = _axis(w, batch, d)
    gen = rng(seed)
    shape_a = (d - 1) / 2
    top = betainc(shape_a, shape_a, math.sin(alpha / 2) ** 2)
    v = betaincinv(shape_a, shape_a, gen.random((batch, n)) * top)[..., None]
    g = gen.standard_normal((batch, n, d))
    perpendicular = _normalize(g - np.sum(g * axis, axis=-1, keepdims=True) * axis)
    x = (1.0 - 2.0 * v) * axis + 2.0 * np.sqrt(v * (1.0 - v)) * perpendicular
    return from_numpy(_normalize(x), backend, dtype, device)


def hemisphere(
    seed: Seed, batch: int, n: int, d: int, *, w: Any = None,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """(batch, n, d) tokens i.i.d. uniform on the open hemisphere {<x, w> > 0} (default w = e_1).

    The cap of half-angle pi/2; its boundary <x, w> = 0 has probability zero.
    """
    return cone(seed, batch, n, d, math.pi / 2, w=w, backend=backend, dtype=dtype, device=device)


def uniform_angles(
    seed: Seed, batch: int, n: int, *,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """(batch, n) angles i.i.d. uniform on [-pi, pi): uniform points of the circle."""
    _check_sizes(batch=batch, n=n)
    theta = rng(seed).uniform(-math.pi, math.pi, (batch, n))
    return from_numpy(theta, backend, dtype, device)


def uniform_box(
    seed: Seed, batch: int, n: int, d: int, half_width: float = 1.0, *,
    backend: BackendName = "numpy", dtype: Any = None, device: Any = None,
) -> Array:
    """(batch, n, d) points i.i.d. uniform in the cube [-a, a]^d, a = half_width (not on the
    sphere: starts for pure self-attention, e.g. a = 5 in 2305.05465's movies)."""
    _check_sizes(batch=batch, n=n, d=d)
    if not (isinstance(half_width, (int, float)) and 0 < half_width < math.inf):
        raise ValueError(f"half_width must be a positive finite number, got {half_width!r}")
    x = rng(seed).uniform(-half_width, half_width, (batch, n, d))
    return from_numpy(x, backend, dtype, device)
