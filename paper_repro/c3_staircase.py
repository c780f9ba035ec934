"""C3 - the energy staircase of 2410.06833 (the authors' ``staircase.py``, "in rainbows").

Five tokens on the circle, theta0 = 0.5 [0, 0.5 L, 2 L, 4 L, 7 L] (mod pi) with
L = log(2000)/sqrt(2000), climb the energy E = (1/n^2) sum_ij e^{beta (cos(theta_i - theta_j) - 1)}
by the authors' normalised gradient ascent

    theta <- theta + lr log(beta) g / |g|,
    g_i = (1/n^2) sum_j -sin(theta_i - theta_j) e^{beta(cos(theta_i - theta_j) - 1)},

lr = 1e-5, and points closer than 1e-3 are snapped together whenever |g| < 1e-5 (paper.md
section 5.3). Time is "rescaled time" lr * iteration. For large beta the closest pair merges
first (Bruno et al.), and between mergers E sits on the plateaus sum_q m_q^2 / n^2 of the
cluster masses: (1,1,1,1,1) -> (2,1,1,1) -> (3,1,1) -> (3,2) -> (5) gives
0.20 -> 0.28 -> 0.44 -> 0.52 -> 1.00. The curve of each beta ends when all tokens coincide
(g = 0), the authors' NaN.

A plateau is read off each stretch of constant cluster masses (tokens within 1e-3 joined)
as the energy where the curve is flattest. The figure is deterministic (no seed).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from dynamics import theory
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure

N = 5
BETAS = (500.0, 1000.0, 1500.0, 2000.0, 3000.0, 4000.0)
COLORS = ("#cc33cc", "#3333cc", "#339933", "#cccc00", "#cc6600", "#cc3333")
LR, SNAP_GRADIENT, SNAP_DISTANCE = 1e-5, 1e-5, 1e-3
MAX_ITER = 1_000_000
LEVELS = {(1, 1, 1, 1, 1): 0.20, (2, 1, 1, 1): 0.28, (3, 1, 1): 0.44, (3, 2): 0.52, (5,): 1.00}
TOLERANCE, TOLERANCE_FROM_BETA = 0.005, 1000.0


def initial_angles() -> np.ndarray:
    """theta0 of staircase.py, L computed once at beta = 2000."""
    length = math.log(2000.0) / math.sqrt(2000.0)
    return 0.5 * (np.array([0.0, 0.5, 2.0, 4.0, 7.0]) * length % math.pi)


def _gradient(theta: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """g (m, n) of the module docstring for angles (m, n) and betas (m,)."""
    diff = theta[:, :, None] - theta[:, None, :]
    weights = np.exp(betas[:, None, None] * (np.cos(diff) - 1.0))
    return -(np.sin(diff) * weights).sum(axis=-1) / N**2


def _snap(theta: np.ndarray, members: np.ndarray) -> None:
    """In the given members, set each token to the first earlier token within SNAP_DISTANCE."""
    close = np.abs(theta[:, :, None] - theta[:, None, :]) < SNAP_DISTANCE
    close &= np.tri(N, k=-1, dtype=bool)[None]  # [b, k, j]: j < k
    has = close.any(axis=-1) & members[:, None]
    first = np.argmax(close, axis=-1)
    theta[has] = np.take_along_axis(theta, first, axis=1)[has]


def ascend(betas: tuple[float, ...], theta0: np.ndarray, max_iter: int = MAX_ITER):
    """The authors' normalised ascent for every beta at once.

    Returns (angles (iters + 1, m, n), active (iters + 1, m)): the angles after each
    iteration, and whether that beta's curve is still running (|g| > 0).
    """
    b = np.asarray(betas, dtype=float)
    theta = np.tile(theta0, (b.size, 1))
    history, running = [theta.copy()], [np.ones(b.size, dtype=bool)]
    active = np.ones(b.size, dtype=bool)
    step = LR * np.log(b)
    for _ in range(max_iter):
        g = _gradient(theta, b)
        norm = np.linalg.norm(g, axis=1)
        active &= norm > 0
        if not active.any():
            break
        move = np.where(active[:, None], g / np.where(norm > 0, norm, 1.0)[:, None], 0.0)
        theta = theta + step[:, None] * move
        _snap(theta, active & (norm < SNAP_GRADIENT))
        history.append(theta.copy())
        running.append(active.copy())
    return np.array(history), np.array(running)


def cluster_masses(theta: np.ndarray) -> list[tuple[int, ...]]:
    """Masses, largest first, of the arcs of tokens joined by gaps < SNAP_DISTANCE on the
    circle, for angles (count, n); one tuple per row."""
    ordered = np.sort(np.mod(theta, 2 * math.pi), axis=1)
    gaps = np.diff(ordered, axis=1, append=ordered[:, :1] + 2 * math.pi)
    cuts = gaps >= SNAP_DISTANCE  # a cut after token k of the sorted order
    keys, inverse = np.unique(cuts, axis=0, return_inverse=True)
    table = []
    for key in keys:
        positions = np.flatnonzero(key)
        if positions.size == 0:
            table.append((N,))
            continue
        sizes = np.diff(np.append(positions, positions[0] + N))
        table.append(tuple(sorted(sizes.tolist(), reverse=True)))
    return [table[i] for i in inverse.ravel()]


def plateaus(times: np.ndarray, energy: np.ndarray, masses: list[tuple[int, ...]]) -> list[dict]:
    """One entry per stretch of constant masses: start, end, its level sum_q m_q^2/n^2 and the
    plateau, E where the curve is flattest (for the first stretch, before any merger, E(0))."""
    out, start = [], 0
    for k in range(1, len(masses) + 1):
        if k == len(masses) or masses[k] != masses[start]:
            segment = energy[start:k]
            slope = np.abs(np.diff(segment)) if segment.size > 1 else np.zeros(1)
            flat = segment[0] if start == 0 else segment[int(np.argmin(slope))]
            level = sum(m * m for m in masses[start]) / N**2
            out.append({"masses": masses[start], "start": times[start], "end": times[k - 1],
                        "plateau": float(flat), "level": level})
            start = k
    return out


def closest_pair(theta: np.ndarray) -> tuple[int, int]:
    """The pair (i < j) with the largest cos(theta_i - theta_j)."""
    cosines = np.cos(theta[:, None] - theta[None, :]) - 2 * np.eye(theta.size)
    i, j = np.unravel_index(int(np.argmax(cosines)), cosines.shape)
    return (int(min(i, j)), int(max(i, j)))


def first_merger(angles: np.ndarray, masses: list[tuple[int, ...]]) -> tuple[int, int] | None:
    """The two tokens joined at the first change of the masses (None if none merged)."""
    for k, m in enumerate(masses):
        if m != (1,) * N:
            return closest_pair(angles[k])
    return None


def compute(request: FigureRequest):
    """The ascent's angles (iteration, beta, token) and whether each curve still runs."""
    theta0 = initial_angles()
    history, running = ascend(BETAS, theta0)
    return dataset({"angles": (("iteration", "beta", "token"), history, {"units": "rad"}),
                    "running": (("iteration", "beta"), running)}, {"beta": list(BETAS)},
                   n=N, betas=BETAS, lr=LR, snap_gradient=SNAP_GRADIENT,
                   snap_distance=SNAP_DISTANCE, theta0=theta0,
                   energy="(1/n^2) sum e^{beta (cos - 1)}")


