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
dt -> 0. Per-member times (adaptive steps) give per-member steps, hence masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from attention.backend import Array
from dynamics.space import EUCLIDEAN, SPHERE, Euclidean, Sphere
from dynamics.validation import check_real

STEP_TOL = 1e-9


@dataclass(frozen=True)
class OperatorField:
    """dx/dt = P^perp_x op(x) (sphere) or op(x) (R^d); see the module docstring.

    operator: an ``attention.operator.Operator`` whose output width equals its input width;
    period:   time between two draws of a random mask; t0: the time of draw 0.
    """

    operator: Any
    space: Sphere | Euclidean = field(default=SPHERE)
    period: float = 1.0
    t0: float = 0.0

    def __post_init__(self) -> None:
        from attention.operator import Operator

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

    # -- the field protocol ---------------------------------------------------------------
    @property
    def time_dependent(self) -> bool:
        return self.operator.random

    @property
    def span_preserving(self) -> bool:
        return False

    def check(self, x: Array) -> None:
        if x.shape[-1] != self.operator.d_in:
            raise ValueError(
                f"the operator takes d = {self.operator.d_in} features, tokens have {x.shape[-1]}"
            )

    def on(self, like: Array) -> OperatorField:
        return replace(self, operator=self.operator.on(like))

    def step_index(self, t: Any) -> Any:
        """k = floor((t - t0) / period), an int, or an int array (batch,) for per-member t."""
        k = np.floor((np.asarray(t, dtype=float) - self.t0) / self.period + STEP_TOL)
        if np.any(k < 0):
            raise ValueError(f"time {t} lies before t0 = {self.t0}")
        return int(k) if k.ndim == 0 else k.astype(np.int64)

    def drive(self, t: Any, x: Array) -> Array:
        """op(x) before projection, shape (batch, n, d)."""
        step = self.step_index(t) if self.operator.random else 0
        if np.ndim(step) and np.all(step == step.flat[0]):
            step = int(step.flat[0])
        return self.operator.forward(x, step=step)

    def __call__(self, t: Any, x: Array) -> Array:
        return self.space.project(x, self.drive(t, x))


def sphere_flow(operator: Any, **kwargs: Any) -> OperatorField:
    """The operator's flow on the sphere (tokens under LayerNorm)."""
    return OperatorField(operator, space=SPHERE, **kwargs)


def euclidean_flow(operator: Any, **kwargs: Any) -> OperatorField:
    """The operator's flow in R^d (no normalisation)."""
    return OperatorField(operator, space=EUCLIDEAN, **kwargs)
