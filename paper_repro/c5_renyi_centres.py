"""C5 - causal attention keeps its strong Rényi centres in place (2411.04990, Fig. 2 there).

Causal self-attention (CSA): token k attends to tokens j <= k only, so token 1 never moves.
On the circle with Q = K = V = I_2, n = 200, beta = 64, take delta = 4 beta^{-1/2} and read
the tokens in their causal order:

* Rényi centres: tokens farther than delta from every earlier centre (greedy parking);
* strong Rényi centres: tokens farther than delta from *every* earlier token.

Strong centres see no earlier token within delta, so they barely move (Lemma 5.1), and every
token ends near some strong centre (Thm 5.2). A Rényi centre that is not strong has earlier
tokens close by and can be absorbed. The figure draws the tokens at t = 0, 75, 150 with the
strong centres in red and the other Rényi centres in black, and reports how far each centre
moved. Distances are arc lengths on the circle.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from dynamics import SA, CircleSA, angles_to_points, points_to_angles, uniform_angles
from paper_repro.plotting import BLUE, quick_note, unit_circle
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure
from paper_repro.schemes import describe, integrate, time_grid

N, BETA, T = 200, 64.0, 150.0
DELTA = 4.0 / math.sqrt(BETA)
SNAPSHOTS = (0.0, 75.0, 150.0)


def arc(a, b):
    """Arc length between angles a and b (broadcasting), in [0, pi]."""
    return np.abs(np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b)))))


def renyi_centres(theta: np.ndarray, delta: float = DELTA, *, strong: bool = False) -> list[int]:
    """Indices of the (strong) Rényi centres of angles theta (n,), in causal order."""
    centres: list[int] = []
    for k in range(theta.size):
        earlier = theta[:k] if strong else theta[centres]
        if earlier.size == 0 or np.all(arc(theta[k], earlier) > delta):
            centres.append(k)
    return centres


def _flow(theta0: np.ndarray, times: np.ndarray, scheme: str) -> np.ndarray:
    """Angles (batch, T, n): the authors' Cartesian scheme, or the exact angle ODE."""
    if scheme == "faithful":
        x = integrate(SA(BETA, causal=True), angles_to_points(theta0), times, scheme).states
        return np.asarray(points_to_angles(x))
    return np.asarray(integrate(CircleSA(BETA, causal=True), theta0, times, scheme).states)


