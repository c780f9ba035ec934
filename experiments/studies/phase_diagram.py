"""``phase-diagram``: the Fig. 3 statistic on a (t, beta) grid, for any field, d and n.

Per member (seed, n, d, beta) and output time t it stores ``clustered_pairs``, the number
of unordered pairs {i, j} with <x_i(t), x_j(t)> >= 1 - delta (an exact integer). The
statistic of Fig. 3 is its mean over seeds divided by n(n-1)/2,

    P(t, beta) = E[ #{i < j : <x_i(t), x_j(t)> >= 1 - delta} ] / (n(n-1)/2),

the average over realisations and pairs of 1{<x_i(t), x_j(t)> >= 1 - delta}. With
scheme "authors" and h = 0.1 it is the paper's computation; "rk4" or an adaptive
method gives the exact flow. The summary adds the limiting boundary Gamma_{infinity,delta}
(6.12) where the equiangular theory applies (SA/USA, identity weights): as beta(t)
(``dynamics.theory.phase_boundary_betas``) and as t*(beta) (``phase_boundary_times``).
For SA the pairs are clustered below the curve beta(t); for d >> n the simulated
transition tracks it (Thm 6.9).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attention.array_api import to_numpy
from dynamics import fraction_clustered_pairs, theory
from dynamics.gram_space import (
    GRAM_METHODS,
    fraction_clustered_from_gram,
    gram_flow,
    on_step_grid,
)
from experiments.chunks import Layout, initial_states, members_of
from experiments.fields import Members, equiangular_normalization
from experiments.schema import InUnitInterval, Positive, StudyConfig, Times
from experiments.studies import StudyKind, Variable
from experiments.studies.common import (
    label,
    on_points,
    save_figure,
    simulate_engine,
    simulate_members,
)


@dataclass(frozen=True)
class PhaseParams:
    """[phase]: threshold delta and the output times (starting at 0)."""

    times: Times
    delta: InUnitInterval = 1e-3
    beta_max: Positive = 50.0


def _variables(config: StudyConfig) -> dict[str, Variable]:
    return {"clustered_pairs": Variable(("time",), "int32", {
        "long_name": "number of unordered pairs with <x_i, x_j> >= 1 - delta"})}


def _coords(config: StudyConfig) -> dict[str, Any]:
    return {"time": np.asarray(config.params.times, dtype=float)}


def _on_gram(config: StudyConfig, members: Members) -> bool:
    """SA/USA with identity weights, a Gram-space scheme, numpy: integrate G = X X^T alone
    (``dynamics.gram_space``: same numbers, two n x n products per step in any dimension)."""
    integrator = config.integrator
    return (config.field.kind in ("sa", "usa") and not config.field.params.causal
            and members.backend == "numpy" and integrator.method in GRAM_METHODS
            and integrator.reduce == "auto" and on_step_grid(config.params.times, integrator.dt))


def _engine(config: StudyConfig) -> str:
    """"gram-space" where the chunks integrate G (``_on_gram``), else simulate's engine."""
    members = members_of(config, Layout.of(config).chunk(0))
    return "gram-space" if _on_gram(config, members) else simulate_engine(config)


def _compute(config: StudyConfig, members: Members) -> dict[str, np.ndarray]:
    p = config.params
    n = members.n
    if _on_gram(config, members):
        values = gram_flow(initial_states(config, members), members.betas.astype(float),
                           p.times, dt=config.integrator.dt, method=config.integrator.method,
                           normalization="softmax" if config.field.kind == "sa" else "usa",
                           observe=fraction_clustered_from_gram(p.delta))
    else:
        values = simulate_members(config, members, p.times, observe=on_points(
            config, fraction_clustered_pairs(p.delta))).values
    pairs = n * (n - 1) / 2
    counts = np.rint(to_numpy(values).astype(np.float64) * pairs).astype(np.int32)
    return {"clustered_pairs": counts}


def _summarize(ds: Any, config: StudyConfig) -> Any:
    import xarray as xr

    grid, p = config.grid, config.params
    n = np.asarray(grid.n, dtype=float)
    pairs = xr.DataArray(n * (n - 1) / 2, dims=("n",), coords={"n": list(grid.n)})
    probability = ds["clustered_pairs"].astype(np.float64).mean("seed") / pairs.where(pairs > 0)
    boundary_beta = np.full((len(grid.n), len(p.times)), np.nan)
    boundary_time = np.full((len(grid.n), len(grid.beta)), np.nan)
    normalization = equiangular_normalization(config)
    if normalization is not None:
        for i, count in enumerate(grid.n):
            if count < 2:
                continue
            boundary_beta[i] = theory.phase_boundary_betas(
                p.times, count, p.delta, normalization=normalization, beta_max=p.beta_max)
            boundary_time[i] = theory.phase_boundary_times(
                grid.beta, count, p.delta, normalization=normalization)
    out = xr.Dataset(
        {"probability": probability.transpose("n", "d", "beta", "time"),
         "boundary_beta": (("n", "time"), boundary_beta),
         "boundary_time": (("n", "beta"), boundary_time)},
    )
    out["probability"].attrs["long_name"] = (
        f"mean over seeds and pairs of 1{{<x_i, x_j> >= 1 - {p.delta:g}}}")
    out["boundary_beta"].attrs["long_name"] = "Gamma_infinity,delta as beta(t) (equiangular ODE)"
    out["boundary_time"].attrs["long_name"] = "Gamma_infinity,delta as t*(beta)"
    return out


def _plot(ds: Any, config: StudyConfig, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    grid, p = config.grid, config.params
    panels = [(i, j) for i in range(len(grid.n)) for j in range(len(grid.d))]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    t, beta = np.asarray(p.times), np.asarray(grid.beta)
    for k, (i, j) in enumerate(panels):
        ax = axes[k // cols][k % cols]
        prob = ds["probability"].values[i, j]
        mesh = ax.pcolormesh(t, beta, prob, cmap="RdBu_r", vmin=0, vmax=1, shading="nearest")
        curve = ds["boundary_beta"].values[i]
        if np.isfinite(curve).any():
            ax.plot(t, curve, "k", lw=1.2, label="Γ∞,δ")
            ax.set_ylim(beta.min(), beta.max())
            ax.legend(fontsize=7, loc="upper left")
        ax.set_title(f"n={grid.n[i]}, d={grid.d[j]}", fontsize=9)
        ax.set_xlabel("t")
        ax.set_ylabel("β")
        fig.colorbar(mesh, ax=ax)
    for k in range(len(panels), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(f"P(<x_i, x_j> ≥ 1 − δ), δ = {p.delta:g} ({label(config)})", fontsize=10)
    return save_figure(fig, out_dir, "phase_diagram")


KIND = StudyKind("phase", PhaseParams,
                 variables=_variables, compute=_compute, summarize=_summarize, plot=_plot,
                 coords=_coords, engine=_engine)
