"""Driver for fixed-step schemes on the grid t_k = t0 + k h.

Outputs requested between grid points are produced by a side step from the last grid
state (same scheme, shorter step), so the main trajectory stays on the grid of the
authors' code. Stochastic schemes need every output time on the grid. Members that
have clustered (when the event is on) are frozen and stop costing accuracy checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from attention.array_api import Array, backend_of, compile_step, from_numpy
from dynamics.integrators.recording import ClusterEvent, OutputBuffer, select
from dynamics.integrators.schemes import FixedStepScheme


@dataclass
class RawSolution:
    values: Array
    cluster_time: np.ndarray
    accepted: np.ndarray
    rejected: np.ndarray


def advance(scheme: FixedStepScheme, field, t: Any, x: Array, h: Any, noise=None) -> Array:
    """One step; a split field (``parts``) is advanced part after part (Lie-Trotter)."""
    if not field.parts:
        return scheme.step(field, t, x, h, noise)
    for part in field.parts:
        x = advance(scheme, part, t, x, h, noise)
    return x


def integrate_fixed(
    field,
    x0: Array,
    times: np.ndarray,
    *,
    scheme: FixedStepScheme,
    dt: float,
    observe,
    event: ClusterEvent,
    rng: np.random.Generator | None = None,
    progress=None,
) -> RawSolution:
    batch = x0.shape[0]
    t0 = float(times[0])
    tol = 1e-9 * dt
    if scheme.stochastic:
        k = (times - t0) / dt
        if not np.allclose(k, np.round(k), atol=1e-9, rtol=0):
            raise ValueError(
                "stochastic schemes need output times on the step grid t0 + k*dt; "
                f"got times not divisible by dt = {dt}"
            )

    def step(t, x, h, noise):
        return advance(scheme, field, t, x, h, noise)

    if not field.time_dependent:
        step = compile_step(step, x0)

    def draw(x: Array) -> Array | None:
        if not scheme.stochastic:
            return None
        backend = backend_of(x)
        device = x.device if backend == "torch" else None
        return from_numpy(rng.standard_normal(tuple(x.shape)), backend, x.dtype, device)

    out = OutputBuffer(len(times), observe)
    out.record(0, x0)
    event.start(x0)
    x, k, next_out = x0, 0, 1
    steps = np.zeros(batch, dtype=np.int64)
    while next_out < len(times):
        t = t0 + k * dt
        grid_next = t0 + (k + 1) * dt
        while next_out < len(times) and times[next_out] < grid_next - tol:
            gap = times[next_out] - t
            # a side step to the output time; members that stopped keep their state
            out.record(next_out, x if gap <= tol else select(~event.done, step(t, x, gap, None), x))
            next_out += 1
        if next_out == len(times):
            break
        moving = ~event.done
        x_new = select(moving, step(t, x, dt, draw(x)), x)
        steps += moving
        k += 1
        event.update(x_new, np.full(batch, t), np.full(batch, grid_next), moving)
        x = x_new
        if abs(times[next_out] - grid_next) <= tol:
            out.record(next_out, x)
            next_out += 1
        if progress is not None:
            progress.advance_to(grid_next)
        if event.active and event.done.all():
            break
    if next_out < len(times):
        out.fill_from(np.full(batch, next_out), x)
    return RawSolution(out.stacked(), event.times, steps, np.zeros(batch, dtype=np.int64))

