"""The field contract: what every vector field declares to the solvers.

A field is an immutable object f with a velocity ``f(t, x)`` on a space (``dynamics.space``:
a tangent projection and a retraction). Integrators, ``simulate``, the reduced solver, the
CUDA route and the diffrax path know a field only through this contract, never by probing
attributes:

* ``space``            - where the states live (SPHERE, EUCLIDEAN or ANGLES);
* ``__call__(t, x)``   - the velocity, shape of x; ``drive(t, x)`` the velocity before the
                         tangent projection (the authors' scheme steps with it; default: the
                         velocity itself);
* ``time_dependent``   - False promises f(t, x) = f(x), so a step may be compiled once;
* ``span_preserving``  - True promises x(t) in span{x_j(0)}, and then ``restricted(U)`` is
                         the same field in the coordinates y = U^T x (``dynamics.reduced``);
* ``sigma``            - the noise strength of an SDE dX = f dt + sigma dW (0: an ODE);
* ``parts``            - a splitting, advanced part by part by fixed-step schemes (() if none);
* ``retract(t, y)``    - how a step that started at time t ends: the space's retraction by
                         default; a Post-LN network ends each sublayer with its own LayerNorm;
* ``check(x)`` / ``on(like)`` - validate the parameters against states x (batch, n, d) or
                         (batch, n); the field with its arrays on x's backend, dtype and device;
* ``fusion()``         - how the field describes itself to a fused attention kernel
                         (:class:`Fusion`), or None when it has no fused form; ``fused(build)``
                         the field with that kernel in place (``dynamics.gpu``);
* ``batch_shared``     - names of dataclass fields whose arrays are shared by every batch
                         member whatever their shape (the diffrax path vmaps the others).

A parameter with one value per batch member (beta (batch,), say) is stored as
(batch, 1, ..., 1) by :func:`per_member`, so that it broadcasts against states of the
field's rank; that is the only place where the package decides a parameter's batch shape.

``Wrapper`` is the base of fields built around one inner field (noise, Pre-/Peri-LN,
rescaling, fusion): it forwards the contract to the inner field, so a wrapper states only
what it changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from attention.array_api import Array, asarray_like


class Field(ABC):
    """A vector field on a space; the module docstring states the contract."""

    time_dependent: ClassVar[bool] = True
    span_preserving: ClassVar[bool] = False
    sigma: ClassVar[float] = 0.0
    parts: ClassVar[tuple[Field, ...]] = ()
    batch_shared: ClassVar[tuple[str, ...]] = ()

    @property
    @abstractmethod
    def space(self) -> Any:
        """The space of the states (``dynamics.space``)."""

    @abstractmethod
    def __call__(self, t: Any, x: Array) -> Array:
        """The velocity at time t (a scalar, or per-member times (batch,))."""

    def drive(self, t: Any, x: Array) -> Array:
        """The velocity before the tangent projection (default: the velocity)."""
        return self(t, x)

    def retract(self, t: Any, y: Array) -> Array:
        """The end of a step started at time t: the space's retraction unless overridden."""
        return self.space.retract(y)

    def check(self, x: Array) -> None:  # noqa: B027 - a field without parameters fits any x
        """Raise ValueError if the parameters do not fit states ``x``."""

    def on(self, like: Array) -> Field:
        """This field with its arrays on the backend, dtype and device of ``like``."""
        return self

    def restricted(self, basis: Array) -> Field:
        """The field in span coordinates y = U^T x (only for span-preserving fields)."""
        raise ValueError(
            f"{type(self).__name__} does not preserve the span of the tokens: no reduced form"
        )

    def fusion(self) -> Fusion | None:
        """This field as a fused attention kernel sees it, or None (no fused form)."""
        return None

    def fused(self, build: Callable[[Field, Fusion], Field]) -> Field | None:
        """This field with its attention evaluated by ``build(field, fusion)``, or None.

        A wrapper that keeps its own role around a fused inner field (noise) overrides it.
        """
        plan = self.fusion()
        return None if plan is None else build(self, plan)


@dataclass(frozen=True)
class Fusion:
    """A field as one fused attention launch: x_dot = E(sum_h A^h(theta) V^h theta).

    heads:            attention heads (``SelfAttention``) with one normalisation, one causal
                      flag and numeric inverse temperatures; their drives add up
    epilogue:         E of the velocity: "tangent" (sphere), None (R^d) or "unit" (Peri-LN)
    drive_epilogue:   E of the unprojected drive (the authors' scheme)
    normalize_inputs: theta = x / |x| (Pre-/Peri-LN) instead of theta = x
    """

    heads: tuple[Any, ...]
    epilogue: str | None
    drive_epilogue: str | None = None
    normalize_inputs: bool = False


class Wrapper(Field):
    """A field around one inner field (the dataclass field named by ``INNER``).

    Space, time dependence, span preservation, checks, backend conversion and the
    restriction to the span are the inner field's unless a subclass says otherwise.
    """

    INNER: ClassVar[str]

    @property
    def inner(self) -> Field:
        return self.__dict__[self.INNER]

    def with_inner(self, inner: Field) -> Wrapper:
        """This wrapper around another inner field."""
        return replace(self, **{self.INNER: inner})

    @property
    def space(self) -> Any:
        return self.inner.space

    @property
    def time_dependent(self) -> bool:  # type: ignore[override]
        return self.inner.time_dependent

    @property
    def span_preserving(self) -> bool:  # type: ignore[override]
        return self.inner.span_preserving

    def check(self, x: Array) -> None:
        self.inner.check(x)

    def on(self, like: Array) -> Wrapper:
        return self.with_inner(self.inner.on(like))

    def restricted(self, basis: Array) -> Wrapper:
        return self.with_inner(self.inner.restricted(basis))


def per_member(value: Any, like: Array, rank: int | None = None) -> Any:
    """A scalar parameter, or one value per batch member as (batch, 1, ..., 1).

    Python numbers stay numbers; arrays move to ``like``'s backend, dtype and device and
    get ``rank - 1`` trailing unit axes (rank: that of the states, default ``like.ndim``).
    """
    if isinstance(value, (int, float)):
        return value
    value = asarray_like(value, like)
    if value.ndim == 0:
        return value
    rank = like.ndim if rank is None else rank
    return value.reshape((-1,) + (1,) * (rank - 1))


def check_batch(name: str, value: Any, batch: int) -> None:
    """Raise unless ``value`` is a scalar or holds one entry per member of ``batch``."""
    shape = getattr(value, "shape", None)
    count = int(np.prod(np.shape(value) if shape is None else tuple(shape)))
    if count not in (1, batch):
        raise ValueError(f"{name} has {count} entries, the states have batch {batch}")
