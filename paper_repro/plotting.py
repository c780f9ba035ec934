"""Shared drawing for the paper figures: the authors' token style, circle and sphere panels, GIFs.

The authors' trajectory plots (rotf ``sphere.py``, paper.md section 4, Fig. 4) draw the
current tokens in blue #3658bf with black edges, the initial tokens in white at alpha 0.1
and the past trajectories as dashed lines of width 0.25. ``token_panel`` draws one such
frame on S^1 or S^2 (``TokenFrame`` keeps the artists and updates them, ``token_movie``
makes a GIF of them); ``save_movie`` turns a frame-updating function into a GIF with
matplotlib's PillowWriter (deterministic for a given input). ``quick_note``
writes on a figure that it was made at reduced size. ``phase_panel`` draws one phase
diagram (Figs. 3-5): P(t, beta) as a heat map in the paper's ``RdBu_r`` (blue 0, red 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import PillowWriter

from paper_repro.registry import FigureRequest

BLUE = "#3658bf"
GIF_DPI = 80
TRAIL_POINTS = 300  # trails are thinned to about this many points (dashed paths draw slowly)


def thin(trail: np.ndarray, points: int = TRAIL_POINTS) -> np.ndarray:
    """Every k-th row of trail (T, ...) so that at most ~``points`` remain, last row kept."""
    step = max(1, len(trail) // points)
    if step == 1:
        return trail
    return np.concatenate([trail[::step], trail[-1:]])


def quick_note(fig, request: FigureRequest, text: str) -> None:
    """Write ``quick mode: text`` under the figure when the request is a quick one."""
    if request.quick:
        fig.text(0.01, 0.005, f"quick mode: {text}", fontsize=7, color="0.35",
                 ha="left", va="bottom")


def phase_panel(ax, times: np.ndarray, betas: np.ndarray, probability: np.ndarray, *,
                title: str | None = None, labels: bool = True):
    """P(t, beta), probability (beta, time), as a heat map on a linear 0-1 scale.

    The paper's panels let matplotlib pick vmin (its d = 2 and d = 8 colour bars start at
    0.2); here every panel uses 0-1, so colours compare across panels. Returns the mesh.
    """
    mesh = ax.pcolormesh(times, betas, probability, cmap="RdBu_r", vmin=0.0, vmax=1.0,
                         shading="nearest", rasterized=True)
    half_t = 0.5 * (times[1] - times[0]) if len(times) > 1 else 0.5
    half_b = 0.5 * (betas[1] - betas[0]) if len(betas) > 1 else 0.5
    ax.set_xlim(times[0] - half_t, times[-1] + half_t)  # overlays may not widen the panel
    ax.set_ylim(betas[0] - half_b, betas[-1] + half_b)
    ax.tick_params(labelsize=7)
    if labels:
        ax.set_xlabel("$t$", fontsize=8)
        ax.set_ylabel(r"$\beta$", fontsize=8)
    if title is not None:
        ax.set_title(title, fontsize=9)
    return mesh


def unit_circle(ax, *, color: str = "0.8") -> None:
    """The unit circle, equal aspect, no axes."""
    angle = np.linspace(0.0, 2 * np.pi, 361)
    ax.plot(np.cos(angle), np.sin(angle), color=color, linewidth=0.8, zorder=0)
    ax.set_aspect("equal")
    ax.set_xlim(-1.15, 1.15)
    ax.set_ylim(-1.15, 1.15)
    ax.set_axis_off()


def sphere_wireframe(ax) -> None:
    """A light wireframe of S^2 on a 3-d axis, equal aspect, no axes."""
    u, v = np.mgrid[0 : 2 * np.pi : 40j, 0 : np.pi : 20j]
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v),
                      color="0.85", linewidth=0.3)
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()


class TokenFrame:
    """Tokens on S^1 (a 2-d axis) or S^2 (a 3-d axis) drawn once and then updated: current
    points, dashed trails, initial points drawn faintly.

    ax: the axis; n: number of tokens; start (n, 2 or 3): initial points; size: marker size
    on S^1.
    """

    def __init__(self, ax, n: int, *, start: np.ndarray | None = None, size: float = 22.0):
        self.ax, self.three = ax, ax.name == "3d"
        if self.three:
            sphere_wireframe(ax)
            self.trails = [ax.plot([], [], [], "--", color="k", linewidth=0.25)[0]
                           for _ in range(n)]
            if start is not None:
                ax.scatter(*start.T, color="white", edgecolor="k", alpha=0.1, s=12)
            self.points = ax.scatter(*np.zeros((3, n)), color=BLUE, edgecolor="k",
                                     linewidth=0.75, s=25, depthshade=False)
        else:
            unit_circle(ax)
            self.trails = [ax.plot([], [], "--", color=BLUE, linewidth=0.25, zorder=1)[0]
                           for _ in range(n)]
            if start is not None:
                ax.scatter(start[:, 0], start[:, 1], color="white", edgecolor="k",
                           alpha=0.1, s=size * 0.6, zorder=2)
            self.points = ax.scatter(np.zeros(n), np.zeros(n), color=BLUE, edgecolor="k",
                                     linewidth=0.75, s=size, zorder=3)
        self.title = ax.set_title("", fontsize=9)

    def show(self, current: np.ndarray, *, trail: np.ndarray | None = None,
             title: str | None = None) -> None:
        """current (n, d); trail (T, n, d) past positions up to now."""
        show_tokens(self.points, self.trails, current, trail)
        if title is not None:
            self.title.set_text(title)


def show_tokens(points, trails, current: np.ndarray, trail: np.ndarray | None) -> None:
    """Move the scatter ``points`` to current (n, d) and each line of ``trails`` along trail
    (T, n, d), thinned (none: empty lines); d = 3 for artists on a 3-d axis."""
    three = current.shape[-1] == 3
    if three:
        points._offsets3d = tuple(current.T)
    else:
        points.set_offsets(current)
    trail = None if trail is None else thin(trail)
    for i, line in enumerate(trails):
        path = [[]] * current.shape[-1] if trail is None else trail[:, i].T
        if three:
            line.set_data_3d(*path)
        else:
            line.set_data(*path)


def token_panel(ax, current: np.ndarray, *, start: np.ndarray | None = None,
                trail: np.ndarray | None = None, title: str | None = None,
                size: float = 22.0) -> TokenFrame:
    """One static frame of tokens on S^1 or S^2 (see ``TokenFrame``)."""
    frame = TokenFrame(ax, current.shape[0], start=start, size=size)
    frame.show(current, trail=trail, title=title)
    return frame


def token_movie(states: np.ndarray, title: Callable[[int], str], frames: Sequence[int],
                request: FigureRequest, stem: str, *, size: float = 22.0,
                figsize: tuple[float, float] = (3.6, 3.6),
                camera: Callable[[Any, int], None] | None = None) -> Path:
    """``stem``.gif of tokens (T, n, 2 or 3) with their trails, frame k titled title(k);
    ``camera(ax, k)`` turns a 3-d axis per frame."""
    fig = plt.figure(figsize=figsize)
    ax = fig.add_subplot(projection="3d" if states.shape[-1] == 3 else None)
    frame = TokenFrame(ax, states.shape[1], start=states[0], size=size)

    def draw(k: int) -> None:
        frame.show(states[k], trail=states[: k + 1], title=title(k))
        if camera is not None:
            camera(ax, k)

    return save_movie(fig, draw, frames, request, stem)


def view_towards(ax, point: np.ndarray, azimuth_offset: float = 40.0) -> None:
    """Turn a 3-d axis so that ``point`` (3,) is seen from the side, offset in azimuth."""
    azim = np.degrees(np.arctan2(point[1], point[0])) + azimuth_offset
    norm = float(np.linalg.norm(point))
    elev = np.degrees(np.arcsin(np.clip(point[2] / norm, -1, 1))) if norm > 0 else 10.0
    ax.view_init(elev=float(np.clip(elev, -60, 60)), azim=float(azim))


def relative_angles(circle: np.ndarray) -> np.ndarray:
    """Angles (T, n) of points on S^1 (T, n, 2), measured from the final mean direction
    and unwrapped in time (continuous curves for plots)."""
    theta = np.arctan2(circle[..., 1], circle[..., 0])
    final = np.angle(np.exp(1j * theta[-1]).mean())
    relative = np.angle(np.exp(1j * (theta - final)))
    return np.unwrap(relative[::-1], axis=0)[::-1]


def frame_indices(count: int, frames: int) -> list[int]:
    """``frames`` indices spread evenly over range(count), first and last included."""
    if count <= frames:
        return list(range(count))
    return sorted(set(np.rint(np.linspace(0, count - 1, frames)).astype(int).tolist()))


def save_movie(
    fig,
    draw: Callable[[int], None],
    frames: Sequence[int],
    request: FigureRequest,
    stem: str,
    *,
    fps: int = 10,
) -> Path:
    """Write ``stem``.gif into request.out with matplotlib's PillowWriter.

    ``draw(frame)`` updates the artists of ``fig`` for each frame; the figure is rendered
    once per frame and closed at the end. Titles that change per frame render faster as
    plain text than as mathtext.
    """
    request.out.mkdir(parents=True, exist_ok=True)
    path = request.out / f"{stem}.gif"
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, path, dpi=GIF_DPI):
        for frame in frames:
            draw(frame)
            writer.grab_frame()
    plt.close(fig)
    return path
