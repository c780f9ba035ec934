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
from typing import Annotated, Any, Literal

import numpy as np

from attention.array_api import is_torch, namespace, to_numpy
from dynamics import first_time, fraction_clustered_pairs, simulate
from experiments.chunks import initial_states
from experiments.fields import Members, build_field
from experiments.registry import FIELDS
from experiments.schema import Check, InUnitInterval, Positive, StudyConfig, require
from experiments.statistics import (
    censored_times,
    exponential_fit,
    power_law_fit,
    summarize_over_seeds,
)
from experiments.studies import StudyKind, Variable
from experiments.studies.common import equiangular_crossing, label, save_figure

CompactEvery = Annotated[float, Check(lambda v: v >= 0, "must be >= 0 (0: never), got {}")]


@dataclass(frozen=True)
class ClusteringParams:
    """[clustering]: threshold delta, horizon T, pair fractions, output spacing, CI options."""

    horizon: Positive
    delta: InUnitInterval = 1e-3
    fractions: tuple[float, ...] = ()
    record_dt: Positive = 0.1
    compact_every: CompactEvery = 0.0
    level: InUnitInterval = 0.95
    band: Literal["linear", "log-log"] = "linear"

    def __post_init__(self) -> None:
        require(all(0 < f <= 1 for f in self.fractions), "clustering.fractions",
                f"each fraction must lie in (0, 1], got {self.fractions}")
        require(len(set(self.fractions)) == len(self.fractions), "clustering.fractions",
                f"has repeated values {self.fractions}")
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
            values = to_numpy(traj.values[:, :, 0] if segments > 1 else traj.values)
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


def _summarize(ds: Any, config: StudyConfig) -> Any:
    import xarray as xr

    p, grid = config.params, config.grid
    dims = ("n", "d", "beta")
    stats = summarize_over_seeds(ds["clustering_time"].values, p.horizon, p.level, p.band)
    names = ("median_time", "median_low", "median_high", "censored_fraction")
    out = xr.Dataset(
        {**{name: (dims, stats[..., k]) for k, name in enumerate(names)},
         "theory_time": (dims, equiangular_crossing(config, p.delta))},
        coords={"n": list(grid.n), "d": list(grid.d), "beta": list(grid.beta)},
    )
    out["median_time"].attrs["long_name"] = "Kaplan-Meier median clustering time"
    out["median_low"].attrs["long_name"] = (f"{p.level:g} Brookmeyer-Crowley lower bound "
                                            f"({p.band} band)")
    out["median_high"].attrs["long_name"] = "upper bound (inf: beyond the horizon)"
    out["theory_time"].attrs["long_name"] = "equiangular crossing time t*(beta) (d >= n only)"
    if p.fractions:
        fstats = summarize_over_seeds(ds["fraction_time"].values, p.horizon, p.level, p.band)
        names = ("fraction_median_time", "fraction_median_low", "fraction_median_high",
                 "fraction_censored")
        for k, name in enumerate(names):
            out[name] = ((*dims, "fraction"), fstats[..., k])
        out = out.assign_coords(fraction=list(p.fractions))
    for axis, fit, x, kept in ((0, power_law_fit, grid.n, ("d", "beta")),
                               (2, exponential_fit, grid.beta, ("n", "d"))):
        for name, values in _fits(out, axis, fit, x).items():
            out[name] = (kept, values)
    out["fit_n_slope"].attrs["long_name"] = "least-squares slope of log median time vs log n"
    out["fit_beta_slope"].attrs["long_name"] = "least-squares slope of log median time vs beta"
    return out


def _fits(out: Any, axis: int, fit: Any, x: Any) -> dict[str, np.ndarray]:
    """``fit`` of the median time (and of the theory's) against the grid ``axis`` (0: n,
    log-log; 2: beta, log-linear) at every point of the other two."""
    median = np.moveaxis(out["median_time"].values, axis, -1)
    theory = np.moveaxis(out["theory_time"].values, axis, -1)
    along = ("n", "d", "beta")[axis]
    keys = (f"fit_{along}_slope", f"fit_{along}_slope_se", f"fit_{along}_intercept",
            f"theory_fit_{along}_slope")
    values = {key: np.full(median.shape[:-1], np.nan) for key in keys}
    for index in np.ndindex(median.shape[:-1]):
        f = fit(x, median[index])
        for key, value in zip(keys, (f.slope, f.slope_se, f.intercept,
                                     fit(x, theory[index]).slope), strict=True):
            values[key][index] = value
    return values


def _plot(ds: Any, config: StudyConfig, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    grid, p = config.grid, config.params
    paths: list[Path] = []
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.4, 6.4), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    beta = np.asarray(grid.beta)
    for i, n in enumerate(grid.n):
        for j, d in enumerate(grid.d):
            med = ds["median_time"].values[i, j]
            low = ds["median_low"].values[i, j]
            high = np.minimum(ds["median_high"].values[i, j], p.horizon)
            line, = ax.plot(beta, med, "o-", ms=3, label=f"n={n}, d={d}")
            ax.fill_between(beta, low, high, color=line.get_color(), alpha=0.2, lw=0)
            th = ds["theory_time"].values[i, j]
            if np.isfinite(th).any():
                ax.plot(beta, th, "--", color=line.get_color(), lw=1,
                        label=f"equiangular t*, n={n}")
            ax2.plot(beta, ds["censored_fraction"].values[i, j], "o-", ms=3,
                     color=line.get_color())
    # the y-axis fits the medians, their bands and the theory; the horizon is drawn only
    # where the data come near it (else it would squash the bands)
    shown = [ds[v].values for v in ("median_time", "median_low", "theory_time")]
    shown.append(np.minimum(ds["median_high"].values, p.horizon))
    finite = np.concatenate([np.ravel(v)[np.isfinite(np.ravel(v))] for v in shown])
    top = min(1.12 * float(finite.max()), 1.05 * p.horizon) if finite.size else p.horizon
    horizon_note = ""
    if top >= 0.8 * p.horizon:
        ax.axhline(p.horizon, color="0.5", lw=0.8, ls=":", label=f"horizon T = {p.horizon:g}")
        top = 1.05 * p.horizon
    else:
        horizon_note = f"; horizon T = {p.horizon:g} off the plot"
    ax.set_ylim(0.0, top)
    ax.set_ylabel(f"median time to 1 - δ (δ = {p.delta:g})")
    ax.set_title(f"clustering time ({label(config)})\nband: {p.level:g} confidence interval of "
                 f"the median{horizon_note}", fontsize=9)
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
                ax.loglog(grid.n, ds["median_time"].values[:, j, b], "o-", ms=3,
                          label=f"d={d}, β={beta[b]:g}, slope "
                          f"{ds['fit_n_slope'].values[j, b]:.2f}")
        ax.set_xlabel("n")
        ax.set_ylabel("median clustering time")
        ax.legend(fontsize=7)
        paths += save_figure(fig, out_dir, "clustering_time_vs_n")
    return paths


KIND = StudyKind("clustering", ClusteringParams,
                 variables=_variables, compute=_compute, summarize=_summarize, plot=_plot,
                 coords=_coords, validate=_validate)
