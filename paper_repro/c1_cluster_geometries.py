"""C1 - the cluster geometries of 2305.05465 (the authors' ``clustering-Tformers.py`` movies).

Pure self-attention x_i' = sum_j P_ij V x_j in R^d (Q = K = I, beta = 1) seen in the
rescaled coordinates z = e^{-tV} x, z_i' = sum_j P_ij V (z_j - z_i) (9.3), with n = 20 tokens
from U[-5, 5]^d, T = 5, h = 0.1. The value matrix V decides the limit shape (Table 1 of
arXiv 2312.10794):

* polytope (V = I, d = 2 and 3, Thm 3.1): the convex hull of the z_i shrinks (as sets) to a
  polytope K and every token tends to 0 or to the boundary of K;
* hyperplanes (V > 0 entrywise, the printed 2-d example, Thm 4.1): with w the left
  eigenvector of the simple top eigenvalue, <w, z_i> takes at most 3 values in the limit
  (tokens on at most 3 parallel hyperplanes);
* codimension-k (the printed symmetric 3-d V with eigenvalues 2 positive, 1 negative): Thm 4.1
  applies again (simple top eigenvalue); 2305.05465 conjectures a finer limit (codim k);
* mixed (V = diag(1, 1, -0.5), paranormal, Thm 5.1): polytope x subspace; the projection on
  the positive eigenspace behaves like the polytope case.

For V = I (and the positive block of the mixed case) z_i' = sum_j P_ij (z_j - z_i) moves every
token into the convex hull of the others, so hull(z(t)) is non-increasing. The checks test
that inclusion step by step and count the distinct limit values. Convex hulls are drawn
in silver; each geometry also gets a GIF movie.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from scipy.spatial import ConvexHull, QhullError

from dynamics import PureSelfAttention, RescaledSelfAttention, uniform_box
from dynamics.ensembles import PRINTED_V_2305
from paper_repro.plotting import BLUE, frame_indices, quick_note, save_movie, show_tokens
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure
from paper_repro.schemes import describe, integrate, time_grid

N, T, BOX = 20, 5.0, 5.0
SPREAD = 0.02  # tolerance for "same limit value", relative to the configuration's size


@dataclass(frozen=True)
class Geometry:
    key: str
    title: str
    V: np.ndarray
    claim: str  # "polytope", "hyperplanes" or "mixed"

    @property
    def d(self) -> int:
        return self.V.shape[0]


GEOMETRIES = (
    Geometry("polytope-2d", "polytope, $V = I_2$", np.eye(2), "polytope"),
    Geometry("polytope-3d", "polytope, $V = I_3$", np.eye(3), "polytope"),
    Geometry("hyperplanes-2d", "hyperplanes, $V > 0$ of 2305.05465",
             PRINTED_V_2305["hyperplanes-2d"], "hyperplanes"),
    Geometry("codimension-3d", "codim-$k$, symmetric $V$ of 2305.05465",
             PRINTED_V_2305["codimension-3d"], "hyperplanes"),
    Geometry("mixed-3d", "polytope $\\times$ line, $V = $ diag(1, 1, -0.5)",
             np.diag([1.0, 1.0, -0.5]), "mixed"),
)


def flow(geometry: Geometry, seed: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """(times, z (T, n, d)) of the rescaled pure self-attention for one geometry."""
    times = time_grid(T)
    z0 = uniform_box(seed, 1, N, geometry.d, BOX)
    V = None if np.array_equal(geometry.V, np.eye(geometry.d)) else geometry.V
    field = RescaledSelfAttention(PureSelfAttention(1.0, V=V))
    return times, np.asarray(integrate(field, z0, times, scheme, faithful="rk4").states[0])


def hull_excess(points: np.ndarray, inside_of: np.ndarray) -> float:
    """max over points of the distance outside hull(inside_of) (<= 0: all inside)."""
    try:
        hull = ConvexHull(inside_of)
    except QhullError:
        return float("nan")
    normals, offsets = hull.equations[:, :-1], hull.equations[:, -1]
    return float(np.max(points @ normals.T + offsets))


def distance_to_boundary_or_origin(points: np.ndarray) -> float:
    """max over points of min(distance to the boundary of their hull, distance to 0)."""
    try:
        hull = ConvexHull(points)
    except QhullError:
        return 0.0
    signed = points @ hull.equations[:, :-1].T + hull.equations[:, -1]
    boundary = np.min(np.abs(signed), axis=1)
    return float(np.max(np.minimum(boundary, np.linalg.norm(points, axis=1))))


def distinct_values(values: np.ndarray, tol: float) -> int:
    """Number of groups of the 1-d values joined by gaps <= tol."""
    ordered = np.sort(values)
    return int(1 + np.sum(np.diff(ordered) > tol))


def distinct_points(points: np.ndarray, tol: float) -> int:
    """Number of connected groups of points at mutual distance <= tol."""
    from scipy.sparse.csgraph import connected_components

    close = np.linalg.norm(points[:, None] - points[None, :], axis=-1) <= tol
    return int(connected_components(close, directed=False)[0])


def top_left_eigenvector(V: np.ndarray) -> np.ndarray:
    """w with w^T V = lambda_1 w^T for the eigenvalue of largest real part (real here)."""
    values, vectors = np.linalg.eig(V.T)
    w = np.real(vectors[:, int(np.argmax(np.real(values)))])
    return w / np.linalg.norm(w)


def positive_block(V: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d, k) of the span of the eigenvectors of V with positive eigenvalues
    (V symmetric or diagonal here)."""
    values, vectors = np.linalg.eigh((V + V.T) / 2)
    return vectors[:, values > 0]


