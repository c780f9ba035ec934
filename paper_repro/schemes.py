"""The two ways a figure can integrate its flow (``--scheme faithful|exact``), one meaning each
in every figure (the phase-diagram studies of F3-F5 take theirs from ``phase_studies.INTEGRATORS``,
built from the constants here).

* ``faithful`` - the authors' code (rotf ``sphere.py``, ``phase-diagrams.py``): one step is
  x <- normalize(x + h D(x)) with the *unprojected* attention drive D and h = 0.1, i.e.
  ``simulate(method="authors")``. It is first order, and its O(h) error at h = 0.1 shifts
  clustering times (F8 shows by how much).
* ``exact`` - adaptive Dormand-Prince 5(4) with tight tolerances (rtol 1e-9, atol 1e-11):
  the flow itself, to about 1e-8.

The code of 2305.05465 (pure self-attention in R^d, figures C1 and C2) used RK4 with
h = 0.1 instead; there ``faithful="rk4"`` (the attention is re-evaluated at every stage,
where that code froze it within a step: paper.md section 8.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dynamics import Trajectory, simulate

H = 0.1
SCHEMES = ("faithful", "exact")
RTOL, ATOL = 1e-9, 1e-11


def check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    return scheme


def time_grid(horizon: float, h: float = H) -> np.ndarray:
    """0, h, 2h, ..., horizon (rounded, so that the fixed-step scheme lands on every point)."""
    steps = round(float(horizon) / h)
    return np.round(np.arange(steps + 1) * h, 10)


def integrate(
    field, x0: Any, times: np.ndarray, scheme: str, *, h: float = H,
    observe: Callable | None = None, faithful: str = "authors",
) -> Trajectory:
    """Integrate ``field`` from x0 with the named scheme (module docstring); ``faithful``
    is the fixed-step method standing for the authors' code ("authors" or "rk4")."""
    if check_scheme(scheme) == "faithful":
        return simulate(field, x0, times, method=faithful, dt=h, observe=observe)
    return simulate(field, x0, times, method="dopri5", rtol=RTOL, atol=ATOL, observe=observe)


def describe(scheme: str, h: float = H, faithful: str = "authors") -> str:
    """A short label for titles and JSON."""
    if check_scheme(scheme) == "faithful":
        if faithful == "rk4":
            return f"RK4, h = {h:g}"
        return f"authors' Euler + normalise, h = {h:g}"
    return f"Dormand-Prince 5(4), rtol {RTOL:g}"
