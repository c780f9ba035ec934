"""The cross-domain mixture of experts (CDMoE, arXiv 2412.11834) as a feed-forward field.

Each token moves on its own (``attention.moe`` has the equations),

    sphere:  dx_i/dt = P^perp_{x_i} CDMoE(x_i)      (``space=SPHERE``)
    R^d:     dx_i/dt = CDMoE(x_i)                    (``space=EUCLIDEAN``)

where CDMoE(x) = shared SwiGLU(x) + sum over the experts that product-key retrieval picks
for x of sigma(<x, d_e>) softmax(score)_e u_e. The experts a token uses depend on where
it is: the field is continuous except where a retrieval head's k-th and (k+1)-th scores
cross (there the softmax weights of the swapped experts jump). Like ``FeedForward`` it is
the second part of a transformer block: ``LieTrotter(attention_field, CDMoE(moe))`` steps
attention, then the mixture of experts (a Cheems block, with ``SSDField`` or a DMA
``OperatorField`` as the first part).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from attention.array_api import Array
from attention.moe import CrossDomainMoE
from dynamics.fields.base import Field
from dynamics.space import SPHERE, Euclidean, Sphere


@dataclass(frozen=True)
class CDMoE(Field):
    """x_dot_i = P(CDMoE(x_i)) (sphere) or CDMoE(x_i) (R^d); see the module docstring.

    moe:   an ``attention.moe.CrossDomainMoE`` (its weights, k and activation);
    space: SPHERE (projected) or EUCLIDEAN.
    """

    moe: Any
    space: Sphere | Euclidean = field(default=SPHERE)

    time_dependent: ClassVar[bool] = False
    batch_shared: ClassVar[tuple[str, ...]] = ("moe",)  # its weights serve every member

    def __post_init__(self) -> None:
        if not isinstance(self.moe, CrossDomainMoE):
            raise TypeError(
                f"moe must be an attention.moe.CrossDomainMoE, got {type(self.moe).__name__}"
            )
        if not isinstance(self.space, (Sphere, Euclidean)):
            raise TypeError("CDMoE lives on SPHERE or EUCLIDEAN")

    def check(self, x: Array) -> None:
        if x.shape[-1] != self.moe.d:
            raise ValueError(f"the CDMoE takes d = {self.moe.d} features, tokens have "
                             f"{x.shape[-1]}")

    def on(self, like: Array) -> CDMoE:
        return replace(self, moe=self.moe.on(like))  # re-validated: finite weights

    def drive(self, t: Any, x: Array) -> Array:
        """CDMoE(x_i) for every token, before projection, shape (batch, n, d)."""
        return self.moe.forward(x)

    def __call__(self, t: Any, x: Array) -> Array:
        return self.space.project(x, self.drive(t, x))
