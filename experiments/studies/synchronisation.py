"""``synchronisation``: the fraction of random starts that end in one point, versus beta.

On the circle, SA and USA synchronise from almost every start for every beta >= -0.16, and
not for beta < -2/3, where three balanced clusters are a stable equilibrium
(Polyanskiy-Rigollet-Yao, arXiv 2507.22857; ``dynamics.meanfield.synchronisation``). On
S^{d-1}, d >= 3, every beta >= 0 synchronises (Thm 6.1). This study measures it: each
member (seed, n, d, beta) runs from its uniform random start to the horizon T, and its
final state is stored as

* ``diameter``: the largest geodesic distance between two tokens;
* ``speed``: the largest token speed of the field there;
* ``order``: |(1/n) sum_i x_i|.

The summary sorts the starts into four disjoint outcomes, per (n, d, beta):
``synchronised`` (diameter < sync.tolerance); ``converging`` (not yet, but diameter < pi/2,
which certifies synchronisation: all tokens are in the open hemisphere around one of them,
and the cone collapse of Lemma 6.4 needs only positive weights and V = I, so it holds for
every beta); ``stopped`` (otherwise, and speed < sync.stationary: a non-synchronised
equilibrium, such as the three clusters); ``undecided`` (still moving at T: metastable, or
T too short). The headline is ``synchronising`` = synchronised + converging, the fraction of
starts proven to end in one point, with a Clopper-Pearson 95% interval. The theory stored
beside it: the three-cluster eigenvalue (1/2 + 3 beta/4) e^{-beta/2} (stable iff < 0) and
the proven thresholds. ``plot`` draws the synchronisation map.

sync.stationary must sit above the integrator's accuracy floor: a final state known to
rtol has a speed error of about rtol times the field's Lipschitz constant (e^{|beta|} for
USA), 1e-7 at rtol = 1e-8 and beta = -3.

The certificate (Lemma 6.4) assumes V = I, so the study runs the fields with identity
weights: ``circle-sa``, ``circle-usa`` (angles, d = 2), ``sa`` and ``usa`` (any d).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from dynamics.meanfield import synchronisation_outcome
from dynamics.meanfield.synchronisation import (
    CONE_DIAMETER,
    FAILING_BETA,
    SYNCHRONISING_BETA,
    three_cluster_eigenvalue,
)
from experiments.fields import Members, build_field
from experiments.schema import Check, ConfigError, Positive, StudyConfig, require
from experiments.studies import StudyKind, Variable
from experiments.studies.common import label, save_figure, simulate_members

FIELD_KINDS = ("circle-sa", "circle-usa", "sa", "usa")
LEVEL = 0.95


Tolerance = Annotated[float, Check(lambda v: 0 < v < np.pi / 2, "must lie in (0, pi/2) (a smaller "
                                   "diameter certifies synchronisation), got {}")]


@dataclass(frozen=True)
class SyncParams:
    """[sync]: the horizon T, the diameter below which a start counts as synchronised and
    the speed below which a non-synchronised final state counts as stopped."""

    horizon: Positive
    tolerance: Tolerance = 1e-3
    stationary: Positive = 1e-5


def _validate(config: StudyConfig) -> None:
    if config.field.kind not in FIELD_KINDS:
        raise ConfigError(
            f"field.kind: the synchronisation study needs identity weights (V = I, Lemma 6.4); "
            f"use one of {', '.join(FIELD_KINDS)}, not {config.field.kind!r}")
    require(config.initial.kind in ("uniform", "uniform-angles"), "initial.kind",
            f"synchronisation is measured from uniform random starts, got "
            f"{config.initial.kind!r}")
    require(min(config.grid.n) >= 2, "grid.n", f"needs n >= 2 tokens, got {config.grid.n}")


def _variables(config: StudyConfig) -> dict[str, Variable]:
    return {
        "diameter": Variable((), "float64", {
            "long_name": "largest geodesic distance between two tokens at the horizon"}),
        "speed": Variable((), "float64", {
            "long_name": "largest token speed of the field at the horizon"}),
        "order": Variable((), "float64", {
            "long_name": "order parameter |(1/n) sum_i x_i| at the horizon"}),
    }


def _compute(config: StudyConfig, members: Members) -> dict[str, np.ndarray]:
    horizon = config.params.horizon
    traj = simulate_members(config, members, [0.0, horizon])
    return synchronisation_outcome(build_field(config, members), traj.final, horizon)


def outcome_masks(diameter: np.ndarray, speed: np.ndarray, params: SyncParams
                  ) -> dict[str, np.ndarray]:
    """The four disjoint outcomes (module docstring) as boolean arrays of the inputs' shape."""
    synchronised = diameter < params.tolerance
    converging = ~synchronised & (diameter < CONE_DIAMETER)
    stopped = (diameter >= CONE_DIAMETER) & (speed < params.stationary)
    undecided = ~(synchronised | converging | stopped)
    return {"synchronised": synchronised, "converging": converging, "stopped": stopped,
            "undecided": undecided}


