"""Wasserstein-1 distance on the circle between particles and a density.

On the circle with geodesic distance, for probability measures mu, nu with cumulative
distribution functions F, G on [0, 2 pi) (cut at angle 0),

    W1(mu, nu) = min_m int_0^{2 pi} | F(theta) - G(theta) - m | dtheta,

and the minimum is reached at m = a median of F - G under the uniform measure dtheta
(Rabin, Delon & Gousseau 2011; Cabrelli & Molter 1995): rotating the cut point shifts
F - G by a constant, and the best constant is the median. On the line (no wrap-around)
it would be m = 0.

Here mu = (1/n) sum_j delta_{theta_j} (F a step function) and nu = rho dtheta given by
its Fourier series (G exact at any angle, ``CircleDensity.cdf``). The integral is taken over
the intervals between the particles and a uniform grid of ``grid_size`` points: F is
constant on each and G is replaced by its chord, an O(grid^-2) error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dynamics.meanfield.density import TWO_PI, CircleDensity


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def _abs_integral(p: np.ndarray, q: np.ndarray, length: np.ndarray) -> float:
    """sum of int |linear segment from p to q| over segments of the given lengths."""
    same = p * q >= 0
    denom = np.where(same, 1.0, np.abs(p) + np.abs(q))
    crossing = (p * p + q * q) / (2 * denom)
    return float(np.sum(length * np.where(same, 0.5 * (np.abs(p) + np.abs(q)), crossing)))


def _w1_one(theta: np.ndarray, density: CircleDensity, nodes: np.ndarray) -> float:
    phi = np.sort(np.mod(theta, TWO_PI))
    points = np.unique(np.concatenate([nodes, phi]))
    g = density.cdf(points)
    f = np.searchsorted(phi, points[:-1], side="right") / phi.size
    left, right = f - g[:-1], f - g[1:]
    length = np.diff(points)
    m = _weighted_median(0.5 * (left + right), length)
    return _abs_integral(left - m, right - m, length)


def w1_circle(theta: Any, density: CircleDensity, *, grid_size: int = 4096) -> np.ndarray | float:
    """W1 between the empirical measure of angles theta and a density (module docstring).

    theta: (n,) or (batch, n) angles (any real values, taken mod 2 pi) -> a float or (batch,).
    """
    if not isinstance(density, CircleDensity):
        raise TypeError(f"density must be a CircleDensity, got {type(density).__name__}")
    arr = np.asarray(theta, dtype=float)
    if arr.ndim not in (1, 2) or arr.shape[-1] < 1:
        raise ValueError(f"theta must have shape (n,) or (batch, n), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("theta contains NaN or infinite angles")
    nodes = TWO_PI * np.arange(grid_size + 1) / grid_size
    if arr.ndim == 1:
        return _w1_one(arr, density, nodes)
    return np.array([_w1_one(row, density, nodes) for row in arr])
