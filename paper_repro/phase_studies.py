"""Phase diagrams as stored studies: how F3, F4 (left) and F5 get their (t, beta) panels.

A panel is the statistic of Fig. 3,

    P(t, beta) = mean over seeds and pairs i != j of 1{<x_i(t), x_j(t)> >= 1 - delta},

on a (t, beta) grid. A figure never loops over seeds itself: it writes a ``phase-diagram``
study config (``experiments.studies.phase_diagram``), runs it with
``experiments.runner.run_study`` into ``<out>/<name>-<size>.zarr`` (chunks in parallel;
a store that already holds the same config is reused, not recomputed) and plots the
summary: P and Gamma_{infinity,delta} as beta(t). The store name carries the size, seed
and device, so a quick and a full run never collide.

Schemes (``paper_repro.schemes``, one meaning in every figure): ``faithful`` is the
authors' step x <- normalize(x + h A x) at h = 0.1; ``exact`` is adaptive Dormand-Prince
5(4) at rtol 1e-9. ``half_boundary`` reads a panel's
simulated boundary: for each t, the beta at which P falls through 1/2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paper_repro.registry import FigureRequest
from paper_repro.schemes import ATOL, RTOL, SCHEMES, H, check_scheme, describe

N, T, DELTA = 32, 30.0, 1e-3
BETA_RANGE = (0.1, 9.0)  # the paper's beta axis (90 values in full)
INTEGRATORS = {"faithful": {"method": "authors", "dt": H},
               "exact": {"method": "dopri5", "rtol": RTOL, "atol": ATOL}}
SCHEME_LABELS = {s: describe(s) for s in SCHEMES}


@dataclass(frozen=True)
class PhaseGrid:
    """Sizes of a phase diagram: seeds (and seeds per work chunk), the beta grid (and betas
    per chunk), the output-time spacing (a multiple of h: no side steps) and the horizon."""

    seeds: int
    seed_chunk: int
    betas: tuple[float, ...]
    beta_chunk: int
    t_step: float
    horizon: float = T

    def __post_init__(self) -> None:
        if self.seeds < 1 or self.seed_chunk < 1 or self.beta_chunk < 0:
            raise ValueError(f"seeds and chunks must be positive, got {self}")
        steps = self.t_step / H
        if self.t_step <= 0 or abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"t_step must be a positive multiple of h = {H}, got {self.t_step}")

    @property
    def times(self) -> np.ndarray:
        count = round(self.horizon / self.t_step)
        return np.round(np.arange(count + 1) * self.t_step, 10)

    def describe(self) -> str:
        return (f"{self.seeds} seeds, {len(self.betas)} betas, "
                f"t every {self.t_step:g}")


def beta_grid(start: float, stop: float, num: int) -> tuple[float, ...]:
    """``num`` equally spaced betas (rounded to 12 digits, so configs print cleanly)."""
    return tuple(float(b) for b in np.round(np.linspace(start, stop, num), 12))


def phase_config(request: FigureRequest, *, field: dict[str, Any], dims: tuple[int, ...],
                 grid: PhaseGrid, scheme: str, n: int = N, delta: float = DELTA,
                 integrator: dict[str, Any] | None = None) -> Any:
    """The ``phase-diagram`` StudyConfig of one figure: SA-type ``field`` (a [field] table),
    dimensions ``dims``, ``grid`` sizes and ``scheme`` (or an explicit [integrator] table);
    float64 on the request's device (numpy on the CPU, torch on CUDA). Random draws derive
    from ``request.seed``."""
    from experiments.config import parse_config

    compute = ({"backend": "torch", "device": "cuda", "dtype": "float64"}
               if request.device == "cuda" else {"backend": "numpy", "dtype": "float64"})
    return parse_config({
        "study": "phase-diagram",
        "seed": int(request.seed),
        "field": field,
        "grid": {"n": [n], "d": list(dims), "beta": list(grid.betas),
                 "beta_chunk": grid.beta_chunk},
        "seeds": {"count": grid.seeds, "chunk": grid.seed_chunk},
        "integrator": dict(integrator or INTEGRATORS[check_scheme(scheme)]),
        "compute": compute,
        "phase": {"delta": delta, "times": [float(t) for t in grid.times]},
    }, expect="phase-diagram")


def store_path(request: FigureRequest, name: str) -> Path:
    """<out>/<name>-<size>-seed<seed>-<device>.zarr (module docstring)."""
    return request.out / f"{name}-{request.size}-seed{request.seed}-{request.device}.zarr"


def run_phase(request: FigureRequest, name: str, config: Any) -> Any:
    """Run (or reuse) ``config`` into ``store_path(request, name)``; the loaded Dataset
    (per-seed ``clustered_pairs`` and the summary: ``probability`` (n, d, beta, time),
    ``boundary_beta`` (n, time), ``boundary_time`` (n, beta)). Full runs log progress."""
    from experiments.runner import run_study
    from experiments.store import open_dataset

    path = store_path(request, name)
    loud = not (request.quick or request.tiny)
    run_study(config, path, quiet=True, command=f"python -m paper_repro ({name})",
              log=print if loud else (lambda line: None))
    return open_dataset(path).load()


def half_boundary(probability: np.ndarray, betas: np.ndarray, level: float = 0.5) -> np.ndarray:
    """The simulated boundary of a panel: for each t, the beta where P(t, .) first falls
    below ``level`` (linear interpolation between grid betas). probability (beta, time);
    returns (time,), NaN where P < level already at the smallest beta or never falls."""
    p = np.asarray(probability, dtype=float)
    b = np.asarray(betas, dtype=float)
    if p.ndim != 2 or p.shape[0] != b.size:
        raise ValueError(f"probability must be (beta, time) with {b.size} betas, got {p.shape}")
    out = np.full(p.shape[1], np.nan)
    for k in range(p.shape[1]):
        column = p[:, k]
        below = np.nonzero(column < level)[0]
        if column[0] < level or below.size == 0:
            continue
        j = int(below[0])
        p0, p1 = column[j - 1], column[j]
        out[k] = b[j - 1] + (p0 - level) / (p0 - p1) * (b[j] - b[j - 1])
    return out


def grid_spacing(betas: Any) -> float:
    """The largest gap of the beta grid (the resolution of a simulated boundary)."""
    return float(np.max(np.diff(np.asarray(betas, dtype=float))))


def rounded(a: Any, digits: int = 5) -> np.ndarray:
    """Float array rounded for JSON (NaN kept; the writer turns it into null)."""
    return np.round(np.asarray(a, dtype=float), digits)
