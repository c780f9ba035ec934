"""Synchronisation on the circle over beta, including negative beta (arXiv 2507.22857).

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

``synchronisation_map`` is the study: for each beta of a grid, ``starts`` uniform random
starts of n particles, integrated to time T; ``synchronisation_outcome`` classifies each final
state: synchronised when all its particles lie in an arc shorter than ``arc_tol``, stopped
elsewhere when not synchronised but at rest (max |theta_dot| < ``stationary_tol``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dynamics.fields.circle import CircleAttention
from dynamics.initial import uniform_angles
from dynamics.simulate import simulate
from dynamics.validation import check_real

TWO_PI = 2 * np.pi


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


def arc_length(theta: Any) -> np.ndarray:
    """Length of the shortest arc holding all angles (2 pi minus the largest gap).

    theta (..., n) -> (...,).
    """
    s = np.sort(np.mod(np.asarray(theta, dtype=float), TWO_PI), axis=-1)
    gaps = np.diff(np.concatenate([s, s[..., :1] + TWO_PI], axis=-1), axis=-1)
    return TWO_PI - gaps.max(axis=-1)


@dataclass(frozen=True)
class SyncConfig:
    """The study's parameters: betas, particles n, random starts per beta, seed, horizon T,
    normalization ('softmax' or 'usa'), synchronisation arc tolerance, stationarity tolerance
    and the adaptive solver's rtol."""

    betas: tuple[float, ...] = (-3.0, -2.0, -1.5, -1.0, -2 / 3, -0.5, -0.16, 0.0, 0.5, 1.0, 2.0)
    n: int = 8
    starts: int = 32
    seed: int = 0
    horizon: float = 200.0
    normalization: str = "softmax"
    arc_tol: float = 1e-3
    stationary_tol: float = 1e-6
    rtol: float = 1e-8

    def __post_init__(self) -> None:
        if len(self.betas) < 1:
            raise ValueError("betas must hold at least one inverse temperature")
        check_real("betas", np.asarray(self.betas, dtype=float))
        for name in ("n", "starts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
        check_real("horizon", self.horizon, positive=True)
        check_real("arc_tol", self.arc_tol, positive=True)
        check_real("stationary_tol", self.stationary_tol, positive=True)
        if self.normalization not in ("softmax", "usa"):
            raise ValueError(
                f"normalization must be 'softmax' or 'usa', got {self.normalization!r}"
            )


def synchronisation_outcome(final: Any, beta: Any, normalization: str = "softmax", *,
                            arc_tol: float = 1e-3, stationary_tol: float = 1e-6
                            ) -> dict[str, np.ndarray]:
    """Classify final angles (batch, n) of SA/USA at beta (a scalar or (batch,)).

    Returns arc (batch,) the shortest arc holding all particles, order_parameter (batch,)
    |(1/n) sum e^{i theta}|, speed (batch,) max |theta_dot|, synchronised (batch,) arc < arc_tol,
    stationary_unsynchronised (batch,) not synchronised and speed < stationary_tol.
    """
    theta = np.asarray(final, dtype=float)
    if theta.ndim != 2:
        raise ValueError(f"final angles must have shape (batch, n), got {theta.shape}")
    beta = np.asarray(beta, dtype=float)
    attention = CircleAttention(beta=float(beta) if beta.ndim == 0 else beta,
                                normalization=normalization).on(theta)
    arc = arc_length(theta)
    speed = np.abs(np.asarray(attention(0.0, theta))).max(axis=-1)
    synchronised = arc < arc_tol
    return {
        "arc": arc,
        "order_parameter": np.abs(np.exp(1j * theta).mean(axis=-1)),
        "speed": speed,
        "synchronised": synchronised,
        "stationary_unsynchronised": ~synchronised & (speed < stationary_tol),
    }


def synchronisation_map(config: SyncConfig) -> dict[str, np.ndarray]:
    """Run the study (module docstring). Pure: the same config gives the same arrays.

    Returns betas (B,), synchronised (B,) fraction of starts ending in one point,
    stationary_unsynchronised (B,) fraction stopped at another stationary state,
    order_parameter (B, starts) final |(1/n) sum e^{i theta}|, arc (B, starts) final arc
    length, and the config as a dict.
    """
    if not isinstance(config, SyncConfig):
        raise TypeError(f"expected a SyncConfig, got {type(config).__name__}")
    betas = np.asarray(config.betas, dtype=float)
    x0 = uniform_angles(config.seed, config.starts, config.n)
    sync = np.zeros(betas.size)
    stuck = np.zeros(betas.size)
    order = np.zeros((betas.size, config.starts))
    arcs = np.zeros((betas.size, config.starts))
    for b, beta in enumerate(betas):
        attention = CircleAttention(beta=float(beta), normalization=config.normalization)
        traj = simulate(attention, x0, [0.0, config.horizon], method="dopri5", rtol=config.rtol,
                        atol=config.rtol * 1e-2)
        outcome = synchronisation_outcome(traj.final, beta, config.normalization,
                                          arc_tol=config.arc_tol,
                                          stationary_tol=config.stationary_tol)
        arcs[b], order[b] = outcome["arc"], outcome["order_parameter"]
        sync[b] = outcome["synchronised"].mean()
        stuck[b] = outcome["stationary_unsynchronised"].mean()
    return {
        "betas": betas,
        "synchronised": sync,
        "stationary_unsynchronised": stuck,
        "order_parameter": order,
        "arc": arcs,
        "config": asdict(config),
    }
