"""``cluster-count``: the number of clusters at given times versus beta (metastable counts).

Per member (seed, n, d, beta) and requested time t it stores ``clusters``: the number of
connected components of the graph with edges <x_i(t), x_j(t)> >= 1 - delta
(``dynamics.cluster_count``), or with method "rank" the rank of the 0/1 matrix
1{<x_i, x_j> > 1 - delta} that the authors' code reports (``dynamics.indicator_rank``).

The summary gives the mean and median count over seeds and the distribution
P(count = k), k = 1..max n, per (n, d, beta, t). On the circle (d = 2) the linearisation
of the continuity equation at the uniform density predicts that the fastest-growing
Fourier mode, k* = argmax_k k^2 I_k(beta) (``dynamics.theory.dominant_mode``, about
sqrt(2 beta)), sets the number of clusters that first form; it is stored beside the counts
as ``dominant_mode``. Fig. 4 of the paper (d = 2, n = 32, authors' scheme, h = 0.1,
t = 30) shows 2 clusters at beta = 4 and 3 at beta = 9.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from attention.array_api import to_numpy
from dynamics import bind, cluster_count, indicator_rank, theory
from experiments.fields import Members
from experiments.schema import InUnitInterval, StudyConfig, require
from experiments.studies import StudyKind, Variable
from experiments.studies.common import label, on_points, save_figure, simulate_members


@dataclass(frozen=True)
class CountParams:
    """[count]: the times at which clusters are counted, the threshold and the method."""

    times: tuple[float, ...]
    delta: InUnitInterval = 1e-3
    method: Literal["components", "rank"] = "components"

    def __post_init__(self) -> None:
        t = np.asarray(self.times)
        require(t.size >= 1, "count.times", "needs at least one time")
        require(bool(np.all(t >= 0)), "count.times", f"must be >= 0, got {self.times}")
        require(bool(np.all(np.diff(t) > 0)), "count.times", "must be strictly increasing")


def _variables(config: StudyConfig) -> dict[str, Variable]:
    return {"clusters": Variable(("time",), "int32", {
        "long_name": f"number of clusters ({config.params.method}) at threshold 1 - delta"})}


def _coords(config: StudyConfig) -> dict[str, Any]:
    return {"time": np.asarray(config.params.times, dtype=float)}


def _compute(config: StudyConfig, members: Members) -> dict[str, np.ndarray]:
    p = config.params
    fn = cluster_count if p.method == "components" else indicator_rank
    times = np.asarray(p.times, dtype=float)
    start = times[0] > 0
    grid = np.concatenate([[0.0], times]) if start else times
    traj = simulate_members(config, members, grid,
                            observe=on_points(config, bind(fn, delta=p.delta)))
    counts = to_numpy(traj.values).astype(np.int32)
    return {"clusters": counts[:, 1:] if start else counts}


def _summarize(ds: Any, config: StudyConfig) -> Any:
    import xarray as xr

    grid = config.grid
    counts = ds["clusters"]
    kmax = max(grid.n)
    k = np.arange(1, kmax + 1)
    frequency = (counts.values[..., None] == k).mean(axis=0)
    modes = np.array([theory.dominant_mode(float(b)) for b in grid.beta], dtype=np.int64)
    out = xr.Dataset(
        {
            "count_mean": counts.astype(np.float64).mean("seed"),
            "count_median": counts.astype(np.float64).median("seed"),
            "count_frequency": (("n", "d", "beta", "time", "clusters"), frequency),
            "dominant_mode": (("beta",), modes),
        },
        coords={"clusters": k},
    )
    out["count_frequency"].attrs["long_name"] = "fraction of seeds with this many clusters"
    out["dominant_mode"].attrs["long_name"] = (
        "circle (d = 2) prediction: fastest-growing Fourier mode k* = argmax k^2 I_k(beta)")
    return out


def _plot(ds: Any, config: StudyConfig, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    grid, p = config.grid, config.params
    beta = np.asarray(grid.beta)
    panels = [(i, j) for i in range(len(grid.n)) for j in range(len(grid.d))][:6]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.8), squeeze=False)
    for ax, (i, j) in zip(axes[0], panels, strict=False):
        for m, t in enumerate(p.times):
            mean = ds["count_mean"].values[i, j, :, m]
            ax.plot(beta, mean, "o-", ms=3, label=f"mean, t={t:g}")
        if grid.d[j] == 2:
            ax.plot(beta, ds["dominant_mode"].values, "k--", lw=1, label="k* (circle modes)")
        ax.set_title(f"n={grid.n[i]}, d={grid.d[j]}", fontsize=9)
        ax.set_xlabel("β")
        ax.set_ylabel("number of clusters")
        ax.legend(fontsize=7)
    fig.suptitle(f"clusters at 1 − δ, δ = {p.delta:g} ({label(config)})", fontsize=10)
    paths = save_figure(fig, out_dir, "cluster_count")

    i, j, m = 0, 0, len(p.times) - 1
    freq = ds["count_frequency"].values[i, j, :, m]
    kmax = int(min(freq.shape[-1], max(8, np.max(np.nonzero(freq.any(axis=0))[0], initial=0) + 2)))
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    mesh = ax.pcolormesh(beta, np.arange(1, kmax + 1), freq[:, :kmax].T, cmap="Blues",
                         vmin=0, vmax=1, shading="nearest")
    ax.set_xlabel("β")
    ax.set_ylabel("clusters")
    ax.set_title(f"P(count = k) at t = {p.times[m]:g}, n={grid.n[i]}, d={grid.d[j]}", fontsize=9)
    fig.colorbar(mesh, ax=ax)
    return paths + save_figure(fig, out_dir, "cluster_count_distribution")


KIND = StudyKind("count", CountParams,
                 variables=_variables, compute=_compute, summarize=_summarize, plot=_plot,
                 coords=_coords)
