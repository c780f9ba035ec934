"""``clustering-time``: how long until the tokens form one cluster, over seeds, versus beta, d, n.

Per member (seed, n, d, beta) it stores

* ``clustering_time``: the first t with <x_i, x_j> >= 1 - delta for all pairs, located
  inside the step by ``simulate(..., stop_when_clustered=delta)``; NaN when the run is
  still unclustered at the horizon (right-censored);
* ``fraction_time`` (per ``fractions`` f): the first recorded time (every ``record_dt``)
  at which a fraction >= f of the pairs is within 1 - delta; NaN if never;
* ``steps``: accepted integrator steps.

A batch costs as many steps as its slowest member, and clustering times are heavy-tailed
(at beta = 2, n = 32, d = 3 the longest of 256 runs takes 8x the median). With
``compact_every = T_c`` the chunk is integrated in segments of length T_c, and after each
segment the members that clustered leave the batch, so the cost follows the mean time
instead of the maximum. With fixed steps a segment restarts one step before its start
(from the recorded state there), so the clustering event sees the same three last
gaps as in one long call and the results agree with it to rounding; with adaptive
steps the restart resets the step size (differences at the tolerance).
``compact_every = 0`` (default) is one ``simulate`` call.

The summary (``experiments.statistics``) gives, per grid point, the Kaplan-Meier median
with its Brookmeyer-Crowley interval and the censored fraction; least-squares fits of
log median against log n (per d, beta) and against beta (per n, d) with standard errors;
and, where the theory applies (SA/USA, identity weights, d >= n), the exact equiangular
crossing time t*(beta) of (6.9)/(6.10) and the same fits of it. Thm 6.1: for d >= 3
every run clusters eventually, so at small beta the censored fraction should be 0.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from attention.array_api import is_torch, namespace
from dynamics import first_time, fraction_clustered_pairs, simulate
from experiments.chunks import initial_states
from experiments.fields import Members, build_field
from experiments.registry import FIELDS
from experiments.schema import StudyConfig, require
from experiments.statistics import censored_times, exponential_fit, power_law_fit, summarize_times
from experiments.studies import StudyKind, Variable
from experiments.studies.common import equiangular_crossing, host, label, save_figure


@dataclass(frozen=True)
class ClusteringParams:
    """[clustering]: threshold delta, horizon T, pair fractions, output spacing, CI options."""

    horizon: float
    delta: float = 1e-3
    fractions: tuple[float, ...] = ()
    record_dt: float = 0.1
    compact_every: float = 0.0
    level: float = 0.95
    band: Literal["linear", "log-log"] = "linear"

    def __post_init__(self) -> None:
        require(0 < self.delta < 1, "clustering.delta", f"must lie in (0, 1), got {self.delta}")
        require(self.horizon > 0, "clustering.horizon", f"must be > 0, got {self.horizon}")
        require(all(0 < f <= 1 for f in self.fractions), "clustering.fractions",
                f"each fraction must lie in (0, 1], got {self.fractions}")
        require(len(set(self.fractions)) == len(self.fractions), "clustering.fractions",
                f"has repeated values {self.fractions}")
        require(self.record_dt > 0, "clustering.record_dt", f"must be > 0, got {self.record_dt}")
        require(0 < self.level < 1, "clustering.level", f"must lie in (0, 1), got {self.level}")
        require(self.compact_every >= 0, "clustering.compact_every",
                f"must be >= 0 (0: never), got {self.compact_every}")
        if self.compact_every > 0:
            require(_divides(self.compact_every, self.horizon), "clustering.compact_every",
                    f"must divide the horizon {self.horizon}, got {self.compact_every}")
            if self.fractions:
                require(_divides(self.record_dt, self.compact_every), "clustering.compact_every",
                        f"must be a multiple of record_dt = {self.record_dt}")

    @property
    def segments(self) -> int:
        """Number of simulate calls per chunk (1 when compact_every = 0)."""
        return round(self.horizon / self.compact_every) if self.compact_every > 0 else 1

    @property
    def record_times(self) -> np.ndarray:
        steps = max(1, round(self.horizon / self.record_dt))
        return np.linspace(0.0, self.horizon, steps + 1)


def _divides(step: float, total: float) -> bool:
    ratio = total / step
    return abs(ratio - round(ratio)) < 1e-9 * max(1.0, ratio)


def _validate(config: StudyConfig) -> None:
    require(FIELDS[config.field.kind].space == "sphere", "field.kind",
            f"clustering-time detects clustering of tokens on the sphere; {config.field.kind!r} "
            "lives on angles (use 'sa' or 'usa' with d = 2)")
    p, integrator = config.params, config.integrator
    if p.compact_every > 0 and integrator.fixed_step:
        require(_divides(integrator.dt, p.compact_every), "clustering.compact_every",
                f"must be a multiple of integrator.dt = {integrator.dt}")


def _variables(config: StudyConfig) -> dict[str, Variable]:
    out = {
        "clustering_time": Variable((), "float64", {
            "long_name": "first time all pairs have <x_i, x_j> >= 1 - delta",
            "censoring": "NaN: not clustered by the horizon (right-censored)"}),
        "steps": Variable((), "int64", {"long_name": "accepted integrator steps"}),
    }
    if config.params.fractions:
        out["fraction_time"] = Variable(("fraction",), "float64", {
            "long_name": "first recorded time a fraction >= f of the pairs is within 1 - delta",
            "censoring": "NaN: not reached by the horizon"})
    return out


def _coords(config: StudyConfig) -> dict[str, Any]:
    return {"fraction": np.asarray(config.params.fractions, dtype=float)}


def _compute(config: StudyConfig, members: Members) -> dict[str, np.ndarray]:
    """Clustering times of one chunk, in one ``simulate`` call per segment of
    ``compact_every`` (module docstring); members that clustered leave the batch."""
    p, integrator = config.params, config.integrator
    segments = p.segments
    edges = np.linspace(0.0, p.horizon, segments + 1)
    record = p.record_times if p.fractions else edges
    overlap = integrator.dt if integrator.fixed_step else 0.0
    fraction = fraction_clustered_pairs(p.delta) if p.fractions else None
    batch = members.batch
    out_time = np.full(batch, np.nan)
    steps = np.zeros(batch, dtype=np.int64)
    fractions = np.full((batch, record.size), np.nan)
    active = np.arange(batch)
    x = initial_states(config, members)
    for k, (a, b) in enumerate(itertools.pairwise(edges)):
        k0, k1 = np.searchsorted(record, [a - 1e-9, b + 1e-9])
        start = a - overlap if k > 0 else a
        restart = b - overlap
        times = np.unique(np.concatenate([[start, restart], record[k0:k1]]))
        if segments == 1:
            observe = fraction or _nothing
        else:
            observe = _with_state(fraction)
        traj = simulate(build_field(config, members.subset(active)), x, times,
                        stop_when_clustered=p.delta, observe=observe,
                        **integrator.simulate_kwargs())
        out_time[active] = traj.cluster_time
        repeated = 1 if k > 0 and overlap > 0 else 0  # the step start -> a, done twice
        steps[active] += np.asarray(traj.accepted_steps, dtype=np.int64) - repeated
        if fraction is not None:
            at = np.searchsorted(times, record[k0:k1] - 1e-9)
            values = host(traj.values[:, :, 0] if segments > 1 else traj.values)
            fractions[active, k0:k1] = values[:, at]
        still = np.flatnonzero(np.isnan(traj.cluster_time))
        if still.size == 0 or k == segments - 1:
            break
        state = traj.values[:, int(np.searchsorted(times, restart - 1e-9)),
                            1 if fraction is not None else 0:]
        x = _rows(state, still).reshape(still.size, *x.shape[1:])
        active = active[still]
    out = {"clustering_time": out_time, "steps": steps}
    if p.fractions:
        out["fraction_time"] = np.stack(
            [first_time(record, fractions >= f - 1e-12) for f in p.fractions], axis=-1)
    return out


def _with_state(fraction: Any) -> Any:
    """Observable: [fraction of clustered pairs (if asked), x flattened], (batch, [1 +] n d).

    Not marked rotation invariant, so the reduced solver hands it the states in R^d;
    its value at a segment's last time is the state the next segment starts from.
    """
    def observable(x: Any) -> Any:
        xp = namespace(x)
        flat = xp.reshape(x, (x.shape[0], -1))
        if fraction is None:
            return flat
        return xp.concat([xp.reshape(fraction(x), (-1, 1)), flat], axis=1)

    return observable


def _rows(a: Any, index: np.ndarray) -> Any:
    """a[index] along the first axis, on a's backend."""
    if is_torch(a):
        import torch

        return a[torch.as_tensor(index, device=a.device)]
    return a[index]


