"""Fields on the circle in angle coordinates (paper §7, d = 2): SA, USA and Kuramoto.

With x_i = (cos theta_i, sin theta_i) the unit tangent at x_i is e_i = (-sin theta_i, cos theta_i),
and a sphere field P^perp_{x_i} D_i reads theta_dot_i = <e_i, D_i>. For D_i = sum_j A_ij x_j
this is the angle form (7.1) of self-attention,

    theta_dot_i = sum_j A_ij sin(theta_j - theta_i),   A_ij ~ e^{beta cos(theta_i - theta_j)},

with A normalised as in SA (1/Z_i), USA (1/n) or the shifted USA (e^{-beta}/n), and
optionally causal (j <= i only; 2411.04990's circle model). At beta = 0 it is the
Kuramoto model (7.2) with coupling 1 and no frequencies; the generalised Kuramoto model
(7.5) is

    theta_dot_i = omega_i + (K/n) sum_j h(theta_j - theta_i).

States are angles of shape (batch, n), unwrapped (space ``ANGLES``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from attention.array_api import Array, asarray_like, namespace, to_numpy
from attention.reference import Normalization, check_normalization
from attention.router import PATHS, attend_fast
from dynamics.fields.base import Field, check_batch, per_member
from dynamics.space import ANGLES, angles_to_points
from dynamics.validation import check_exponent, check_real


def _check_angles(x: Array) -> None:
    if x.ndim != 2:
        raise ValueError(f"angle fields take states of shape (batch, n), got {tuple(x.shape)}")


def tangent_component(theta: Array, v: Array) -> Array:
    """<e_i, v_i> with e_i = (-sin theta_i, cos theta_i).

    theta (batch, n), v (batch, n, 2) -> (batch, n).
    """
    xp = namespace(theta, v)
    return xp.cos(theta) * v[..., 1] - xp.sin(theta) * v[..., 0]


@dataclass(frozen=True)
class CircleAttention(Field):
    """Self-attention on the circle in angles (paper (7.1)); see the module docstring.

    beta:          inverse temperature, a scalar or (batch,)
    normalization: "softmax" (SA), "usa" (1/n) or "usa-shifted" (e^{-beta}/n)
    causal:        angle i attends to j <= i only
    path:          attention path, see ``attention.router``
    """

    beta: Any = 1.0
    normalization: Normalization = "softmax"
    causal: bool = False
    path: str = "auto"

    def __post_init__(self) -> None:
        check_normalization(self.normalization)
        if self.path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {self.path!r}")
        check_real("beta", self.beta)

    space = ANGLES

    time_dependent = False

    def check(self, x: Array) -> None:
        """Raise if x is not (batch, n) or beta does not fit its batch."""
        _check_angles(x)
        check_batch("beta", self.beta, x.shape[0])
        if self.normalization != "softmax":
            beta = np.ravel(np.asarray(to_numpy(self.beta) if hasattr(self.beta, "shape")
                                       else self.beta, dtype=float))
            shift = beta if self.normalization == "usa-shifted" else 0.0
            check_exponent(
                f"CircleAttention(normalization={self.normalization!r})",
                float(np.max(np.abs(beta) - shift)), x[..., None],
                what="the unnormalised weight e^{beta cos(theta_i - theta_j)}",
                fix="use CircleSA (softmax: bounded weights), normalization='usa-shifted', or a "
                    "smaller beta (rescale time)",
            )

    def on(self, like: Array) -> CircleAttention:
        """This field with beta on the backend, dtype and device of ``like``."""
        return replace(self, beta=per_member(self.beta, like, rank=3))  # beta weighs points

    def __call__(self, t: Any, theta: Array) -> Array:
        """theta_dot (batch, n): the tangent component of sum_j A_ij x_j at x_i."""
        x = angles_to_points(theta)
        drive = attend_fast(
            x, x, x, self.beta, normalization=self.normalization, causal=self.causal,
            path=self.path,
        )
        return tangent_component(theta, drive)


def CircleSA(beta: Any = 1.0, **kwargs: Any) -> CircleAttention:
    """SA on the circle: theta_dot_i = (1/Z_i) sum_j e^{beta cos(theta_ij)} sin(theta_j - theta_i),
    theta_ij = theta_i - theta_j, Z_i = sum_k e^{beta cos(theta_ik)}."""
    return CircleAttention(beta=beta, normalization="softmax", **kwargs)


def CircleUSA(beta: Any = 1.0, **kwargs: Any) -> CircleAttention:
    """USA on the circle: theta_dot_i = (1/n) sum_j e^{beta cos(theta_ij)} sin(theta_j - theta_i),
    theta_ij = theta_i - theta_j."""
    return CircleAttention(beta=beta, normalization="usa", **kwargs)


@dataclass(frozen=True)
class Kuramoto(Field):
    """Generalised Kuramoto model (7.5): theta_dot_i = omega_i + (K/n) sum_j h(theta_j - theta_i).

    omega:    natural frequencies: a scalar, (n,) shared by the batch, or (batch, n)
    coupling: the coupling K, a scalar or (batch,)
    h:        2 pi-periodic interaction, an array-API callable (elementwise); None means sin,
              evaluated in O(n) through the order parameter
              (K/n) sum_j sin(theta_j - theta_i) = K (cos theta_i <sin> - sin theta_i <cos>)
    """

    omega: Any = 0.0
    coupling: Any = 1.0
    h: Callable[[Array], Array] | None = None

    def __post_init__(self) -> None:
        check_real("omega", self.omega)
        check_real("coupling", self.coupling)
        if self.h is not None and not callable(self.h):
            raise TypeError(f"h must be a callable of the phase differences, got {self.h!r}")
        if np.ndim(self.omega) > 2:
            raise ValueError(
                f"omega must be a scalar, (n,) or (batch, n), got shape {np.shape(self.omega)}"
            )

    space = ANGLES

    time_dependent = False

    def check(self, x: Array) -> None:
        """Raise if x is not (batch, n) or omega / coupling do not fit it."""
        _check_angles(x)
        batch, n = x.shape
        shape = tuple(getattr(self.omega, "shape", np.shape(self.omega)))
        if len(shape) >= 1 and shape[-1] != n:
            raise ValueError(f"omega has {shape[-1]} frequencies, the angles have n = {n}")
        if len(shape) == 2 and shape[0] not in (1, batch):
            raise ValueError(f"omega has batch {shape[0]}, the angles have batch {batch}")
        check_batch("coupling", self.coupling, batch)

    def on(self, like: Array) -> Kuramoto:
        """This field with its arrays on the backend, dtype and device of ``like``."""
        omega = self.omega
        if not isinstance(omega, (int, float)):
            omega = asarray_like(omega, like)
        return replace(self, omega=omega, coupling=per_member(self.coupling, like))

    def __call__(self, t: Any, theta: Array) -> Array:
        """theta_dot (batch, n)."""
        xp = namespace(theta)
        if self.h is None:
            c = xp.mean(xp.cos(theta), axis=-1, keepdims=True)
            s = xp.mean(xp.sin(theta), axis=-1, keepdims=True)
            pull = xp.cos(theta) * s - xp.sin(theta) * c
        else:
            diff = theta[..., None, :] - theta[..., :, None]  # [b, i, j] = theta_j - theta_i
            pull = xp.mean(self.h(diff), axis=-1)
        return self.omega + self.coupling * pull
