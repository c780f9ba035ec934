"""Movies of a trajectory: ``animate(trajectory, "flow.gif")`` (issue 16).

One call turns a :class:`~dynamics.simulate.Trajectory` (one batch member) or a plain
array of states into a GIF (matplotlib's ``PillowWriter``) or an MP4 (``FFMpegWriter``,
where ffmpeg is installed); the path's suffix picks which. The drawing follows the paper
figures' token style: current tokens in blue #3658bf with black edges, the initial tokens
faint, short trails behind each token, a "t = ..." label on every frame.

Where the tokens live decides the picture (``space="auto"`` reads it from the states):

* the circle (angles (T, n), or points (T, n, 2) of unit norm): the unit circle;
* S^2 (points (T, n, 3) of unit norm): a light sphere wireframe seen from a fixed camera;
* S^{d-1}, d >= 4, and R^d, d >= 4: the first ``components`` (2 or 3) principal axes of all
  the member's states (``principal_projection``, one projection for the whole movie); the
  axis labels give each axis's share of the variance;
* R^2 and R^3 (points off the sphere): a plain scatter whose axes hold every frame.

Figures are drawn on matplotlib's Agg canvas (no pyplot, no global backend switch).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from attention.array_api import to_numpy
from dynamics.simulate import Trajectory

BLUE = "#3658bf"  # the authors' token colour (paper_repro.plotting.BLUE)
SPACES = ("auto", "sphere", "angles", "euclidean")
SUFFIXES = (".gif", ".mp4")
UNIT_TOL = 1e-4  # |x| within this of 1 everywhere: the tokens are on the sphere
BEHIND_ALPHA = 0.35  # tokens on the far side of S^2 (seen through the sphere)
TRAIL_SUBSTEPS = 6  # points per frame interval in a trail (curved, not chords)


class Projection(NamedTuple):
    """The principal-axes projection of a cloud of points.

    coordinates: (..., k) the points in the first k principal axes (centred at the mean)
    explained:   (k,) each axis's share of the total variance (0-1)
    axes:        (k, d) the principal axes, orthonormal rows
    mean:        (d,) the centre subtracted before projecting
    """

    coordinates: np.ndarray
    explained: np.ndarray
    axes: np.ndarray
    mean: np.ndarray


def principal_projection(states: Any, k: int = 2) -> Projection:
    """Project points (..., d) onto their first k principal axes (PCA over all of them).

    All leading axes are pooled: for a trajectory (T, n, d) one projection serves every
    frame. The projection is orthogonal, so points that lie in an affine k-plane keep
    their pairwise distances exactly. Each axis's sign is fixed (its largest entry is
    positive), so the picture does not flip between runs.
    """
    points = np.asarray(to_numpy(states), dtype=float)
    if points.ndim < 2:
        raise ValueError(f"states must have shape (..., d), got {points.shape}")
    d = points.shape[-1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= d:
        raise ValueError(f"k must be an integer in [1, d = {d}], got {k!r}")
    flat = points.reshape(-1, d)
    if not np.all(np.isfinite(flat)):
        raise ValueError("states contain NaN or infinite entries")
    mean = flat.mean(axis=0)
    centred = flat - mean
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:k] if len(vt) >= k else np.vstack([vt, np.zeros((k - len(vt), d))])
    top = np.argmax(np.abs(axes), axis=1)
    signs = np.sign(axes[np.arange(k), top])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular**2
    total = float(variance.sum())
    explained = np.zeros(k)
    if total > 0:
        kept = variance[:k] / total
        explained[: len(kept)] = kept
    coordinates = (centred @ axes.T).reshape(*points.shape[:-1], k)
    return Projection(coordinates, explained, axes, mean)


def animate(
    trajectory: Any,
    path: str | os.PathLike,
    *,
    member: int = 0,
    times: Any = None,
    fps: float = 10,
    dpi: float = 80,
    title: str | None = None,
    space: str = "auto",
    components: int = 2,
    trail: int = 8,
    frames: int | None = None,
    view: tuple[float, float] = (20.0, -60.0),
    figsize: tuple[float, float] = (5.0, 5.0),
) -> Path:
    """Write a movie of one trajectory to ``path`` (.gif: Pillow; .mp4: ffmpeg); returns it.

    trajectory: a ``Trajectory`` of states (values (batch, T, n, d) or (batch, T, n)
                angles; ``member`` picks the batch member), or an array (T, n, d) of points
                / (T, n) of angles, with ``times`` (T,) (without them frames are numbered)
    fps, dpi:   frames per second and resolution; the frames are figsize * dpi pixels
    title:      shown above the picture (a PCA note is added for projected states)
    space:      "auto" (unit-norm points: "sphere"; 2-d arrays: "angles"; else
                "euclidean"), or one of those names / a ``dynamics.space`` object
    components: 2 or 3 principal axes for d >= 4
    trail:      how many past movie frames each token's trail covers (0: none)
    frames:     at most this many frames, spread evenly, first and last kept (None: all)
    view:       (elevation, azimuth) of the fixed 3-d camera, in degrees
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"animate writes .gif (Pillow) or .mp4 (ffmpeg) files; got "
                         f"{str(path)!r} (suffix {suffix or 'none'!r})")
    fps = _positive("fps", fps)
    dpi = _positive("dpi", dpi)
    figsize = (_positive("figsize[0]", figsize[0]), _positive("figsize[1]", figsize[1]))
    trail = _count("trail", trail, minimum=0)
    if components not in (2, 3) or isinstance(components, bool):
        raise ValueError(f"components must be 2 or 3, got {components!r}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a string or None, got {type(title).__name__}")
    elev, azim = (_real("view[0]", view[0]), _real("view[1]", view[1]))

    states, times = _member_states(trajectory, member, times)
    picture = _Picture.of(states, _space_name(space), components)
    count = picture.points.shape[0]
    keep = _frame_indices(count, None if frames is None else _count("frames", frames))
    writer = _writer(path, fps)  # before any drawing: a missing ffmpeg fails fast

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    movie = _Movie(fig, picture, times, trail=trail, title=title, view=(elev, azim))
    path.parent.mkdir(parents=True, exist_ok=True)
    with writer.saving(fig, str(path), dpi=dpi):
        for position, k in enumerate(keep):
            movie.show(k, previous=keep[max(0, position - trail): position + 1])
            writer.grab_frame()
    return path