def _nothing(x: Any) -> Any:
    """Records nothing of the states (one zero per member), so no (batch, T, n, d) is kept."""
    return namespace(x).zeros(x.shape[:1], dtype=x.dtype)


_nothing.rotation_invariant = True


def _summaries(times: np.ndarray, horizon: float, p: ClusteringParams) -> np.ndarray:
    """(..., 4): median, low, high, censored fraction over the first axis (seeds)."""
    flat = times.reshape(times.shape[0], -1)
    out = np.empty((flat.shape[1], 4))
    for k in range(flat.shape[1]):
        s = summarize_times(flat[:, k], horizon, p.level, p.band)
        out[k] = (s.median, s.low, s.high, s.censored_fraction)
    return out.reshape(*times.shape[1:], 4)


def _summarize(ds: Any, config: StudyConfig) -> Any:
    import xarray as xr

    p = config.params
    grid = config.grid
    dims = ("n", "d", "beta")
    stats = _summaries(ds["clustering_time"].values, p.horizon, p)
    theory = equiangular_crossing(config, p.delta)
    out = xr.Dataset(
        {
            "median_time": (dims, stats[..., 0]),
            "median_low": (dims, stats[..., 1]),
            "median_high": (dims, stats[..., 2]),
            "censored_fraction": (dims, stats[..., 3]),
            "theory_time": (dims, theory),
        },
        coords={"n": list(grid.n), "d": list(grid.d), "beta": list(grid.beta)},
    )
    out["median_time"].attrs["long_name"] = "Kaplan-Meier median clustering time"
    out["median_low"].attrs["long_name"] = (f"{p.level:g} Brookmeyer-Crowley lower bound "
                                            f"({p.band} band)")
    out["median_high"].attrs["long_name"] = "upper bound (inf: beyond the horizon)"
    out["theory_time"].attrs["long_name"] = "equiangular crossing time t*(beta) (d >= n only)"
    if p.fractions:
        fstats = _summaries(ds["fraction_time"].values, p.horizon, p)
        fdims = (*dims, "fraction")
        out["fraction_median_time"] = (fdims, fstats[..., 0])
        out["fraction_median_low"] = (fdims, fstats[..., 1])
        out["fraction_median_high"] = (fdims, fstats[..., 2])
        out["fraction_censored"] = (fdims, fstats[..., 3])
        out = out.assign_coords(fraction=list(p.fractions))
    _add_fits(out, grid)
    return out


