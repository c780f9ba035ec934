"""Synchronisation on the circle over beta, negative beta included (arXiv 2507.22857).

Polyanskiy, Rigollet and Yao prove that SA and USA on the circle synchronise (almost every
start ends with all particles at one point) for every beta >= -0.16, and that global
synchronisation fails for beta < -2/3. The failure has a simple witness, derived here: the
balanced m-cluster state (n/m particles at each of the angles 2 pi q/m) is stationary, and
linearising USA, theta_dot_i = (1/n) sum_j K(theta_i - theta_j) with K' = -g,
g(x) = (cos x - beta sin^2 x) e^{beta cos x}, gives the symmetric Jacobian
J = (1/n)(G - diag(G 1)), G_ij = g(theta_i - theta_j), whose eigenvalues are

    inside a cluster (zero-sum moves within one cluster):   -(1/m) sum_q g(2 pi q/m),
    between clusters (cluster q moves by e^{2 pi i p q/m}):
                                   (1/m) sum_q g(2 pi q/m) (cos(2 pi p q/m) - 1).

For m = 3 the inter-cluster eigenvalue is -g(2 pi/3) = (1/2 + 3 beta/4) e^{-beta/2}, negative
exactly when beta < -2/3, while the intra-cluster one, -(e^beta - (1 + 3 beta/2) e^{-beta/2})/3,
is always negative: three equidistant clusters are a stable non-synchronised equilibrium
precisely for beta < -2/3. (At the balanced state every Z_i is the same, so SA's Jacobian is
USA's times n/Z_i: same signs.)

Classifying a final state (``synchronisation_outcome``): its diameter (largest geodesic
distance between two tokens), the largest token speed of the field there, and the order
parameter |(1/n) sum x_i|. A diameter below pi/2 is a certificate, not a heuristic: every
<x_i, x_1> is then > 0, all tokens lie in the open hemisphere around x_1, and the cone
collapse (paper Lemma 6.4; its proof only needs positive weights and V = I, so it holds for
every beta, negative included) makes them converge to one point. The random-start study
over a beta grid is ``experiments.studies.synchronisation``
(``python -m experiments synchronisation``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attention.array_api import to_numpy
from dynamics.space import angles_to_points
from dynamics.validation import check_real

TWO_PI = 2 * np.pi
SYNCHRONISING_BETA = -0.16  # 2507.22857: every beta >= -0.16 synchronises (SA and USA, d = 2)
FAILING_BETA = -2 / 3  # ... and for beta < -2/3 some starts do not (three stable clusters)
CONE_DIAMETER = math.pi / 2  # a smaller diameter certifies synchronisation (Lemma 6.4)


def interaction_hessian_kernel(x: Any, beta: float) -> np.ndarray:
    """g(x) = (cos x - beta sin^2 x) e^{beta cos x} (paper App. B), K' = -g."""
    x = np.asarray(x, dtype=float)
    return (np.cos(x) - beta * np.sin(x) ** 2) * np.exp(beta * np.cos(x))


def cluster_state_spectrum(beta: float, m: int) -> tuple[float, np.ndarray]:
    """Eigenvalues of the USA Jacobian at m balanced clusters 2 pi q/m, in units of one particle.

    Returns (intra, inter): the intra-cluster eigenvalue and the inter-cluster ones for
    p = 1..m-1 (module docstring). Stable iff all are < 0.
    """
    check_real("beta", beta)
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 2:
        raise ValueError(f"m must be an integer >= 2 clusters, got {m!r}")
    q = np.arange(m)
    g = interaction_hessian_kernel(TWO_PI * q / m, float(beta))
    intra = -float(g.mean())
    p = np.arange(1, m)[:, None]
    inter = np.mean(g * (np.cos(TWO_PI * p * q / m) - 1.0), axis=1)
    return intra, inter


def three_cluster_eigenvalue(beta: Any) -> np.ndarray:
    """(1/2 + 3 beta/4) e^{-beta/2}: the inter-cluster eigenvalue of three balanced clusters
    (module docstring), < 0 (stable, not synchronised) iff beta < -2/3. Any shape."""
    b = np.asarray(beta, dtype=float)
    return (0.5 + 0.75 * b) * np.exp(-b / 2)


def arc_length(theta: Any) -> np.ndarray:
    """Length of the shortest arc holding all angles (2 pi minus the largest gap).

    theta (..., n) -> (...,).
    """
    s = np.sort(np.mod(np.asarray(theta, dtype=float), TWO_PI), axis=-1)
    gaps = np.diff(np.concatenate([s, s[..., :1] + TWO_PI], axis=-1), axis=-1)
    return TWO_PI - gaps.max(axis=-1)


def diameter(x: Any) -> np.ndarray:
    """max_{i,j} of the geodesic distance 2 arcsin(|x_i - x_j| / 2) on the sphere.

    x (..., n, d) unit vectors -> (...,) in [0, pi]. The chord form keeps full precision
    for nearby tokens (arccos of <x_i, x_j> would lose half the digits).
    """
    pts = np.asarray(x, dtype=float)
    chord = np.linalg.norm(pts[..., :, None, :] - pts[..., None, :, :], axis=-1)
    return 2.0 * np.arcsin(np.clip(chord.max(axis=(-2, -1)) / 2.0, 0.0, 1.0))


def synchronisation_outcome(field: Any, state: Any, t: float = 0.0) -> dict[str, np.ndarray]:
    """The numbers that classify final states of a field (module docstring).

    field: a sphere field or an angle field (``field.space.name == "angles"``) such as
    ``CircleSA``; state: (batch, n, d) tokens or (batch, n) angles, on any backend.
    Returns numpy arrays (batch,): ``diameter`` (largest geodesic distance, in [0, pi]),
    ``speed`` (max_i |x_i'|, or max_i |theta_i'|), ``order`` (|(1/n) sum_i x_i|).
    """
    angles = field.space.name == "angles"
    field.check(state)
    field = field.on(state)
    velocity = np.asarray(to_numpy(field(t, state)), dtype=float)
    if angles:
        speed = np.abs(velocity).max(axis=-1)
        points = np.asarray(to_numpy(angles_to_points(state)), dtype=float)
    else:
        speed = np.linalg.norm(velocity, axis=-1).max(axis=-1)
        points = np.asarray(to_numpy(state), dtype=float)
    return {
        "diameter": diameter(points),
        "speed": speed,
        "order": np.linalg.norm(points.mean(axis=-2), axis=-1),
    }
