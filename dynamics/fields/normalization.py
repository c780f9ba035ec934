"""Where LayerNorm sits: Post-LN, Pre-LN and Peri-LN as flows of tokens in R^d (Survey §6.2).

Write each token as x_i = r_i theta_i (r_i = |x_i|, theta_i on the sphere) and let

    A_i(Theta) = sum_j softmax_j(beta <Q theta_i, K theta_j>) V theta_j

be the attention drive of the *normalised* tokens (``SelfAttention.drive`` at Theta).

* Post-LN normalises after the residual update: r_i = 1 and theta_dot_i = P^perp A_i, which
  is SA on the sphere (use ``dynamics.SA``; it is not repeated here).
* Pre-LN normalises the sublayer input only:   x_dot_i = A_i(Theta).
* Peri-LN normalises its output as well:      x_dot_i = A_i / |A_i|.

Every placement moves the directions by (NA) theta_dot_i = (1/s_i) P^perp_{theta_i} A_i with
speed factor s_i = 1 (Post), r_i (Pre) or r_i |A_i| (Peri), while r_dot_i = <theta_i, x_dot_i>.
Since r grows, Pre-LN slows clustering from e^{-2t} to 1/t^2 (paper §11 item 19).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np

from attention.array_api import Array, namespace, to_numpy
from dynamics.fields.attention import SA
from dynamics.fields.base import Field, Fusion, Wrapper
from dynamics.space import EUCLIDEAN, Euclidean, Sphere

Placement = Literal["post", "pre", "peri"]
PLACEMENTS: tuple[str, ...] = ("post", "pre", "peri")


def polar(x: Array) -> tuple[Array, Array]:
    """x (batch, n, d) -> (r (batch, n), theta (batch, n, d)) with x_i = r_i theta_i."""
    xp = namespace(x)
    r = xp.linalg.vector_norm(x, axis=-1)
    return r, x / r[..., None]


def speed_factor(placement: Placement, r: Array, drive: Array) -> Array:
    """s_i of (NA) for a placement: 1 (post), r_i (pre), r_i |A_i| (peri); shape (batch, n).

    r: token norms (batch, n); drive: A(Theta) (batch, n, d).
    """
    xp = namespace(r, drive)
    if placement == "post":
        return xp.ones_like(r)
    if placement == "pre":
        return r
    if placement == "peri":
        return r * xp.linalg.vector_norm(drive, axis=-1)
    raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")


@dataclass(frozen=True)
class NormalizedAttention(Wrapper):
    """Pre-LN or Peri-LN attention in R^d; see the module docstring.

    attention: the attention whose ``drive`` is evaluated at Theta (SelfAttention or
               MultiHeadAttention; default SA with beta = 1)
    placement: "pre" or "peri" (Post-LN is ``dynamics.SA`` on the sphere)

    With V = I the velocity is a combination of the tokens' directions, so the field
    preserves the span, and in y = U^T x it is the same field (U^T (x/|x|) = y/|y|).
    """

    attention: Field = field(default_factory=SA)
    placement: Placement = "pre"

    INNER: ClassVar[str] = "attention"

    def __post_init__(self) -> None:
        if self.placement == "post":
            raise ValueError(
                "Post-LN is SA itself (tokens on the sphere): use dynamics.SA / SelfAttention"
            )
        if self.placement not in ("pre", "peri"):
            raise ValueError(f"placement must be 'pre' or 'peri', got {self.placement!r}")
        if not isinstance(self.attention, Field):
            raise TypeError("attention must be a field with a drive(t, x) (e.g. SelfAttention)")
        if not isinstance(self.attention.space, (Sphere, Euclidean)):
            raise TypeError("attention must act on tokens (batch, n, d)")

    space = EUCLIDEAN

    def check(self, x: Array) -> None:
        """Raise if a token is zero (no direction) or the attention does not fit x."""
        if x.ndim != 3:
            raise ValueError(f"tokens must have shape (batch, n, d), got {tuple(x.shape)}")
        if np.any(np.linalg.norm(to_numpy(x), axis=-1) == 0):
            raise ValueError("every token needs a direction: x_i = 0 has no theta_i = x_i/|x_i|")
        self.attention.check(x)

    def fusion(self) -> Fusion | None:
        """The attention's heads at theta = x/|x|, with Peri-LN's unit epilogue."""
        inner = self.attention.fusion()
        if inner is None:
            return None
        epilogue = "unit" if self.placement == "peri" else None
        return replace(inner, epilogue=epilogue, drive_epilogue=epilogue, normalize_inputs=True)

    def attention_drive(self, t: Any, x: Array) -> Array:
        """A(Theta) (batch, n, d), the attention drive of the directions."""
        return self.attention.drive(t, polar(x)[1])

    def __call__(self, t: Any, x: Array) -> Array:
        """x_dot (batch, n, d): A(Theta) (pre) or A(Theta)/|A(Theta)| (peri)."""
        a = self.attention_drive(t, x)
        if self.placement == "pre":
            return a
        xp = namespace(a)
        return a / xp.linalg.vector_norm(a, axis=-1, keepdims=True)

    drive = __call__

    def angular_velocity(self, t: Any, x: Array) -> Array:
        """theta_dot_i = (1/s_i) P^perp_{theta_i} A_i  (NA), shape (batch, n, d)."""
        r, theta = polar(x)
        a = self.attention.drive(t, theta)
        s = speed_factor(self.placement, r, a)
        return Sphere.project(theta, a) / s[..., None]


def PreLN(beta: Any = 1.0, **kwargs: Any) -> NormalizedAttention:
    """Pre-LN self-attention x_dot_i = A_i(Theta), A from ``SA(beta, **kwargs)``."""
    return NormalizedAttention(SA(beta, **kwargs), "pre")


def PeriLN(beta: Any = 1.0, **kwargs: Any) -> NormalizedAttention:
    """Peri-LN self-attention x_dot_i = A_i/|A_i|, A from ``SA(beta, **kwargs)``."""
    return NormalizedAttention(SA(beta, **kwargs), "peri")