def _add_fits(out: Any, grid: Any) -> None:
    """log(median) ~ log n per (d, beta) and ~ beta per (n, d), data and theory side by side."""
    med, th = out["median_time"].values, out["theory_time"].values
    nb = (len(grid.d), len(grid.beta))
    fit_n = {k: np.full(nb, np.nan) for k in ("slope", "slope_se", "intercept", "theory")}
    for j in range(nb[0]):
        for b in range(nb[1]):
            f = power_law_fit(grid.n, med[:, j, b])
            fit_n["slope"][j, b], fit_n["slope_se"][j, b] = f.slope, f.slope_se
            fit_n["intercept"][j, b] = f.intercept
            fit_n["theory"][j, b] = power_law_fit(grid.n, th[:, j, b]).slope
    nd = (len(grid.n), len(grid.d))
    fit_b = {k: np.full(nd, np.nan) for k in ("slope", "slope_se", "intercept", "theory")}
    for i in range(nd[0]):
        for j in range(nd[1]):
            f = exponential_fit(grid.beta, med[i, j])
            fit_b["slope"][i, j], fit_b["slope_se"][i, j] = f.slope, f.slope_se
            fit_b["intercept"][i, j] = f.intercept
            fit_b["theory"][i, j] = exponential_fit(grid.beta, th[i, j]).slope
    for key, values in fit_n.items():
        name = "theory_fit_n_slope" if key == "theory" else f"fit_n_{key}"
        out[name] = (("d", "beta"), values)
    for key, values in fit_b.items():
        name = "theory_fit_beta_slope" if key == "theory" else f"fit_beta_{key}"
        out[name] = (("n", "d"), values)
    out["fit_n_slope"].attrs["long_name"] = "least-squares slope of log median time vs log n"
    out["fit_beta_slope"].attrs["long_name"] = "least-squares slope of log median time vs beta"


