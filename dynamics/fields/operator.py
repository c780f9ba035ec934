"""Any attention operator as a vector field: the layer is the right-hand side of a flow.

For an operator op (``attention.operator.Operator``: heads, mask, bias, normalisation),

    sphere:  dx_i/dt = P^perp_{x_i} op(x)_i      (tokens under LayerNorm; ``space=SPHERE``)
    R^d:     dx_i/dt = op(x)_i                    (pure attention flow; ``space=EUCLIDEAN``)

so every integrator of ``dynamics.simulate`` runs causal, anchored, biased, latent or
factorised attention. With Q = K = V = O = I, one head, no mask and scale beta this is
``dynamics.SA(beta)`` exactly (the same attention path is taken).

Masks resampled per step (PrFlash) make the flow a random particle system. The mask in
force at time t is the draw of step k = floor((t - t0) / period) (a deterministic
function of the mask's seed and k), constant on [t0 + k period, t0 + (k + 1) period):
a piecewise-deterministic ODE. A fixed-step scheme with dt = period resamples every
step; its stages inside a step see that step's mask, except that a stage placed exactly
at the end of the step (RK4's last stage) already sees the next draw (right-continuous
convention). With ``period`` a multiple of dt, every scheme converges to this ODE as
dt -> 0, at first order across the jumps (RK4 included; adaptive schemes resolve them by
rejecting steps). Per-member times (adaptive steps) give per-member steps, hence masks;
inside the diffrax path, which traces t, each step's mask is drawn by a host callback
(``attention.operator.traced_mask``).

``MemberOperators`` flows each batch member under its own operator (ensembles of random
weights, one draw per member) in one ``simulate`` call.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from attention.array_api import Array, namespace
from attention.operator import Operator, is_traced
from dynamics.fields.base import Field
from dynamics.space import EUCLIDEAN, SPHERE, Euclidean, Sphere
from dynamics.validation import check_real

STEP_TOL = 1e-9


@dataclass(frozen=True)
class OperatorField(Field):
    """dx/dt = P^perp_x op(x) (sphere) or op(x) (R^d); see the module docstring.

    operator: an ``attention.operator.Operator`` whose output width equals its input width;
    period:   time between two draws of a random mask; t0: the time of draw 0.
    """

    operator: Any
    space: Sphere | Euclidean = field(default=SPHERE)
    period: float = 1.0
    t0: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.operator, Operator):
            raise TypeError(
                "operator must be an attention.operator.Operator, got "
                f"{type(self.operator).__name__}"
            )
        if not isinstance(self.space, (Sphere, Euclidean)):
            raise TypeError("an operator field lives on SPHERE or EUCLIDEAN")
        check_real("period", self.period, positive=True)
        check_real("t0", self.t0)
        if self.operator.d_in != self.operator.d_out:
            raise ValueError(
                f"a flow needs op: R^d -> R^d; this operator maps {self.operator.d_in} "
                f"to {self.operator.d_out} features"
            )

    # -- the field contract (dynamics.fields.base) ----------------------------------------
    batch_shared: ClassVar[tuple[str, ...]] = ("operator",)  # its weights serve every member

    @property
    def time_dependent(self) -> bool:  # type: ignore[override]
        return self.operator.random

    def check(self, x: Array) -> None:
        if x.shape[-1] != self.operator.d_in:
            raise ValueError(
                f"the operator takes d = {self.operator.d_in} features, tokens have {x.shape[-1]}"
            )

    def on(self, like: Array) -> OperatorField:
        return replace(self, operator=self.operator.on(like))

    def step_index(self, t: Any) -> Any:
        """k = floor((t - t0) / period): an int, an int array (batch,) for per-member t, or
        a traced JAX integer inside jit, vmap or a diffrax solve (which traces t, t0 and
        the period)."""
        if any(is_traced(v) for v in (t, self.t0, self.period)):
            import jax.numpy as jnp

            return jnp.floor((t - self.t0) / self.period + STEP_TOL).astype(jnp.int32)
        k = np.floor((np.asarray(t, dtype=float) - self.t0) / self.period + STEP_TOL)
        if np.any(k < 0):
            raise ValueError(f"time {t} lies before t0 = {self.t0}")
        return int(k) if k.ndim == 0 else k.astype(np.int64)

    def drive(self, t: Any, x: Array) -> Array:
        """op(x) before projection, shape (batch, n, d)."""
        step = self.step_index(t) if self.operator.random else 0
        if not is_traced(step) and np.ndim(step) and np.all(step == step.flat[0]):
            step = int(step.flat[0])
        return self.operator.forward(x, step=step)

    def __call__(self, t: Any, x: Array) -> Array:
        return self.space.project(x, self.drive(t, x))


@dataclass(frozen=True)
class MemberOperators(Field):
    """One operator per batch member: member b flows under ``operators[b]``.

    For ensembles whose weights (or scale) differ between members, such as the random
    weights of the variant-flows study: one ``simulate`` call integrates them all.
    Evaluation loops over the members (each one an :class:`OperatorField`), so it costs
    what separate calls would, without their per-call overhead. ``period`` and ``t0``
    as in :class:`OperatorField`; per-member times t (batch,) are handed out member by
    member.
    """

    operators: tuple[Any, ...]
    space: Sphere | Euclidean = field(default=SPHERE)
    period: float = 1.0
    t0: float = 0.0

    def __post_init__(self) -> None:
        ops = tuple(self.operators)
        if not ops:
            raise ValueError("give at least one operator")
        object.__setattr__(self, "operators", ops)
        for op in ops:
            OperatorField(op, self.space, self.period, self.t0)  # checks each operator
        if len({op.d_in for op in ops}) != 1:
            raise ValueError("every member's operator must take the same number of features")

    def member(self, b: int) -> OperatorField:
        """The field of member b."""
        return OperatorField(self.operators[b], self.space, self.period, self.t0)

    @property
    def batch(self) -> int:
        return len(self.operators)

    batch_shared: ClassVar[tuple[str, ...]] = ("operators",)  # looped over, never vmapped

    @property
    def time_dependent(self) -> bool:  # type: ignore[override]
        return any(op.random for op in self.operators)

    def check(self, x: Array) -> None:
        if x.shape[0] != self.batch:
            raise ValueError(f"{self.batch} operators for a batch of {x.shape[0]} members")
        self.member(0).check(x)

    def on(self, like: Array) -> MemberOperators:
        return replace(self, operators=tuple(op.on(like) for op in self.operators))

    def drive(self, t: Any, x: Array) -> Array:
        """op_b(x_b) before projection, stacked over the members b: (batch, n, d)."""
        xp = namespace(x)
        per_member = np.ndim(t) > 0
        rows = [self.member(b).drive(t[b] if per_member else t, x[b : b + 1])
                for b in range(self.batch)]
        return xp.concat(rows, axis=0)

    def __call__(self, t: Any, x: Array) -> Array:
        return self.space.project(x, self.drive(t, x))


def sphere_flow(operator: Any, **kwargs: Any) -> OperatorField:
    """The operator's flow on the sphere (tokens under LayerNorm)."""
    return OperatorField(operator, space=SPHERE, **kwargs)


def euclidean_flow(operator: Any, **kwargs: Any) -> OperatorField:
    """The operator's flow in R^d (no normalisation)."""
    return OperatorField(operator, space=EUCLIDEAN, **kwargs)