@register("C3", "energy staircase, n = 5 on the circle, beta = 500..4000 (2410.06833)", compute)
def draw(ds, request: FigureRequest):
    history, running = ds["angles"].values, ds["running"].values
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    data = {"parameters": parameters(ds), "levels": {str(k): v for k, v in LEVELS.items()},
            "curves": {}}
    checks = []
    for index, (beta, color) in enumerate(zip(BETAS, COLORS, strict=True)):
        count = int(running[:, index].sum())
        angles = history[:count, index]
        energy = np.asarray(theory.circle_energy(angles, beta, "staircase"))
        times = LR * np.arange(count)
        ax.plot(times, energy, color=color, linewidth=1.2, label=f"$\\beta = {beta:g}$")
        masses = cluster_masses(angles)
        found = plateaus(times, energy, masses)
        errors = [abs(p["plateau"] - p["level"]) for p in found[1:]]
        first, closest = first_merger(angles, masses), closest_pair(angles[0])
        data["curves"][f"beta={beta:g}"] = {
            "rescaled_time": times[::10], "energy": energy[::10], "plateaus": found,
            "end_time": times[-1], "first_merger": first}
        sequence = " -> ".join(f"{p['plateau']:.3f}" for p in found)
        levels = " -> ".join(f"{p['level']:.2f}" for p in found)
        note = f"plateaus {sequence} (levels {levels}); E = 1 at rescaled time {times[-1]:.4f}"
        if beta >= TOLERANCE_FROM_BETA:
            checks.append(Check(f"C3 beta={beta:g}: max |plateau - level| after the first merger",
                                max(errors), TOLERANCE, "<=", note))
        checks.append(Check(f"C3 beta={beta:g}: first merger is the closest initial pair",
                            first == closest, True, "==", f"first {first}, closest {closest}"
                            + ("" if beta >= TOLERANCE_FROM_BETA else f"; {note}")))
    for level in LEVELS.values():
        ax.axhline(level, color="0.7", linewidth=0.6, linestyle=":")
    ax.set_yticks(sorted(LEVELS.values()))
    ax.set_xlabel("rescaled time ($10^{-5}\\times$ iteration)")
    ax.set_ylabel("energy $\\frac{1}{n^2}\\sum_{ij} e^{\\beta(\\cos(\\theta_i-\\theta_j)-1)}$")
    ax.set_xlim(0, None)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("C3 - energy staircase: plateaus at $\\sum_q m_q^2/n^2$ ($n = 5$)", fontsize=10)
    return save_figure(fig, request, "C3_staircase", data, checks), checks
