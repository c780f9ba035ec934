"""F7 - token trajectories on S^2 and S^1 (paper §5.1, the authors' sphere.py movie).

SA with Q = K = V = I, n = 64, beta = 1, T = 15, h = 0.1, uniform random start. The
claim shown: tokens collapse to clusters, and the interaction energy
E = (1/(2 beta n^2)) sum_ij e^{beta <x_i, x_j>} never decreases along the flow.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from dynamics import SA, normalize, points_to_angles, simulate
from paper_repro.registry import FigureReport, FigureRequest, register, save_figure

BLUE = "#3658bf"
N, BETA, T, H = 64, 1.0, 15.0, 0.1


def _simulate(d: int, request: FigureRequest) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(request.seed + d)
    x0 = normalize(rng.standard_normal((1, N, d)))
    times = np.round(np.arange(0.0, T + H / 2, H), 10)
    if request.scheme == "faithful":
        traj = simulate(SA(BETA), x0, times, method="authors", dt=H)
    else:
        traj = simulate(SA(BETA), x0, times, method="dopri5", rtol=1e-9, atol=1e-12)
    return times, traj.states[0]


def _energy(states: np.ndarray) -> np.ndarray:
    g = np.einsum("tid,tjd->tij", states, states)
    return np.exp(BETA * g).sum(axis=(1, 2)) / (2 * BETA * N**2)


def _clusters(x: np.ndarray, delta: float = 1e-3) -> int:
    from scipy.sparse.csgraph import connected_components

    return int(connected_components(x @ x.T >= 1 - delta, directed=False)[0])


@register("F7", "trajectories on S^2 and S^1 (n = 64, beta = 1, T = 15)")
def figure_f7(request: FigureRequest) -> FigureReport:
    times, sphere = _simulate(3, request)
    _, circle = _simulate(2, request)
    fig = plt.figure(figsize=(10, 4.2))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    u, v = np.mgrid[0 : 2 * np.pi : 40j, 0 : np.pi : 20j]
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v),
                      color="0.85", linewidth=0.3)
    for i in range(N):
        ax.plot(*sphere[:, i].T, "--", color="k", linewidth=0.25)
    ax.scatter(*sphere[0].T, color="white", edgecolor="k", alpha=0.1, s=12)
    ax.scatter(*sphere[-1].T, color=BLUE, edgecolor="k", linewidth=0.75, s=25, depthshade=False)
    centre = sphere[-1].mean(axis=0)
    azim = np.degrees(np.arctan2(centre[1], centre[0])) + 40.0
    elev = np.degrees(np.arcsin(np.clip(centre[2] / np.linalg.norm(centre), -1, 1)))
    ax.view_init(elev=float(np.clip(elev, -60, 60)), azim=float(azim))
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()
    ax.set_title(f"$S^2$: SA, $n={N}$, $\\beta={BETA:g}$, $t = 0 \\to {T:g}$")
    ax2 = fig.add_subplot(1, 2, 2)
    theta = points_to_angles(circle)
    final = np.angle(np.exp(1j * theta[-1]).mean())
    relative = np.angle(np.exp(1j * (theta - final)))
    relative = np.unwrap(relative[::-1], axis=0)[::-1]
    ax2.plot(times, relative, color=BLUE, linewidth=0.6)
    ax2.set_xlabel("$t$ (depth)")
    ax2.set_ylabel(r"$\theta_i(t) - \bar\theta(T)$")
    ax2.set_title("$S^1$: the same flow in angles")
    fig.suptitle(f"F7 - tokens cluster (scheme: {request.scheme})", fontsize=10)
    energy = _energy(sphere)
    data = {
        "parameters": {"n": N, "beta": BETA, "T": T, "h": H, "Q=K=V": "I"},
        "clusters_at_T": {"S2": _clusters(sphere[-1]), "S1": _clusters(circle[-1])},
        "energy_S2": energy,
        "times": times,
    }
    files = save_figure(fig, request, "F7_trajectories", data)
    plt.close(fig)
    steps = np.diff(energy)
    checks = [
        f"F7: energy non-decreasing along the S^2 flow: min increment {steps.min():.2e} "
        f"({'ok' if steps.min() >= -1e-12 else 'VIOLATED'})",
        f"F7: clusters at t = {T:g} (delta = 1e-3): S^2 {data['clusters_at_T']['S2']}, "
        f"S^1 {data['clusters_at_T']['S1']} (from {N} tokens)",
    ]
    return FigureReport("F7", files, checks)
