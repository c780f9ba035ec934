"""F4 - the d = 2 phase diagram and metastable clusters on the circle at beta = 4 and 9 (Fig. 4).

SA with Q = K = V = I on S^1, n = 32 tokens from a uniform start, h = 0.1, snapshots at
t = 0, 18, 30 (the panels' times; the caption says 2.5, 18, 30: paper.md erratum 3).
The caption's claim: 2 clusters persist at beta = 4 and 3 at beta = 9, long before the
single cluster that Thm 5.1/2507.22857 guarantee as t -> infinity (metastability).

One trajectory is drawn per beta (the first seed); the claim is checked on many seeds:
the cluster count at t = 18 and t = 30 (connected components of {<x_i, x_j> >= 1 - delta},
delta = 1e-3, paper section 11 item 14) is reported as a distribution.

The left panel is the d = 2 panel of F3 (the same stored study: made by F3 or here,
and reused by the other), with boxes on the rows beta = 4 and 9. Along each row its
P(t = 30, beta) is the mean fraction of pairs inside one cluster; the circle runs above
measure the same fraction on their own seeds, and the two estimates must agree within
sampling error (a two-sample z-score below 3).
"""

from __future__ import annotations

from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from dynamics import (
    SA,
    CircleSA,
    angles_to_points,
    cluster_count,
    fraction_clustered_pairs,
    points_to_angles,
    uniform_sphere,
)
from paper_repro.f3_phase_diagrams import DIMS, f3_grid, f3_study
from paper_repro.phase_studies import store_path
from paper_repro.plotting import BLUE, phase_panel, quick_note, token_panel
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure
from paper_repro.schemes import describe, integrate, time_grid

N, T, DELTA = 32, 30.0, 1e-3
BETAS = (9.0, 4.0)  # top row, bottom row, as in the paper
SNAPSHOTS = (0.0, 18.0, 30.0)
CAPTION = {4.0: 2, 9.0: 3}
Z_BOUND = 3.0  # the two estimates of the clustered-pair fraction agree within sampling error


def _flow(beta: float, x0: np.ndarray, times: np.ndarray, scheme: str) -> np.ndarray:
    """States (batch, len(times), n, 2): the authors' Cartesian scheme, or the exact angle ODE."""
    if scheme == "faithful":
        return np.asarray(integrate(SA(beta), x0, times, scheme).states)
    theta = integrate(CircleSA(beta), points_to_angles(x0), times, scheme).states
    return np.asarray(angles_to_points(theta))


def cluster_counts(beta: float, x0: np.ndarray, scheme: str) -> dict[float, np.ndarray]:
    """Cluster counts per member at t = 18 and t = 30, numpy (batch,) each."""
    return snapshot_statistics(beta, x0, scheme)[0]


def snapshot_statistics(beta: float, x0: np.ndarray,
                        scheme: str) -> tuple[dict[float, np.ndarray], np.ndarray]:
    """Cluster counts per member at t = 18 and 30, and the fraction of clustered pairs per
    member at t = 30 (the phase-diagram statistic), numpy (batch,) arrays."""
    states = _flow(beta, x0, np.array(SNAPSHOTS), scheme)
    counts = {t: cluster_count(states[:, k], DELTA) for k, t in enumerate(SNAPSHOTS) if t > 0}
    return counts, np.asarray(fraction_clustered_pairs(DELTA)(states[:, -1]))


