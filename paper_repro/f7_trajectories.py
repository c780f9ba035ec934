"""F7 - token trajectories on S^2 and S^1, with movies (paper section 5.1, the authors' sphere.py).

SA with Q = K = V = I, n = 64, beta = 1, T = 15, h = 0.1, uniform random start. The
claim shown: tokens collapse to clusters (here one, Thm 6.1 for d = 3), and the
interaction energy E = (1/(2 beta n^2)) sum_ij e^{beta <x_i, x_j>} never decreases along
the flow, reaching its maximum e^beta / (2 beta) at consensus. The movies (GIF) show the
same flows on S^2 (camera sweeping 30 +- 15 degrees in azimuth, as in the authors' movie)
and on S^1.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from dynamics import SA, cluster_count, normalize, theory
from paper_repro.plotting import (
    BLUE,
    frame_indices,
    quick_note,
    relative_angles,
    token_movie,
    token_panel,
    view_towards,
)
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure
from paper_repro.schemes import describe, integrate, time_grid

N, BETA, T = 64, 1.0, 15.0
DELTA = 1e-3
ENERGY_SLACK = -1e-12  # smallest energy increment allowed (rounding)


def trajectories(d: int, request: FigureRequest) -> tuple[np.ndarray, np.ndarray]:
    """(times (T,), states (T, n, d)) of one SA run from a uniform start in S^{d-1}."""
    rng = np.random.default_rng(request.seed + d)
    x0 = normalize(rng.standard_normal((1, N, d)))
    times = time_grid(T)
    return times, np.asarray(integrate(SA(BETA), x0, times, request.scheme).states[0])


def compute(request: FigureRequest):
    """The S^2 and S^1 flows (time, token, dim)."""
    (times, sphere), (_, circle) = trajectories(3, request), trajectories(2, request)
    return dataset({"sphere": (("time", "token", "xyz"), sphere, {"long_name": "tokens on S^2"}),
                    "circle": (("time", "token", "xy"), circle, {"long_name": "tokens on S^1"})},
                   {"time": times}, n=N, beta=BETA, T=T, h=0.1, **{"Q=K=V": "I"},
                   delta=DELTA, integrator=describe(request.scheme))


@register("F7", "trajectories on S^2 and S^1 with movies (n = 64, beta = 1, T = 15)", compute)
def draw(ds, request: FigureRequest):
    times, sphere, circle = ds["time"].values, ds["sphere"].values, ds["circle"].values
    fig = plt.figure(figsize=(10, 4.2))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    token_panel(ax, sphere[-1], start=sphere[0], trail=sphere,
                title=f"$S^2$: SA, $n={N}$, $\\beta={BETA:g}$, $t = 0 \\to {T:g}$")
    view_towards(ax, sphere[-1].mean(axis=0))
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.plot(times, relative_angles(circle), color=BLUE, linewidth=0.6)
    ax2.set_xlabel("$t$ (depth)")
    ax2.set_ylabel(r"$\theta_i(t) - \bar\theta(T)$")
    ax2.set_title("$S^1$: the same flow in angles")
    fig.suptitle(f"F7 - tokens cluster ({describe(request.scheme)})", fontsize=10)
    quick_note(fig, request, "movies at reduced frame rate (every 0.5 time units)")
    energy = np.asarray(theory.interaction_energy(sphere, BETA))
    clusters = {"S2": int(cluster_count(sphere[-1:], DELTA)[0]),
                "S1": int(cluster_count(circle[-1:], DELTA)[0])}
    data = {"parameters": parameters(ds), "clusters_at_T": clusters, "energy_S2": energy,
            "energy_max": np.exp(BETA) / (2 * BETA), "times": times}
    gap = 1 - energy[-1] / data["energy_max"]
    checks = [Check("F7: energy non-decreasing along the S^2 flow: min increment",
                    float(np.diff(energy).min()), ENERGY_SLACK, ">=",
                    f"clusters at t = {T:g}: S^2 {clusters['S2']}, S^1 {clusters['S1']} of {N}; "
                    f"E(T) / (e^beta/(2 beta)) = 1 - {gap:.1e}")]
    files = save_figure(fig, request, "F7_trajectories", data, checks)
    frames = frame_indices(len(times), request.pick(31, len(times), tiny=4))

    def camera(ax, k: int) -> None:
        ax.view_init(elev=10.0, azim=30.0 + 30.0 * (k / (len(times) - 1) - 0.5))

    files.append(token_movie(sphere, lambda k: f"SA on S², β = {BETA:g}, t = {times[k]:.1f}",
                             frames, request, "F7_sphere", figsize=(4, 4), camera=camera))
    files.append(token_movie(circle, lambda k: f"SA on S¹, β = {BETA:g}, t = {times[k]:.1f}",
                             frames, request, "F7_circle"))
    return files, checks