def _plot(ds: Any, config: StudyConfig, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    summary = ds
    grid, p = config.grid, config.params
    paths: list[Path] = []
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.4, 6.4), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    beta = np.asarray(grid.beta)
    for i, n in enumerate(grid.n):
        for j, d in enumerate(grid.d):
            med = summary["median_time"].values[i, j]
            low = summary["median_low"].values[i, j]
            high = np.minimum(summary["median_high"].values[i, j], p.horizon)
            line, = ax.plot(beta, med, "o-", ms=3, label=f"n={n}, d={d}")
            ax.fill_between(beta, low, high, color=line.get_color(), alpha=0.2, lw=0)
            th = summary["theory_time"].values[i, j]
            if np.isfinite(th).any():
                ax.plot(beta, th, "--", color=line.get_color(), lw=1,
                        label=f"equiangular t*, n={n}")
            ax2.plot(beta, summary["censored_fraction"].values[i, j], "o-", ms=3,
                     color=line.get_color())
    ax.axhline(p.horizon, color="0.5", lw=0.8, ls=":")
    ax.set_ylabel(f"median time to 1 - δ (δ = {p.delta:g})")
    ax.set_title(f"clustering time ({label(config)}); band: {p.level:g} CI", fontsize=9)
    ax.legend(fontsize=7)
    ax2.set_xlabel("β")
    ax2.set_ylabel("censored")
    ax2.set_ylim(-0.05, 1.05)
    paths += save_figure(fig, out_dir, "clustering_time_median")

    panels = [(i, j) for i in range(len(grid.n)) for j in range(len(grid.d))][:6]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0, 1, len(beta)))
    times = ds["clustering_time"].values
    for ax, (i, j) in zip(axes[0], panels, strict=False):
        for b in range(len(beta)):
            km = censored_times(times[:, i, j, b], p.horizon)
            ts = np.concatenate([[0.0], km.times, [p.horizon]])
            ax.step(ts, km(ts), where="post", color=colors[b], lw=1,
                    label=f"β={beta[b]:g}" if len(beta) <= 8 else None)
        ax.set_title(f"Kaplan-Meier survival, n={grid.n[i]}, d={grid.d[j]}", fontsize=9)
        ax.set_xlabel("t")
        ax.set_ylim(-0.02, 1.02)
        if len(beta) <= 8:
            ax.legend(fontsize=7)
    axes[0][0].set_ylabel("P(not clustered by t)")
    paths += save_figure(fig, out_dir, "clustering_time_survival")

    if len(grid.n) > 1:
        fig, ax = plt.subplots(figsize=(5.2, 4))
        for j, d in enumerate(grid.d):
            for b in range(len(beta))[:6]:
                ax.loglog(grid.n, summary["median_time"].values[:, j, b], "o-", ms=3,
                          label=f"d={d}, β={beta[b]:g}, slope "
                          f"{summary['fit_n_slope'].values[j, b]:.2f}")
        ax.set_xlabel("n")
        ax.set_ylabel("median clustering time")
        ax.legend(fontsize=7)
        paths += save_figure(fig, out_dir, "clustering_time_vs_n")
    return paths


KIND = StudyKind(
    section="clustering",
    params=ClusteringParams,
    variables=_variables,
    coords=_coords,
    compute=_compute,
    summarize=_summarize,
    plot=_plot,
    validate=_validate,
)
