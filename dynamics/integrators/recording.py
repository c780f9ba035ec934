"""Bookkeeping shared by the drivers: output buffers and the clustering event.

Outputs are kept as one array (batch, ...) per requested time and filled member by
member (members reach an output time at different iterations under adaptive steps, and
stopped members are filled with their frozen state at the end).

The clustering event of a member is the first time its gap
g(t) = min_{i != j} <x_i, x_j> - (1 - delta) becomes >= 0, the x_i being the state's points
on the sphere (the space's ``points``: the tokens, or the circle's (cos, sin)). The
crossing inside the step that brackets the sign change is located by the driver's
``refine`` (adaptive steps: bisection on the cubic Hermite interpolant of the states,
O(h^4)), or else by the root of the quadratic through the last three values of g (fixed
steps, O(h^3)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attention.array_api import Array, asarray_like, namespace, to_numpy
from dynamics.observables import cluster_gap


def member_mask(mask: np.ndarray, like: Array) -> Array:
    """Host booleans (batch,) as a backend mask broadcasting against states like ``like``."""
    xp = namespace(like)
    m = asarray_like(mask, like)
    m = xp.astype(m, xp.bool) if hasattr(xp, "bool") else m.astype(bool)
    return xp.reshape(m, (-1,) + (1,) * (like.ndim - 1))


def select(mask: np.ndarray, new: Array, old: Array) -> Array:
    """new where mask (per member) else old."""
    if mask.all():
        return new
    if not mask.any():
        return old
    return namespace(new).where(member_mask(mask, new), new, old)


@dataclass
class OutputBuffer:
    """One slot per output time, each (batch, ...) once filled."""

    count: int
    observe: Callable[[Array], Array]
    slots: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.slots = [None] * self.count

    def record(self, index: int, x: Array, members: np.ndarray | None = None) -> None:
        value = self.observe(x)
        if members is None or self.slots[index] is None:
            self.slots[index] = value
        else:
            self.slots[index] = select(members, value, self.slots[index])

    def fill_from(self, first: np.ndarray, x: Array) -> None:
        """For each member b, set every slot >= first[b] to observe(x)[b] (frozen members)."""
        for index in range(self.count):
            members = first <= index
            if members.any():
                self.record(index, x, members)

    def stacked(self) -> Array:
        xp = namespace(self.slots[0])
        return xp.stack(self.slots, axis=1)


@dataclass
class ClusterEvent:
    """Per-member clustering detection with threshold delta (None: no event); ``points``
    maps a state to its points on the sphere (``Space.points``)."""

    delta: float | None
    batch: int
    t0: float
    points: Callable[[Array], Array] | None = None  # None: the states are the points
    times: np.ndarray = field(init=False)
    done: np.ndarray = field(init=False)
    gap: np.ndarray = field(init=False)
    older: np.ndarray = field(init=False)
    t_older: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.times = np.full(self.batch, np.nan)
        self.done = np.zeros(self.batch, dtype=bool)
        self.gap = np.full(self.batch, np.nan)
        self.older = np.full(self.batch, np.nan)
        self.t_older = np.full(self.batch, np.nan)

    @property
    def active(self) -> bool:
        return self.delta is not None

    def _points(self, x: Array) -> Array:
        return x if self.points is None else self.points(x)

    def start(self, x: Array) -> None:
        if not self.active:
            return
        self.gap = to_numpy(cluster_gap(self._points(x), self.delta)).astype(float)
        hit = self.gap >= 0
        self.times[hit] = self.t0
        self.done |= hit

    def update(
        self,
        x: Array,
        t_prev: np.ndarray,
        t_new: np.ndarray,
        moved: np.ndarray,
        refine: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """Check members that just moved from t_prev to t_new (host arrays (batch,)).

        ``refine(hit)`` may return the crossing times of the members in ``hit``.
        """
        if not self.active or not moved.any():
            return
        gap = to_numpy(cluster_gap(self._points(x), self.delta)).astype(float)
        hit = moved & ~self.done & (gap >= 0)
        if hit.any():
            if refine is not None:
                self.times[hit] = refine(hit)
            else:
                self.times[hit] = self._quadratic_root(hit, t_prev, t_new, gap)
            self.done |= hit
        self.older = np.where(moved, self.gap, self.older)
        self.t_older = np.where(moved, t_prev, self.t_older)
        self.gap = np.where(moved, gap, self.gap)

    def _quadratic_root(self, hit, t_prev, t_new, gap) -> np.ndarray:
        ta, tb, tc = self.t_older[hit], t_prev[hit], t_new[hit]
        ga, gb, gc = self.older[hit], self.gap[hit], gap[hit]
        linear = np.isnan(ga) | (tb - ta <= 0)
        ta = np.where(linear, tb - 1.0, ta)
        ga = np.where(linear, gb - (gc - gb) / np.maximum(tc - tb, 1e-300), ga)

        def poly(t):
            return (
                ga * (t - tb) * (t - tc) / ((ta - tb) * (ta - tc))
                + gb * (t - ta) * (t - tc) / ((tb - ta) * (tb - tc))
                + gc * (t - ta) * (t - tb) / ((tc - ta) * (tc - tb))
            )

        return bisect(poly, tb, tc)


def bisect(fn: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray,
           iterations: int = 60) -> np.ndarray:
    """Vectorised bisection for fn(lo) < 0 <= fn(hi); returns the upper end (a point with
    fn >= 0, so a stopped member is never reported before it clustered)."""
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        up = fn(mid) >= 0
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    return hi
