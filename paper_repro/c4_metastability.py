"""C4 - the n = 5 metastability movie of 2410.06833 (the authors' ``kinetic.py``).

SA on the circle, Q = K = V = I, n = 5, beta = 4, T = 400, h = 0.1, from the fixed start
z0 of ``kinetic.py``. Within a few time units the tokens form two clusters (masses 2 and 3)
that then stay apart for hundreds of time units before merging: a metastable state.

Once two tight clusters of masses m_a, m_b sit at angular distance phi, SA moves each
cluster as one token with weights m e^{beta cos}: with w = e^{beta cos phi},

    phi' = -sin(phi) [ m_b w / (m_a e^beta + m_b w) + m_a w / (m_b e^beta + m_a w) ].

The figure integrates this two-cluster ODE from the gap at the moment the two clusters
formed and compares its merge time (cos phi >= 1 - delta) with the simulation. For the
faithful scheme the same reduction holds step by step: the authors' update moves cluster a
by atan2(h p sin phi, 1 + h (1 - p) + h p cos phi), p = m_b w / (m_a e^beta + m_b w).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from scipy.integrate import solve_ivp

from dynamics import SA, cluster_labels, first_time, normalize, theory
from paper_repro.plotting import (
    BLUE,
    frame_indices,
    quick_note,
    relative_angles,
    token_movie,
    token_panel,
)
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure
from paper_repro.schemes import H, describe, integrate, time_grid

BETA, T, DELTA = 4.0, 400.0, 1e-3
Z0 = np.array([
    [0.99806638, 0.06215705],
    [0.97712061, 0.21268594],
    [-0.24578194, 0.96932515],
    [-0.97354734, 0.2284854],
    [-0.99892629, -0.04632772],
])
SNAPSHOTS = (0.0, 10.0, 200.0, 400.0)
MERGE_TOLERANCE = 0.01  # |simulated - two-cluster ODE| / simulated merge time
ENERGY_SLACK = -1e-12


def _pull(gap: float, mine: int, other: int, beta: float) -> float:
    """Attention weight a cluster of mass ``mine`` puts on the other cluster at angle ``gap``."""
    w = math.exp(-beta * (1 - math.cos(gap)))  # e^{beta cos} / e^{beta}
    return other * w / (mine + other * w)


def two_cluster_merge_time(gap0: float, masses: tuple[int, int], scheme: str,
                           beta: float = BETA, delta: float = DELTA, horizon: float = 5e3,
                           h: float = H) -> float:
    """Time for two point clusters at angular distance gap0 to reach cos(gap) >= 1 - delta."""
    ma, mb = masses
    target = math.acos(1 - delta)
    if scheme == "faithful":
        gap, t = gap0, 0.0
        while gap > target and t < horizon:
            move_a, move_b = (
                math.atan2(h * p * math.sin(gap), 1 + h * (1 - p) + h * p * math.cos(gap))
                for p in (_pull(gap, ma, mb, beta), _pull(gap, mb, ma, beta)))
            gap, t = gap - move_a - move_b, t + h
        return t if gap <= target else float("nan")

    def rhs(_t, y):
        g = y[0]
        return [-math.sin(g) * (_pull(g, ma, mb, beta) + _pull(g, mb, ma, beta))]

    def merged(_t, y):
        return y[0] - target

    merged.terminal, merged.direction = True, -1
    sol = solve_ivp(rhs, (0.0, horizon), [gap0], events=merged, rtol=1e-10, atol=1e-12)
    return float(sol.t_events[0][0]) if sol.t_events[0].size else float("nan")


def _two_cluster_state(states: np.ndarray, times: np.ndarray):
    """First time with exactly two clusters, their masses (larger first) and angular gap."""
    labels = cluster_labels(states, DELTA)
    for k, count in enumerate(labels.counts):
        if count == 2:
            mask = labels.labels[k] == 0
            a, b = (normalize(states[k][m].sum(axis=0, keepdims=True)[None])[0, 0]
                    for m in (mask, ~mask))
            gap = math.acos(float(np.clip(a @ b, -1.0, 1.0)))
            masses = (int(mask.sum()), int((~mask).sum()))
            return float(times[k]), masses, gap, labels.counts
    return None, None, None, labels.counts


def compute(request: FigureRequest):
    times = time_grid(T)
    states = np.asarray(integrate(SA(BETA), normalize(Z0)[None], times, request.scheme).states[0])
    return dataset({"x": (("time", "token", "xy"), states, {"long_name": "tokens on S^1"})},
                   {"time": times}, n=5, beta=BETA, T=T, h=H, delta=DELTA, z0=Z0,
                   integrator=describe(request.scheme))


@register("C4", "n = 5 metastability movie, beta = 4, T = 400 (2410.06833, kinetic.py)", compute)
def draw(ds, request: FigureRequest):
    times, states = ds["time"].values, ds["x"].values
    formed, masses, gap, counts = _two_cluster_state(states, times)
    merged = float(first_time(times, (counts == 1)[None])[0])
    predicted = (formed + two_cluster_merge_time(gap, masses, request.scheme)
                 if formed is not None else float("nan"))
    energy = np.asarray(theory.interaction_energy(states, BETA))
    fig = plt.figure(figsize=(10, 6.4))
    grid = fig.add_gridspec(2, 4, height_ratios=(1, 1.3), hspace=0.35, wspace=0.35)
    for col, t in enumerate(SNAPSHOTS):
        k = int(np.searchsorted(times, t))
        token_panel(fig.add_subplot(grid[0, col]), states[k], start=states[0],
                    trail=states[: k + 1], title=f"$t = {t:g}$", size=30)
    ax = fig.add_subplot(grid[1, :2])
    theta = relative_angles(states)
    ax.plot(times, theta, color=BLUE, linewidth=0.9)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("$t$ (symlog)")
    ax.set_ylabel(r"$\theta_i(t) - \bar\theta(T)$")
    ax.set_title("angles: two clusters for hundreds of time units", fontsize=9)
    ax2 = fig.add_subplot(grid[1, 2:])
    ax2.plot(times, energy, color="k", linewidth=1.0, label="energy")
    ax2.axvline(merged, color="r", linewidth=0.8, label=f"merge (sim.) {merged:.1f}")
    ax2.axvline(predicted, color="r", linestyle=":", linewidth=1.2,
                label=f"two-cluster ODE {predicted:.1f}")
    ax2.set_xscale("symlog", linthresh=1.0)
    ax2.set_xlabel("$t$ (symlog)")
    ax2.set_ylabel(r"energy $\frac{1}{2\beta n^2}\sum_{ij} e^{\beta\langle x_i,x_j\rangle}$")
    ax2.legend(frameon=False, fontsize=7, loc="upper left")
    twin = ax2.twinx()
    twin.step(times, counts, color="0.6", linewidth=0.8, where="post")
    twin.set_ylabel("clusters ($\\delta = 10^{-3}$)", color="0.4", fontsize=8)
    fig.suptitle(f"C4 - metastability: n = 5, beta = {BETA:g} ({describe(request.scheme)})",
                 fontsize=10)
    quick_note(fig, request, "movie frame every 5 time units (full: every 0.5)")
    change = np.flatnonzero(np.diff(counts)) + 1
    data = {"parameters": parameters(ds),
            "cluster_count_changes": {"times": times[change], "counts": counts[change]},
            "two_clusters": {"formed_at": formed, "masses": masses, "gap": gap},
            "merge_time": {"simulated": merged, "two_cluster_ode": predicted},
            "times": times[::10], "energy": energy[::10], "angles": theta[::10]}
    relative = abs(predicted - merged) / merged
    checks = [
        Check("C4: |merge time - two-cluster reduction| / merge time", relative,
              MERGE_TOLERANCE, "<=",
              f"merge {merged:.1f} vs {predicted:.1f}; masses {masses} at gap "
              f"{math.degrees(gap):.1f} deg from t = {formed:g}; metastable stretch / formation "
              f"time = {(merged - formed) / formed:.0f}"),
        Check("C4: energy non-decreasing: min increment", float(np.diff(energy).min()),
              ENERGY_SLACK, ">=", "clusters change at t = " + ", ".join(
                  f"{t:g} -> {c}" for t, c in zip(times[change], counts[change], strict=True))),
    ]
    frames = frame_indices(len(times), request.pick(81, 801, tiny=6))
    movie = token_movie(states, lambda k: f"SA, n = 5, β = {BETA:g}, t = {times[k]:.1f}", frames,
                        request, "C4_metastability", size=40)
    return [*save_figure(fig, request, "C4_metastability", data, checks), movie], checks
