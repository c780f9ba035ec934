"""The feed-forward (MLP) sublayer as a field (paper (2.2) and the second term of (2.8)).

In the paper's column notation each token moves by x_dot = w(t) sigma(a(t) x + b(t)) with
a (m, d), b (m,), w (d, m), applied to every token on its own. Tokens are rows here, so
the same map reads

    x_dot_i^T = sigma(x_i^T a^T + b^T) w^T        (tokens (batch, n, d) -> (batch, n, d)),

projected onto the tangent space on the sphere (Post-LN block) and left as is in R^d.
(2.8) adds this to attention; ``LieTrotter(attention, FeedForward(...))`` integrates the
sum, and fixed-step schemes advance it as a transformer block: attention, then MLP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from attention.activations import ACTIVATIONS as NAMED
from attention.array_api import Array, asarray_like, namespace
from dynamics.fields.base import Field
from dynamics.space import SPHERE, Euclidean, Sphere
from dynamics.validation import check_finite

ACTIVATIONS: tuple[str, ...] = tuple(NAMED)


def _at(param: Any, t: Any, like: Array, rank: int) -> Array | None:
    """A parameter at time t; shared values have ``rank`` axes, per-member ones rank + 1.

    ``t`` is a scalar or a host array (batch,) of per-member times.
    """
    if param is None or not callable(param):
        return param
    if np.ndim(t) == 0:
        return asarray_like(param(float(t)), like)
    xp = namespace(like)
    values = [asarray_like(param(float(tb)), like) for tb in np.asarray(t, dtype=float)]
    return xp.stack([v if v.ndim == rank else v[i] for i, v in enumerate(values)])


_RANKS = {"a": 2, "b": 1, "w": 2}


@dataclass(frozen=True)
class FeedForward(Field):
    """x_dot_i = P(w sigma(a x_i + b)); see the module docstring.

    a:          (m, d) or (batch, m, d), or a callable of t returning one
    w:          (d, m) or (batch, d, m), or a callable of t
    b:          (m,) or (batch, m), a callable of t, or None (no bias)
    activation: a name of ``attention.activations.ACTIVATIONS`` (relu, tanh, gelu, gelu_tanh,
                silu) or an elementwise array-API callable
    space:      SPHERE (projected) or EUCLIDEAN
    """

    a: Any
    w: Any
    b: Any = None
    activation: str | Callable[[Array], Array] = "relu"
    space: Sphere | Euclidean = field(default=SPHERE)

    def __post_init__(self) -> None:
        if isinstance(self.activation, str):
            if self.activation not in ACTIVATIONS:
                raise ValueError(
                    f"activation must be one of {ACTIVATIONS} or a callable, "
                    f"got {self.activation!r}"
                )
        elif not callable(self.activation):
            raise TypeError(f"activation must be a name or a callable, got {self.activation!r}")
        if not isinstance(self.space, (Sphere, Euclidean)):
            raise TypeError("FeedForward lives on SPHERE or EUCLIDEAN")
        for name in ("a", "w"):
            if getattr(self, name) is None:
                raise ValueError(f"FeedForward needs the matrix {name}")

    @property
    def time_dependent(self) -> bool:
        return any(callable(p) for p in (self.a, self.w, self.b))

    @property
    def sigma_fn(self) -> Callable[[Array], Array]:
        return NAMED[self.activation] if isinstance(self.activation, str) else self.activation

    def check(self, x: Array) -> None:
        """Raise if a, b, w do not fit tokens x (batch, n, d) or each other."""
        batch, _, d = x.shape
        shapes = {}
        for name, rank in _RANKS.items():
            p = getattr(self, name)
            if p is None:
                continue
            value = p(0.0) if callable(p) else p
            shape = tuple(np.shape(value))
            if len(shape) not in (rank, rank + 1):
                raise ValueError(
                    f"{name} must have {rank} axes (shared) or {rank + 1} (per member), "
                    f"got shape {shape}"
                )
            if len(shape) == rank + 1 and shape[0] not in (1, batch):
                raise ValueError(f"{name} has batch {shape[0]}, tokens have batch {batch}")
            shapes[name] = shape[-rank:]
        m = shapes["a"][0]
        if shapes["a"][1] != d:
            raise ValueError(f"a must have shape (m, {d}), got {shapes['a']}")
        if shapes["w"] != (d, m):
            raise ValueError(f"w must have shape ({d}, {m}) to match a {shapes['a']}")
        if "b" in shapes and shapes["b"] != (m,):
            raise ValueError(f"b must have shape ({m},) to match a {shapes['a']}")

    def on(self, like: Array) -> FeedForward:
        """This field with its constant arrays on the backend, dtype and device of ``like``."""
        converted = {}
        for name in _RANKS:
            p = getattr(self, name)
            if p is not None and not callable(p):
                p = asarray_like(p, like)
                check_finite(f"feed-forward parameter {name}", p)
            converted[name] = p
        return replace(self, **converted)

    def drive(self, t: Any, x: Array) -> Array:
        """sigma(x a^T + b) w^T, shape (batch, n, d), before any projection."""
        xp = namespace(x)
        a, w, b = (_at(getattr(self, n), t, x, _RANKS[n]) for n in ("a", "w", "b"))
        h = x @ xp.matrix_transpose(a)
        if b is not None:
            h = h + (b[..., None, :] if b.ndim == 2 else b)
        return self.sigma_fn(h) @ xp.matrix_transpose(w)

    def __call__(self, t: Any, x: Array) -> Array:
        return self.space.project(x, self.drive(t, x))
