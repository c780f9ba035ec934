"""Fixed-step schemes on a space; each step ends with the space's retraction.

* ``authors``        - the scheme of the authors' code (arXiv 2312.10794, rotf repository):
                       x <- R(x + h D(x)) with the *unprojected* attention drive D, i.e. a
                       Post-LN residual layer. Since R(x + hD) = x + h P^perp_x D + O(h^2) it is
                       a first-order scheme for the projected ODE, but its O(h) error differs
                       from projected Euler's and is large at the paper's h = 0.1: clustering
                       times and phase boundaries come out biased. Use it to reproduce the
                       authors' figures, not to approximate the flow.
* ``euler``          - projected Euler, x <- R(x + h f(x)), first order.
* ``rk4``            - classical Runge-Kutta with retraction, fourth order.
* ``euler-maruyama`` - geometric Euler-Maruyama for fields with noise of strength sigma:
                       x <- R(x + h f(x) + sigma sqrt(h) P^perp_x xi), xi ~ N(0, I). On the
                       sphere the retraction supplies the Ito drift -(d-1) sigma^2/2 x, so
                       the noise is Brownian motion with generator (sigma^2/2) Laplacian.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from attention.array_api import Array
from dynamics.integrators.runge_kutta import rk_step
from dynamics.integrators.tableaux import RK4


@dataclass(frozen=True)
class FixedStepScheme(ABC):
    name: str
    order: int
    stochastic: bool = False

    @abstractmethod
    def step(self, field, t: Any, x: Array, h: float, noise: Array | None = None) -> Array:
        """x after one step of size h from time t (``noise``: N(0, I) draws, stochastic only)."""


@dataclass(frozen=True)
class AuthorsEuler(FixedStepScheme):
    name: str = "authors"
    order: int = 1

    def step(self, field, t, x, h, noise=None):
        return field.retract(t, x + h * field.drive(t, x))


@dataclass(frozen=True)
class ProjectedEuler(FixedStepScheme):
    name: str = "euler"
    order: int = 1

    def step(self, field, t, x, h, noise=None):
        return field.retract(t, x + h * field(t, x))


@dataclass(frozen=True)
class ClassicalRK4(FixedStepScheme):
    name: str = "rk4"
    order: int = 4

    def step(self, field, t, x, h, noise=None):
        return rk_step(RK4, field, t, x, h)


@dataclass(frozen=True)
class EulerMaruyama(FixedStepScheme):
    name: str = "euler-maruyama"
    order: int = 1
    stochastic: bool = True

    def step(self, field, t, x, h, noise=None):
        drift = field(t, x)
        kick = field.space.project(x, noise) * (field.sigma * h**0.5)
        return field.retract(t, x + h * drift + kick)


FIXED_STEP_SCHEMES: dict[str, FixedStepScheme] = {
    s.name: s for s in (AuthorsEuler(), ProjectedEuler(), ClassicalRK4(), EulerMaruyama())
}