def clopper_pearson(successes: np.ndarray, trials: int, level: float = LEVEL
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial interval for a proportion: (lower, upper), elementwise."""
    from scipy.stats import beta

    k = np.asarray(successes, dtype=float)
    alpha = 1 - level
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, beta.ppf(alpha / 2, k, trials - k + 1), 0.0)
        high = np.where(k < trials, beta.ppf(1 - alpha / 2, k + 1, trials - k), 1.0)
    return low, high


def _summarize(ds: Any, config: StudyConfig) -> Any:
    import xarray as xr

    masks = outcome_masks(ds["diameter"].values, ds["speed"].values, config.params)
    dims = ("n", "d", "beta")
    trials = config.seeds.count
    data: dict[str, Any] = {f"{name}_fraction": (dims, mask.mean(axis=0),
                                                 {"long_name": f"fraction of starts: {name}"})
                            for name, mask in masks.items()}
    synchronising = masks["synchronised"] | masks["converging"]
    low, high = clopper_pearson(synchronising.sum(axis=0), trials)
    data["synchronising_fraction"] = (dims, synchronising.mean(axis=0))
    data["synchronising_low"] = (dims, low)
    data["synchronising_high"] = (dims, high)
    beta = np.asarray(config.grid.beta, dtype=float)
    data["three_cluster_eigenvalue"] = (("beta",), three_cluster_eigenvalue(beta))
    data["proven_synchronising"] = (("beta",), beta >= SYNCHRONISING_BETA)
    data["proven_failing"] = (("beta",), beta < FAILING_BETA)
    out = xr.Dataset(data)
    out["synchronising_fraction"].attrs["long_name"] = (
        "fraction of starts proven to end in one point (diameter < pi/2 at T, Lemma 6.4)")
    out["synchronising_low"].attrs["long_name"] = f"Clopper-Pearson {LEVEL:.0%} lower bound"
    out["synchronising_high"].attrs["long_name"] = f"Clopper-Pearson {LEVEL:.0%} upper bound"
    out["three_cluster_eigenvalue"].attrs["long_name"] = (
        "circle: inter-cluster eigenvalue (1/2 + 3 beta/4) e^(-beta/2) of three balanced "
        "clusters (stable iff < 0)")
    out["proven_synchronising"].attrs["long_name"] = "circle: beta >= -0.16 (2507.22857)"
    out["proven_failing"].attrs["long_name"] = "circle: beta < -2/3 (2507.22857)"
    return out


def draw_fractions(ax: Any, ds: Any, config: StudyConfig) -> None:
    """Synchronising (with its interval) and stopped fractions against beta, one colour per
    (n, d); on the circle the proven regions are shaded and the thresholds marked."""
    grid = config.grid
    order = np.argsort(grid.beta)
    beta = np.asarray(grid.beta, dtype=float)[order]
    if 2 in grid.d:
        ax.axvspan(SYNCHRONISING_BETA, max(beta.max(), SYNCHRONISING_BETA), color="#d5ecd4",
                   label="proven: synchronises (d = 2)")
        ax.axvspan(min(beta.min(), FAILING_BETA), FAILING_BETA, color="#f6d6d2",
                   label="proven: some starts do not (d = 2)")
    for i, n in enumerate(grid.n):
        for j, d in enumerate(grid.d):
            sync = ds["synchronising_fraction"].values[i, j, order]
            (line,) = ax.plot(beta, sync, "o-", ms=3, label=f"synchronise, n={n}, d={d}")
            ax.fill_between(beta, ds["synchronising_low"].values[i, j, order],
                            ds["synchronising_high"].values[i, j, order],
                            color=line.get_color(), alpha=0.2, lw=0)
            ax.plot(beta, ds["stopped_fraction"].values[i, j, order], "x--", ms=4,
                    color=line.get_color(), lw=0.8, label=f"stopped elsewhere, n={n}, d={d}")
    ax.set_xlim(beta.min(), beta.max())
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("β")
    ax.set_ylabel(f"fraction of {config.seeds.count} random starts")
    ax.legend(fontsize=6, loc="center right")


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres: midpoints inside, half a step beyond the ends."""
    if centres.size == 1:
        return centres + np.array([-0.5, 0.5])
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def _plot(ds: Any, config: StudyConfig, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    grid, p = config.grid, config.params
    order = np.argsort(grid.beta)
    beta = np.asarray(grid.beta, dtype=float)[order]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), layout="constrained")
    draw_fractions(axes[0], ds, config)
    axes[0].set_title(f"T = {p.horizon:g}; synchronise: diameter < π/2 at T (Lemma 6.4)",
                      fontsize=9)

    rows = [(i, j) for i in range(len(grid.n)) for j in range(len(grid.d))]
    fraction = np.stack([ds["synchronising_fraction"].values[i, j, order] for i, j in rows])
    mesh = axes[1].pcolormesh(_edges(beta), np.arange(len(rows) + 1) - 0.5, fraction,
                              cmap="viridis", vmin=0, vmax=1)
    axes[1].set_yticks(np.arange(len(rows)),
                       [f"n={grid.n[i]}, d={grid.d[j]}" for i, j in rows])
    axes[1].set_xlabel("β")
    axes[1].set_title("synchronisation map: fraction of starts that synchronise", fontsize=9)
    fig.colorbar(mesh, ax=axes[1])

    fine = np.linspace(beta.min(), beta.max(), 400)
    axes[2].plot(fine, three_cluster_eigenvalue(fine), "k")
    axes[2].axhline(0, color="0.5", lw=0.5)
    axes[2].axvline(-2 / 3, color="k", ls=":", lw=0.8)
    axes[2].set_xlabel("β")
    axes[2].set_ylabel("eigenvalue (per particle)")
    axes[2].set_title("circle, three balanced clusters: (1/2 + 3β/4)e^(−β/2), stable iff < 0",
                      fontsize=9)
    fig.suptitle(f"synchronisation from random starts ({label(config)})", fontsize=10)
    return save_figure(fig, out_dir, "synchronisation_map")


KIND = StudyKind("sync", SyncParams,
                 variables=_variables, compute=_compute, summarize=_summarize, plot=_plot,
                 validate=_validate)