def analyse(geometry: Geometry, z: np.ndarray) -> dict[str, float]:
    """The numbers behind the claim of one geometry (module docstring)."""
    if geometry.claim in ("polytope", "mixed"):
        basis = np.eye(geometry.d) if geometry.claim == "polytope" else positive_block(geometry.V)
        projected = z @ basis
        size = float(np.ptp(projected[-1], axis=0).max())
        tol = SPREAD * size
        out: dict[str, float] = {"size": size, "tolerance": tol}
        out["hull_excess"] = max(hull_excess(projected[k + 1], projected[k])
                                 for k in range(len(z) - 1))
        out["limit_points"] = distinct_points(projected[-1], tol)
        out["off_boundary"] = distance_to_boundary_or_origin(projected[-1])
    else:
        values = z[-1] @ top_left_eigenvector(geometry.V)
        tol = SPREAD * float(np.ptp(values))
        out = {"size": float(np.ptp(values)), "tolerance": tol,
               "hyperplanes": distinct_values(values, tol)}
    return out


def _limits(ax, z: np.ndarray) -> None:
    low, high = z.reshape(-1, z.shape[-1]).min(axis=0), z.reshape(-1, z.shape[-1]).max(axis=0)
    pad = 0.05 * (high - low)
    ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
    ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
    if z.shape[-1] == 3:
        ax.set_zlim(low[2] - pad[2], high[2] + pad[2])


class Frame:
    """One panel of a geometry: tokens, dashed trails and the convex hull, updatable."""

    def __init__(self, ax, z: np.ndarray, title: str):
        self.ax, self.z = ax, z
        self.d = z.shape[-1]
        self.three = self.d == 3
        _limits(ax, z)
        if self.three:
            ax.set_box_aspect((1, 1, 1))
            ax.tick_params(labelsize=6)
            for axis in (ax.xaxis, ax.yaxis, ax.zaxis):  # few ticks: labels never overlap
                axis.set_major_locator(MaxNLocator(4))
        else:
            ax.set_aspect("equal", adjustable="box")
            ax.tick_params(labelsize=7)
        ax.set_title(title, fontsize=8)
        self.trails = [ax.plot(*([[]] * self.d), "--", color=BLUE, linewidth=0.3)[0]
                       for _ in range(z.shape[1])]
        self.points = ax.scatter(*z[0].T, color=BLUE, edgecolor="k", linewidth=0.6, s=16,
                                 zorder=3, **({"depthshade": False} if self.three else {}))
        self.hull = None

    def show(self, k: int) -> None:
        z, ax = self.z, self.ax
        show_tokens(self.points, self.trails, z[k], z[: k + 1])
        if self.hull is not None:
            self.hull.remove()
            self.hull = None
        try:
            hull = ConvexHull(z[k])
            if self.three:
                faces = [z[k][simplex] for simplex in hull.simplices]
                self.hull = ax.add_collection3d(Poly3DCollection(
                    faces, facecolor="silver", edgecolor="0.5", linewidth=0.2, alpha=0.25))
            else:  # fill closes the polygon of the hull's corners
                self.hull = ax.fill(*z[k][hull.vertices].T, color="silver", alpha=0.5,
                                    zorder=1)[0]
        except QhullError:
            self.hull = None