# -- the boundary -------------------------------------------------------------------------


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _positive(name: str, value: Any) -> float:
    value = _real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value:g}")
    return value


def _count(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _space_name(space: Any) -> str:
    name = getattr(space, "name", space)
    if name not in SPACES:
        raise ValueError(f"space must be one of {SPACES} or a dynamics.space object, "
                         f"got {space!r}")
    return name


def _member_states(trajectory: Any, member: Any,
                   times: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(T, n, d) or (T, n) float states of one member, and their (T,) times (None: an
    array given without times)."""
    if isinstance(trajectory, Trajectory):
        if trajectory.observable != "state":
            raise ValueError(f"this trajectory recorded {trajectory.observable!r}, not the "
                             "states; run simulate without observe= to animate it")
        if times is not None:
            raise ValueError("times come from the Trajectory; pass times only with an array")
        values = np.asarray(to_numpy(trajectory.values))
        if values.ndim not in (3, 4):
            raise ValueError(f"trajectory values must be (batch, T, n, d) or (batch, T, n), "
                             f"got {values.shape}")
        if isinstance(member, bool) or not isinstance(member, (int, np.integer)):
            raise TypeError(f"member must be an integer, got {type(member).__name__}")
        batch = values.shape[0]
        if not -batch <= member < batch:
            raise IndexError(f"member {member} is out of range for a trajectory of "
                             f"{batch} member(s) (0 to {batch - 1})")
        states, times = values[member], np.asarray(trajectory.times, dtype=float)
    else:
        try:
            states = np.asarray(to_numpy(trajectory))
        except Exception as error:
            raise TypeError(f"animate takes a dynamics.Trajectory or an array of states "
                            f"(T, n, d) / (T, n), got {type(trajectory).__name__}") from error
        if states.dtype.kind not in "fiu":
            raise TypeError(f"animate takes a dynamics.Trajectory or an array of states "
                            f"(T, n, d) / (T, n), got {type(trajectory).__name__}"
                            + (f" of dtype {states.dtype}" if states.dtype.kind != "O" else ""))
        if states.ndim not in (2, 3):
            raise ValueError(f"an array of states must be (T, n, d) points or (T, n) angles, "
                             f"got shape {states.shape}; for a batch, pass the Trajectory "
                             "(or one member, states[member])")
        if member != 0:
            raise ValueError("member applies to a Trajectory; index the array yourself")
        if times is not None:
            times = np.asarray(to_numpy(times) if hasattr(times, "shape") else times,
                               dtype=float)
            if times.shape != (states.shape[0],):
                raise ValueError(f"times must have shape (T,) = ({states.shape[0]},), "
                                 f"got {times.shape}")
            if not np.all(np.isfinite(times)):
                raise ValueError("times must be finite")
    states = states.astype(float)
    if states.shape[0] == 0 or states.shape[1] == 0:
        raise ValueError(f"nothing to animate: states have shape {states.shape}")
    finite = np.isfinite(states).reshape(states.shape[0], -1).all(axis=1)
    if not finite.all():
        first = int(np.argmin(finite))
        when = "" if times is None else f"t = {float(times[first]):g}, "
        raise ValueError(f"the states are NaN or infinite in {int((~finite).sum())} of "
                         f"{len(finite)} frames, first at {when}frame {first}; animate a "
                         "finite trajectory")
    return states, times


def _frame_indices(count: int, frames: int | None) -> list[int]:
    """At most ``frames`` indices spread over range(count), first and last included."""
    if frames is None or count <= frames:
        return list(range(count))
    if frames == 1:
        return [count - 1]
    return sorted(set(np.rint(np.linspace(0, count - 1, frames)).astype(int).tolist()))


def _writer(path: Path, fps: float):
    from matplotlib import animation

    if path.suffix.lower() == ".gif":
        return animation.PillowWriter(fps=fps)
    if not ffmpeg_available():
        raise ValueError(
            f"writing {path.name} needs ffmpeg, which is not on this machine's PATH: install "
            "it (apt-get install ffmpeg, brew install ffmpeg, conda install ffmpeg) or point "
            "matplotlib.rcParams['animation.ffmpeg_path'] at it; or write a .gif instead"
        )
    return animation.FFMpegWriter(fps=fps, extra_args=["-pix_fmt", "yuv420p"])


def ffmpeg_available() -> bool:
    """True where matplotlib can run ffmpeg (``animation.ffmpeg_path``, default on PATH)."""
    from matplotlib import animation, rcParams

    return shutil.which(rcParams["animation.ffmpeg_path"]) is not None and \
        animation.FFMpegWriter.isAvailable()


def _rgba(colour: str) -> np.ndarray:
    from matplotlib.colors import to_rgba

    return np.array(to_rgba(colour))


# -- the geometry -------------------------------------------------------------------------


class _Picture(NamedTuple):
    """What is drawn: points (T, n, 2 or 3) and how (kind, labels, limits)."""

    points: np.ndarray
    kind: str  # "circle", "sphere", "plane", "space" (3-d scatter)
    subtitle: str
    labels: tuple[str, ...]
    limits: np.ndarray | None  # (dims, 2) for plane/space
    on_sphere: bool  # trails stay on the unit circle / sphere

    @classmethod
    def of(cls, states: np.ndarray, space: str, components: int) -> _Picture:
        if states.ndim == 2:
            if space not in ("auto", "angles"):
                raise ValueError(f"states of shape (T, n) are angles, not {space!r} points")
            theta = np.unwrap(states, axis=0)
            points = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
            return cls(points, "circle", "", ("", ""), None, True)
        if space == "angles":
            raise ValueError(f"angles have shape (T, n); got points of shape {states.shape}")
        d = states.shape[-1]
        norms = np.linalg.norm(states, axis=-1)
        unit = bool(np.all(np.abs(norms - 1.0) <= UNIT_TOL))
        if space == "sphere" and not unit:
            worst = float(np.max(np.abs(norms - 1.0)))
            raise ValueError(f"space='sphere' but the states are off the unit sphere "
                             f"(| |x| - 1 | up to {worst:.2g}); use space='euclidean'")
        sphere = space == "sphere" or (space == "auto" and unit)
        if d == 1:
            raise ValueError("states have d = 1; animate draws d >= 2 points or angles")
        if sphere and d == 2:
            return cls(states, "circle", "", ("", ""), None, True)
        if sphere and d == 3:
            return cls(states, "sphere", "", ("", "", ""), None, True)
        if d <= 3:
            return cls(states, "plane" if d == 2 else "space", rf"tokens in $\mathbb{{R}}^{d}$",
                       ("$x_1$", "$x_2$", "$x_3$")[:d], _limits(states), False)
        projection = principal_projection(states, components)
        where = f"$S^{{{d - 1}}}$" if sphere else rf"$\mathbb{{R}}^{{{d}}}$"
        shown = 100 * float(projection.explained.sum())
        subtitle = f"{where} projected on PCA 1-{components} ({shown:.0f}% of variance)"
        labels = tuple(f"PCA {i + 1} ({100 * share:.0f}%)"
                       for i, share in enumerate(projection.explained))
        return cls(projection.coordinates, "plane" if components == 2 else "space", subtitle,
                   labels, _limits(projection.coordinates), False)


def _limits(points: np.ndarray) -> np.ndarray:
    """(dims, 2) equal-width limits around all frames' points, with a margin."""
    low = points.reshape(-1, points.shape[-1]).min(axis=0)
    high = points.reshape(-1, points.shape[-1]).max(axis=0)
    centre = 0.5 * (low + high)
    half = 0.5 * float(np.max(high - low)) * 1.1
    half = half if half > 0 else 1.0
    return np.stack([centre - half, centre + half], axis=1)


def _time_format(times: np.ndarray | None):
    if times is None:
        return lambda k: f"frame {k}"
    steps = np.abs(np.diff(np.asarray(times)))
    steps = steps[steps > 0]
    decimals = 0 if len(steps) == 0 else int(np.clip(-np.floor(np.log10(steps.min())), 0, 4))
    return lambda k: f"t = {float(times[k]):.{decimals}f}"


class _Movie:
    """The artists of one movie, drawn once and moved frame by frame."""

    def __init__(self, fig, picture: _Picture, times: np.ndarray, *, trail: int,
                 title: str | None, view: tuple[float, float]) -> None:
        self.picture, self.trail = picture, trail
        self.label = _time_format(times)
        points = picture.points
        n, three = points.shape[1], picture.kind in ("sphere", "space")
        ax = fig.add_subplot(projection="3d" if three else None)
        self.ax, self.three = ax, three
        if picture.kind == "circle":
            angle = np.linspace(0.0, 2 * np.pi, 361)
            ax.plot(np.cos(angle), np.sin(angle), color="0.75", linewidth=1.0, zorder=0)
            ax.set_xlim(-1.15, 1.15)
            ax.set_ylim(-1.15, 1.15)
            ax.set_aspect("equal")
            ax.set_axis_off()
        elif picture.kind == "sphere":
            u, v = np.mgrid[0 : 2 * np.pi : 37j, 0 : np.pi : 19j]
            ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v),
                              color="0.82", linewidth=0.4)
            for axis in "xyz":
                getattr(ax, f"set_{axis}lim")(-1.0, 1.0)
            ax.set_box_aspect((1, 1, 1), zoom=1.35)
            ax.set_axis_off()
        else:
            limits = picture.limits
            ax.set_xlim(*limits[0])
            ax.set_ylim(*limits[1])
            ax.set_xlabel(picture.labels[0], fontsize=11)
            ax.set_ylabel(picture.labels[1], fontsize=11)
            if three:
                ax.set_zlim(*limits[2])
                ax.set_zlabel(picture.labels[2], fontsize=11)
                ax.set_box_aspect((1, 1, 1), zoom=0.9)
            else:
                ax.set_aspect("equal")
                ax.grid(color="0.92", linewidth=0.6)
            ax.tick_params(labelsize=9)
            ax.locator_params(nbins=5)
        self.facing = None  # on S^2: the direction towards the camera (tokens behind: faint)
        if three:
            ax.view_init(elev=view[0], azim=view[1])
            if picture.kind == "sphere":
                elev, azim = np.radians(view)
                self.facing = np.array([np.cos(elev) * np.cos(azim),
                                        np.cos(elev) * np.sin(azim), np.sin(elev)])
        start = points[0]
        if three:
            self.trails = [ax.plot([], [], [], "-", color=BLUE, linewidth=1.2, alpha=0.5)[0]
                           for _ in range(n)]
            ax.scatter(*start.T, color="white", edgecolor="k", alpha=0.15, s=20)
            self.points = ax.scatter(*start.T, color=BLUE, edgecolor="k", linewidth=0.75,
                                     s=40, depthshade=False)
        else:
            self.trails = [ax.plot([], [], "-", color=BLUE, linewidth=1.2, alpha=0.5,
                                   zorder=1)[0]
                           for _ in range(n)]
            ax.scatter(*start.T, color="white", edgecolor="k", alpha=0.15, s=24, zorder=2)
            self.points = ax.scatter(*start.T, color=BLUE, edgecolor="k", linewidth=0.75,
                                     s=45, zorder=3)
        heading = [part for part in (title, picture.subtitle) if part]
        if heading:
            fig.suptitle("\n".join(heading), fontsize=12)
        self.time = fig.text(0.03, 0.03, "", fontsize=12, ha="left", va="bottom")
        fig.subplots_adjust(left=0.14 if not three and picture.kind != "circle" else 0.02,
                            right=0.98, bottom=0.1, top=0.9 if heading else 0.98)

    def show(self, k: int, previous: Sequence[int]) -> None:
        """Frame k; the trails run through the frames ``previous`` (ending at k)."""
        current = self.picture.points[k]
        if self.three:
            self.points._offsets3d = tuple(current.T)
            if self.facing is not None:
                colours = np.tile(_rgba(BLUE), (len(current), 1))
                colours[current @ self.facing < 0, 3] = BEHIND_ALPHA
                self.points.set_facecolor(colours)
        else:
            self.points.set_offsets(current)
        path = self._trail(previous) if self.trail and len(previous) > 1 else None
        for i, line in enumerate(self.trails):
            segment = [[]] * current.shape[-1] if path is None else path[:, i].T
            if self.three:
                line.set_data_3d(*segment)
            else:
                line.set_data(*segment)
        self.time.set_text(self.label(k))

    def _trail(self, previous: Sequence[int]) -> np.ndarray:
        """(m, n, dims) points along the trail, each frame interval subdivided (on the
        sphere/circle the subdivisions are pushed back onto it: arcs, not chords)."""
        points = self.picture.points[list(previous)]
        weights = np.linspace(0.0, 1.0, TRAIL_SUBSTEPS, endpoint=False)[:, None, None, None]
        pieces = (1 - weights) * points[None, :-1] + weights * points[None, 1:]
        pieces = np.concatenate([pieces.transpose(1, 0, 2, 3).reshape(-1, *points.shape[1:]),
                                 points[-1:]])
        if self.picture.on_sphere:
            norms = np.linalg.norm(pieces, axis=-1, keepdims=True)
            pieces = pieces / np.where(norms > 0, norms, 1.0)
        return pieces
