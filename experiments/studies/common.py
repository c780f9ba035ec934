"""Helpers shared by the study kinds: one batched ``simulate`` call per chunk, observables
that work on points and on angles, theory lookups and the figure writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dynamics import angles_to_points, simulate, theory, which_engine
from experiments.chunks import Layout, initial_states, members_of
from experiments.fields import Members, build_field, equiangular_normalization
from experiments.registry import FIELDS
from experiments.schema import StudyConfig


def on_points(config: StudyConfig, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` (an observable of points (batch, n, d)) as a hook for this config's states;
    on angle fields the angles are mapped to points of the circle first."""
    if FIELDS[config.field.kind].space == "sphere":
        return fn

    def observable(theta: Any) -> Any:
        return fn(angles_to_points(theta))

    observable.__name__ = getattr(fn, "__name__", "observable")
    return observable


def simulate_members(config: StudyConfig, members: Members, times: Any, **kwargs: Any):
    """One ``dynamics.simulate`` call for the whole chunk (all seeds and betas at once)."""
    field = build_field(config, members)
    x0 = initial_states(config, members)
    return simulate(field, x0, np.asarray(times, dtype=float),
                    **config.integrator.simulate_kwargs(), **kwargs)


def simulate_engine(config: StudyConfig) -> str:
    """The engine ``dynamics.simulate`` takes for this study's chunks ("compiled", "native",
    "triton", ...: ``dynamics.which_engine`` on two members of the first chunk)."""
    members = members_of(config, Layout.of(config).chunk(0))
    members = members.subset(np.arange(min(2, members.batch)))
    return which_engine(build_field(config, members), initial_states(config, members),
                        **config.integrator.simulate_kwargs())


def equiangular_crossing(config: StudyConfig, delta: float) -> np.ndarray:
    """(n, d, beta) exact equiangular crossing times t*(beta) where the theory applies:
    SA/USA with identity weights and d >= n (the d -> infinity limit for uniform starts,
    exact for orthogonal ones); NaN elsewhere."""
    grid = config.grid
    out = np.full((len(grid.n), len(grid.d), len(grid.beta)), np.nan)
    normalization = equiangular_normalization(config)
    if normalization is None:
        return out
    rho0 = config.initial.rho if config.initial.kind == "equiangular" else 0.0
    for i, n in enumerate(grid.n):
        if n < 2:
            continue
        t = theory.crossing_time(np.asarray(grid.beta), n, delta, rho0=rho0,
                                 normalization=normalization)
        for j, d in enumerate(grid.d):
            if d >= n:
                out[i, j] = t
    return out


def save_figure(fig: Any, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf into ``out_dir``; close the figure."""
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def label(config: StudyConfig) -> str:
    """A short description of the simulated flow for figure titles."""
    return (f"{config.field.kind}, {config.integrator.method}"
            + (f" h={config.integrator.dt:g}" if config.integrator.dt else "")
            + f", {config.seeds.count} seeds")