def _view(ax, geometry: Geometry, turn: float = 0.0) -> None:
    """3-d camera: edge-on to the hyperplanes {<w, z> = c} where there are some."""
    azim = 50.0
    if geometry.claim == "hyperplanes":
        w = top_left_eigenvector(geometry.V)
        azim = float(np.degrees(np.arctan2(w[1], w[0]))) + 90.0
    ax.view_init(elev=12.0, azim=azim + turn)


def _movie(geometry: Geometry, times: np.ndarray, z: np.ndarray, request: FigureRequest):
    fig = plt.figure(figsize=(4, 4))
    ax = fig.add_subplot(projection="3d") if geometry.d == 3 else fig.add_subplot()
    frame = Frame(ax, z, "")

    def draw(k: int) -> None:
        frame.show(k)
        frame.ax.set_title(f"{geometry.key}, t = {times[k]:.1f}", fontsize=9)
        if geometry.d == 3:
            _view(ax, geometry, 40.0 * k / (len(times) - 1) - 20.0)

    frames = frame_indices(len(times), request.pick(26, len(times), tiny=4))
    return save_movie(fig, draw, frames, request, f"C1_{geometry.key}")


HULL_TOLERANCE = 1e-9  # hull(z(t+h)) inside hull(z(t)), up to rounding
MAX_HYPERPLANES = 3  # Thm 4.1


def _check(geometry: Geometry, numbers: dict[str, float]) -> Check:
    if geometry.claim == "hyperplanes":
        return Check(f"C1 {geometry.key}: distinct values of <w, z_i(T)>",
                     int(numbers["hyperplanes"]), MAX_HYPERPLANES, "<=",
                     f"Thm 4.1, tolerance {numbers['tolerance']:.2f}")
    where = "" if geometry.claim == "polytope" else " (positive eigenspace)"
    return Check(f"C1 {geometry.key}{where}: max excess of hull(z(t+h)) over hull(z(t))",
                 numbers["hull_excess"], HULL_TOLERANCE, "<=",
                 f"{int(numbers['limit_points'])} distinct points at T = {T:g}; tokens within "
                 f"{numbers['off_boundary']:.2f} of the hull boundary or 0 (size "
                 f"{numbers['size']:.1f})")


def compute(request: FigureRequest):
    """z (time, token, dim) of each geometry, as variables z_<key> (d = 2 or 3)."""
    runs = [flow(g, request.seed + col, request.scheme) for col, g in enumerate(GEOMETRIES)]
    return dataset({f"z_{g.key}": (("time", "token", f"dim{g.d}"), z,
                                   {"long_name": f"rescaled tokens e^(-tV) x, {g.title}"})
                    for g, (_, z) in zip(GEOMETRIES, runs, strict=True)},
                   {"time": runs[0][0]}, n=N, T=T, h=0.1, box=BOX, beta=1, **{"Q=K": "I"},
                   integrator=describe(request.scheme, faithful="rk4"))


@register("C1", "cluster geometries of pure self-attention (2305.05465), with movies", compute)
def draw(ds, request: FigureRequest):
    fig = plt.figure(figsize=(15, 3.6))
    files, checks, results = [], [], {}
    times = ds["time"].values
    runs = [ds[f"z_{g.key}"].values for g in GEOMETRIES]
    for col, (geometry, z) in enumerate(zip(GEOMETRIES, runs, strict=True)):
        ax = fig.add_subplot(1, len(GEOMETRIES), col + 1,
                             **({"projection": "3d"} if geometry.d == 3 else {}))
        frame = Frame(ax, z, geometry.title)
        frame.show(len(times) - 1)
        if geometry.d == 3:
            _view(ax, geometry)
        numbers = analyse(geometry, z)
        results[geometry.key] = {"V": geometry.V, "z_final": z[-1], "z_initial": z[0],
                                 **numbers}
        checks.append(_check(geometry, numbers))
    fig.suptitle(f"C1 - rescaled pure self-attention z = e^(-tV) x, n = {N}, t = 0 -> {T:g} "
                 f"({describe(request.scheme, faithful='rk4')}); silver: convex hull at T",
                 fontsize=10)
    quick_note(fig, request, "movies with 26 frames (full: every step)")
    data = {"parameters": parameters(ds), "geometries": results}
    files += save_figure(fig, request, "C1_cluster_geometries", data, checks)
    for geometry, z in zip(GEOMETRIES, runs, strict=True):
        files.append(_movie(geometry, times, z, request))
    return files, checks