def centres(theta: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """For one run (T, n): its Rényi centres, strong centres, and the other centres that are
    absorbed (end within delta/4 of an earlier centre)."""
    renyi = renyi_centres(theta[0])
    strong = renyi_centres(theta[0], strong=True)
    final = theta[-1]
    absorbed = [k for k in renyi if k not in strong
                and np.any(arc(final[k], final[[c for c in renyi if c < k]]) < DELTA / 4)]
    return renyi, strong, absorbed


def summary(theta: np.ndarray) -> dict[str, float]:
    """For one run (T, n): centre counts, how far strong centres moved by the last time,
    the fraction of tokens ending within delta of a strong centre, absorbed plain centres."""
    renyi, strong, absorbed = centres(theta)
    final = theta[-1]
    near = arc(final[:, None], final[None, strong]).min(axis=1)
    return {"renyi": len(renyi), "strong": len(strong),
            "strong_moved": float(arc(final[strong], theta[0][strong]).max()),
            "near_strong": float(np.mean(near <= DELTA)), "absorbed": len(absorbed)}


def _snapshot(ax, theta: np.ndarray, strong: list[int], plain: list[int], title: str) -> None:
    unit_circle(ax)
    points = np.asarray(angles_to_points(theta))
    ax.scatter(points[:, 0], points[:, 1], s=8, color=BLUE, alpha=0.5, zorder=2)
    ax.scatter(*points[plain].T, s=45, color="k", zorder=3, label="Rényi centre")
    ax.scatter(*points[strong].T, s=45, color="r", zorder=4, label="strong Rényi centre")
    ax.set_title(title, fontsize=9)


def compute(request: FigureRequest):
    """Angles of the drawn run (time, token) and of more seeds at the snapshots."""
    times = time_grid(T, 0.5) if request.scheme == "exact" else time_grid(T)
    seeds = request.pick(16, 64, tiny=4)
    more = _flow(uniform_angles(request.seed + 1, seeds, N), np.array(SNAPSHOTS), request.scheme)
    return dataset({
        "theta": (("time", "token"), _flow(uniform_angles(request.seed, 1, N), times,
                                           request.scheme)[0], {"units": "rad"}),
        "theta_seeds": (("seed", "snapshot", "token"), more, {"units": "rad"}),
    }, {"time": times, "snapshot": list(SNAPSHOTS)}, n=N, beta=BETA, T=T, delta=DELTA,
        **{"Q=K=V": "I_2"}, integrator=describe(request.scheme))


@register("C5", "causal attention: strong Rényi centres stay put (n = 200, beta = 64)", compute)
def draw(ds, request: FigureRequest):
    times, theta = ds["time"].values, ds["theta"].values
    renyi, strong, absorbed = centres(theta)
    plain = [k for k in renyi if k not in strong]
    moved = arc(theta, theta[0])  # (T, n)
    final = theta[-1]
    near_strong = arc(final[:, None], final[None, strong]).min(axis=1)
    near_renyi = arc(final[:, None], final[None, renyi]).min(axis=1)
    fig = plt.figure(figsize=(12, 3.8))
    grid = fig.add_gridspec(1, 4, width_ratios=(1, 1, 1, 1.5), wspace=0.4)
    for col, t in enumerate(SNAPSHOTS):
        k = int(np.searchsorted(times, t))
        ax = fig.add_subplot(grid[0, col])
        _snapshot(ax, theta[k], strong, plain, f"$t = {t:g}$")
    ax.legend(frameon=False, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, -0.2))
    ax = fig.add_subplot(grid[0, 3])
    floor = 1e-12
    for k in renyi:
        ax.semilogy(times, np.maximum(moved[:, k], floor), color="r" if k in strong else "k",
                    linewidth=1.0)
    ax.axhline(DELTA, color="0.5", linestyle=":", linewidth=0.8)
    ax.text(times[1], DELTA * 1.3, "$\\delta = 4\\beta^{-1/2}$", fontsize=8, color="0.4")
    ax.set_ylim(floor, 4)
    ax.set_xlabel("$t$")
    ax.set_ylabel("distance moved by each centre")
    fig.suptitle(f"C5 - causal SA on $S^1$, $n = {N}$, $\\beta = {BETA:g}$: "
                 f"{len(strong)} strong (red), {len(plain)} other Rényi centres (black) "
                 f"({describe(request.scheme)})", fontsize=10)
    strong_max = float(moved[:, strong].max())
    stats = [summary(run) for run in ds["theta_seeds"].values]
    seeds = len(stats)
    quick_note(fig, request, f"summary over {seeds} more seeds (full: 64)")
    data = {"parameters": parameters(ds), "renyi_centres": renyi, "strong_centres": strong,
            "absorbed_centres": absorbed, "times": times[::5],
            "centre_displacement": {str(k): moved[::5, k] for k in renyi},
            "final_distance_to_strong": near_strong, "final_distance_to_renyi": near_renyi,
            "seeds_summary": stats}
    checks = [Check(
        f"C5: largest move of a strong centre over [0, {T:g}]", strong_max, DELTA / 10, "<",
        f"{len(renyi)} Rényi centres, {len(strong)} strong; other centres move up to "
        f"{(float(moved[:, plain].max()) if plain else 0.0):.2e}, absorbed: {absorbed or 'none'}; "
        f"at t = {T:g} {np.mean(near_strong <= DELTA):.0%} of the tokens are within delta of a "
        f"strong centre; {seeds} more seeds: strong centres moved at most "
        f"{max(s['strong_moved'] for s in stats):.2e}, Rényi / strong centres "
        f"{[s['renyi'] for s in stats]} / {[s['strong'] for s in stats]}")]
    return save_figure(fig, request, "C5_renyi_centres", data, checks), checks