def z_score(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample z-score of the means of a and b (standard errors from the samples)."""
    se = np.sqrt(np.var(a, ddof=1) / a.size + np.var(b, ddof=1) / b.size)
    gap = abs(float(np.mean(a) - np.mean(b)))
    return gap / se if se > 0 else (0.0 if gap == 0 else float("inf"))


def phase_row(study, beta: float) -> tuple[np.ndarray, float]:
    """Per-seed fractions of clustered pairs at t = 30 on the grid row nearest ``beta`` of
    the d = 2 panel of the F3 study, and that row's beta."""
    k = int(np.argmin(np.abs(study["beta"].values - beta)))
    pairs = study["clustered_pairs"].values[:, 0, DIMS.index(2), k, -1]
    return pairs / (N * (N - 1) / 2), float(study["beta"].values[k])


def _left_panel(ax, ds):
    times, betas = ds["phase_time"].values, ds["phase_beta"].values
    mesh = phase_panel(ax, times, betas, ds["phase_probability"].values, title="$d = 2$ (F3a)")
    half = 0.5 * (betas[1] - betas[0])
    for beta in BETAS:
        ax.add_patch(Rectangle((times[0], beta - half), times[-1] - times[0], 2 * half,
                               fill=False, edgecolor="k", linewidth=1.2))
        ax.text(times[-1] - 0.5, beta - half - 0.05, f"$\\beta = {beta:g}$", ha="right",
                va="top", fontsize=7)
    ax.figure.colorbar(mesh, ax=ax, location="bottom", shrink=0.9, pad=0.12,
                       label=r"$P(\langle x_i, x_j\rangle \geq 1 - \delta)$")
    return mesh


def compute(request: FigureRequest):
    """The d = 2 panel of the F3 study (and its per-seed rows at beta = 9, 4), the drawn
    trajectory per beta, and cluster counts and clustered-pair fractions over many seeds."""
    seeds = request.pick(256, 1024, tiny=32)
    x0 = uniform_sphere(request.seed, seeds, N, 2)
    times = time_grid(T)
    study = f3_study(request, request.scheme)
    rows = [phase_row(study, beta) for beta in BETAS]
    stats = [snapshot_statistics(beta, x0, request.scheme) for beta in BETAS]
    return dataset({
        "x": (("beta", "time", "token", "xy"),
              [_flow(beta, x0[:1], times, request.scheme)[0] for beta in BETAS],
              {"long_name": "drawn trajectory on S^1"}),
        "counts": (("beta", "snapshot", "seed"), [[c[t] for t in SNAPSHOTS[1:]] for c, _ in stats],
                   {"long_name": f"clusters (delta = {DELTA:g})"}),
        "pair_fraction": (("beta", "seed"), [f for _, f in stats],
                          {"long_name": "fraction of clustered pairs at t = 30"}),
        "phase_probability": (("phase_beta", "phase_time"),
                              study["probability"].values[0, DIMS.index(2)]),
        "phase_row": (("beta", "phase_seed"), [r for r, _ in rows]),
        "phase_row_beta": (("beta",), [b for _, b in rows]),
    }, {"beta": list(BETAS), "time": times, "snapshot": list(SNAPSHOTS[1:]),
        "phase_beta": study["beta"].values, "phase_time": study["time"].values},
        n=N, T=T, h=0.1, delta=DELTA, betas=BETAS, snapshots=SNAPSHOTS, seeds=seeds,
        integrator=describe(request.scheme), phase_diagram={
            "store": store_path(request, f"F3-{request.scheme}").name,
            "seeds": f3_grid(request).seeds}, phase_grid=f3_grid(request).describe())


def _distribution(counts: np.ndarray) -> dict[int, int]:
    return {int(k): int(v) for k, v in sorted(Counter(counts.tolist()).items())}


@register("F4", "d = 2 phase diagram and metastable clusters on the circle, beta = 4 and 9",
          compute)
def draw(ds, request: FigureRequest):
    params = parameters(ds)
    seeds, times = params["seeds"], ds["time"].values
    fig = plt.figure(figsize=(14, 5.6))
    grid = fig.add_gridspec(2, 5, width_ratios=(1.5, 1, 1, 1, 1.15), wspace=0.15, hspace=0.4)
    _left_panel(fig.add_subplot(grid[:, 0]), ds)
    data = {"parameters": params,
            "counts": {}, "distribution": {}, "shown": {}, "pair_fraction_at_T": {},
            "phase_diagram": {"times": ds["phase_time"].values, "betas": ds["phase_beta"].values,
                              "probability": np.round(ds["phase_probability"].values, 4)}}
    checks = []
    for row, beta in enumerate(BETAS):
        shown = ds["x"].values[row]
        shown_count = int(cluster_count(shown[-1:], DELTA)[0])
        for col, t in enumerate(SNAPSHOTS):
            k = int(np.searchsorted(times, t))
            title = f"$t = {t:.1f}$" + (f",  $\\beta = {beta:g}$" if col == 0 else "")
            token_panel(fig.add_subplot(grid[row, col + 1]), shown[k], start=shown[0],
                        trail=shown[: k + 1], title=title, size=18)
        counts = dict(zip(SNAPSHOTS[1:], ds["counts"].values[row], strict=True))
        fractions = ds["pair_fraction"].values[row]
        ax = fig.add_subplot(grid[row, 4])
        for t, offset, color in ((18.0, -0.2, "0.6"), (30.0, 0.2, BLUE)):
            dist = _distribution(counts[t])
            ax.bar(np.array(list(dist)) + offset, np.array(list(dist.values())) / seeds,
                   width=0.4, color=color, label=f"$t = {t:g}$")
        ax.axvline(CAPTION[beta], color="k", linestyle=":", linewidth=1)
        observed = np.concatenate([counts[18.0], counts[30.0]])
        ax.set_xticks(np.arange(observed.min(), observed.max() + 1))
        ax.set_xlabel("clusters ($\\delta = 10^{-3}$)", fontsize=8)
        ax.set_ylabel("fraction of seeds", fontsize=8)
        ax.set_title(f"$\\beta = {beta:g}$: clusters over {seeds} seeds "
                     f"(the paper's caption: {CAPTION[beta]})", fontsize=9)
        ax.legend(frameon=False, fontsize=7)
        ax.tick_params(labelsize=7)
        key = f"beta={beta:g}"
        data["counts"][key] = {f"t={t:g}": c for t, c in counts.items()}
        data["distribution"][key] = {f"t={t:g}": _distribution(c) for t, c in counts.items()}
        data["shown"][key] = {"clusters_at_T": shown_count, "angles": points_to_angles(shown)}
        final = counts[30.0]
        mode = int(np.bincount(final).argmax())
        share = float(np.mean(final == CAPTION[beta]))
        checks.append(Check(
            f"F4 beta={beta:g}: modal cluster count at t = 30 over {seeds} seeds", mode,
            CAPTION[beta], "==", f"the caption's; {_distribution(final)} (t = 18: "
            f"{_distribution(counts[18.0])}), {share:.0%} of seeds; drawn seed: {shown_count}"))
        row_fractions = ds["phase_row"].values[row]
        row_beta = float(ds["phase_row_beta"].values[row])
        z = z_score(row_fractions, fractions)
        data["pair_fraction_at_T"][key] = {
            "phase_diagram": float(np.mean(row_fractions)), "phase_diagram_beta": row_beta,
            "circle_runs": float(np.mean(fractions)), "z": z}
        checks.append(Check(
            f"F4 beta={beta:g}: z-score, clustered pairs at t = 30, phase diagram vs circle",
            z, Z_BOUND, "<", f"P = {np.mean(row_fractions):.3f} ({row_fractions.size} seeds, "
            f"row beta = {row_beta:g}), circle runs {np.mean(fractions):.3f} ({seeds} seeds)"))
    fig.suptitle(f"F4 - the $d = 2$ phase diagram and metastable clusters on $S^1$, SA, $n = {N}$ "
                 f"({describe(request.scheme)})", fontsize=10)
    quick_note(fig, request, f"{seeds} seeds per beta (full: 1024); phase diagram: "
               f"{params['phase_grid']} (full: 2048 seeds, 90 betas)")
    return save_figure(fig, request, "F4_circle_trajectories", data, checks), checks
