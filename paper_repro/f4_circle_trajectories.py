"""F4 (right panels) - metastable clusters on the circle at beta = 4 and beta = 9 (paper Fig. 4).

SA with Q = K = V = I on S^1, n = 32 tokens from a uniform start, h = 0.1, snapshots at
t = 0, 18, 30 (the panels' times; the caption says 2.5, 18, 30: paper.md erratum 3).
The caption's claim: 2 clusters persist at beta = 4 and 3 at beta = 9, long before the
single cluster that Thm 5.1/2507.22857 guarantee as t -> infinity (metastability).

One trajectory is drawn per beta (the first seed); the claim is checked on many seeds:
the cluster count at t = 18 and t = 30 (connected components of {<x_i, x_j> >= 1 - delta},
delta = 1e-3, paper section 11 item 14) is reported as a distribution. The left panel of
Fig. 4 (the d = 2 phase diagram) belongs with the phase diagrams (F3).
"""

from __future__ import annotations

from collections import Counter

import matplotlib.pyplot as plt
import numpy as np

from dynamics import SA, CircleSA, angles_to_points, cluster_count, points_to_angles, uniform_sphere
from paper_repro.plotting import BLUE, circle_panel, quick_note
from paper_repro.registry import FigureReport, FigureRequest, register, save_figure
from paper_repro.schemes import describe, integrate, time_grid

N, T, DELTA = 32, 30.0, 1e-3
BETAS = (9.0, 4.0)  # top row, bottom row, as in the paper
SNAPSHOTS = (0.0, 18.0, 30.0)
CAPTION = {4.0: 2, 9.0: 3}


def _flow(beta: float, x0: np.ndarray, times: np.ndarray, scheme: str) -> np.ndarray:
    """States (batch, len(times), n, 2): the authors' Cartesian scheme, or the exact angle ODE."""
    if scheme == "faithful":
        return np.asarray(integrate(SA(beta), x0, times, scheme).states)
    theta = integrate(CircleSA(beta), points_to_angles(x0), times, scheme).states
    return np.asarray(angles_to_points(theta))


def cluster_counts(beta: float, x0: np.ndarray, scheme: str) -> dict[float, np.ndarray]:
    """Cluster counts per member at t = 18 and t = 30, numpy (batch,) each."""
    states = _flow(beta, x0, np.array(SNAPSHOTS), scheme)
    return {t: cluster_count(states[:, k], DELTA) for k, t in enumerate(SNAPSHOTS) if t > 0}


def _distribution(counts: np.ndarray) -> dict[int, int]:
    return {int(k): int(v) for k, v in sorted(Counter(counts.tolist()).items())}


@register("F4", "metastable clusters on the circle, beta = 4 and 9 (n = 32, t = 0, 18, 30)")
def figure_f4(request: FigureRequest) -> FigureReport:
    seeds = request.pick(256, 1024, tiny=32)
    x0 = uniform_sphere(request.seed, seeds, N, 2)
    times = time_grid(T)
    fig = plt.figure(figsize=(11, 5.6))
    grid = fig.add_gridspec(2, 4, width_ratios=(1, 1, 1, 1.15), wspace=0.15, hspace=0.4)
    data = {"parameters": {"n": N, "T": T, "h": 0.1, "delta": DELTA, "betas": BETAS,
                           "snapshots": SNAPSHOTS, "seeds": seeds,
                           "integrator": describe(request.scheme)},
            "counts": {}, "distribution": {}, "shown": {}}
    checks = []
    for row, beta in enumerate(BETAS):
        shown = _flow(beta, x0[:1], times, request.scheme)[0]
        shown_count = int(cluster_count(shown[-1:], DELTA)[0])
        for col, t in enumerate(SNAPSHOTS):
            k = int(np.searchsorted(times, t))
            title = f"$t = {t:.1f}$" + (f",  $\\beta = {beta:g}$" if col == 0 else "")
            circle_panel(fig.add_subplot(grid[row, col]), shown[k], start=shown[0],
                         trail=shown[: k + 1], title=title, size=18)
        counts = cluster_counts(beta, x0, request.scheme)
        ax = fig.add_subplot(grid[row, 3])
        for t, offset, color in ((18.0, -0.2, "0.6"), (30.0, 0.2, BLUE)):
            dist = _distribution(counts[t])
            ax.bar(np.array(list(dist)) + offset, np.array(list(dist.values())) / seeds,
                   width=0.4, color=color, label=f"$t = {t:g}$")
        ax.axvline(CAPTION[beta], color="k", linestyle=":", linewidth=1)
        observed = np.concatenate([counts[18.0], counts[30.0]])
        ax.set_xticks(np.arange(observed.min(), observed.max() + 1))
        ax.set_xlabel("clusters ($\\delta = 10^{-3}$)", fontsize=8)
        ax.set_ylabel("fraction of seeds", fontsize=8)
        ax.set_title(f"$\\beta = {beta:g}$: {seeds} seeds (caption: {CAPTION[beta]})", fontsize=9)
        ax.legend(frameon=False, fontsize=7)
        ax.tick_params(labelsize=7)
        key = f"beta={beta:g}"
        data["counts"][key] = {f"t={t:g}": c for t, c in counts.items()}
        data["distribution"][key] = {f"t={t:g}": _distribution(c) for t, c in counts.items()}
        data["shown"][key] = {"clusters_at_T": shown_count, "angles": points_to_angles(shown)}
        final = counts[30.0]
        mode = int(np.bincount(final).argmax())
        share = float(np.mean(final == CAPTION[beta]))
        checks.append(
            f"F4: beta = {beta:g}: clusters at t = 30 over {seeds} seeds "
            f"{_distribution(final)} (t = 18: {_distribution(counts[18.0])}); mode {mode}, "
            f"caption {CAPTION[beta]}: {'agrees' if mode == CAPTION[beta] else 'DIFFERS'} "
            f"({share:.0%} of seeds); drawn seed: {shown_count}"
        )
    fig.suptitle(f"F4 - metastable clusters on $S^1$, SA, $n = {N}$ "
                 f"({describe(request.scheme)})", fontsize=10)
    quick_note(fig, request, f"{seeds} seeds per beta (full: 1024)")
    files = save_figure(fig, request, "F4_circle_trajectories", data)
    plt.close(fig)
    return FigureReport("F4", files, checks)
