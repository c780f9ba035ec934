"""SSD with RoPE (Wonderful Matrices, arXiv 2412.11834; attention.md §6.2) as a vector field.

For an SSD layer S = ``attention.ssd.StateSpaceDuality`` with an output map back to the
token dimension (W_out (H p, d), Cheems's out_proj, or no map when H p = d),

    sphere:  dx_i/dt = P^perp_{x_i} S(x)_i      (``space=SPHERE``: tokens under LayerNorm)
    R^d:     dx_i/dt = S(x)_i                    (``space=EUCLIDEAN``)

    S(x)_i = concat_h [ sum_{j <= i} <R_i C_i, R_j B_j> exp(A_h sum_{t=j+1}^{i} Delta_t)
                        Delta_j x_j W_x^h  +  D_h x_i W_x^h ] W_out,

with B, C, Delta and the values computed from the current tokens x(t). The field is
causal (token i moves under tokens j <= i only), time-independent, and its kernel is
not normalised over j (no softmax: the weights are not a probability row, unlike every
``OperatorField``). The positions are 0..n-1; RoPE makes the kernel depend on i - j only.
Depth is time: a Cheems SSD block x + S(RMSNorm(x)) is one Euler step of the R^d flow of
S o RMSNorm (or of the sphere flow, where |x_i| = 1 and the norm is the identity).
``LieTrotter(SSDField(...), CDMoE(...))`` is the Cheems SSD block with its MoE sublayer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from attention.array_api import Array
from attention.ssd import FORMS, StateSpaceDuality
from dynamics.fields.base import Field
from dynamics.space import SPHERE, Euclidean, Sphere
from dynamics.validation import check_finite


@dataclass(frozen=True)
class SSDField(Field):
    """dx/dt = P^perp_x S(x) (sphere) or S(x) (R^d); see the module docstring.

    ssd:   a ``StateSpaceDuality`` mapping d features to d (d_out = d_in);
    form:  how S is computed ("chunked", "recurrent", "quadratic": the same numbers);
    chunk: the chunk length of the chunked form.
    """

    ssd: Any
    space: Sphere | Euclidean = field(default=SPHERE)
    form: str = "chunked"
    chunk: int = 16

    time_dependent: ClassVar[bool] = False
    batch_shared: ClassVar[tuple[str, ...]] = ("ssd",)  # its weights serve every member

    def __post_init__(self) -> None:
        if not isinstance(self.ssd, StateSpaceDuality):
            raise TypeError(
                f"ssd must be an attention.ssd.StateSpaceDuality, got {type(self.ssd).__name__}"
            )
        if not isinstance(self.space, (Sphere, Euclidean)):
            raise TypeError("an SSD field lives on SPHERE or EUCLIDEAN")
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {self.form!r}")
        if not isinstance(self.chunk, int) or self.chunk < 1:
            raise ValueError(f"chunk must be a positive integer, got {self.chunk!r}")
        if self.ssd.d_out != self.ssd.d_in:
            raise ValueError(
                f"a flow needs S: R^d -> R^d; this SSD maps {self.ssd.d_in} features to "
                f"{self.ssd.d_out} (heads x head_dim = {self.ssd.n_heads * self.ssd.head_dim}): "
                f"give it an output map W_out of shape ({self.ssd.n_heads * self.ssd.head_dim}, "
                f"{self.ssd.d_in}) (StateSpaceDuality.init(..., output=True))"
            )

    def check(self, x: Array) -> None:
        if x.shape[-1] != self.ssd.d_in:
            raise ValueError(
                f"the SSD takes d = {self.ssd.d_in} features, tokens have {x.shape[-1]}"
            )

    def on(self, like: Array) -> SSDField:
        ssd = self.ssd.on(like)
        for name in StateSpaceDuality.ARRAYS:
            value = getattr(ssd, name)
            if value is not None:
                check_finite(f"SSD parameter {name}", value)
        return replace(self, ssd=ssd)

    def drive(self, t: Any, x: Array) -> Array:
        """S(x) before projection, shape (batch, n, d)."""
        return self.ssd.forward(x, form=self.form, chunk=self.chunk)

    def __call__(self, t: Any, x: Array) -> Array:
        return self.space.project(x, self.drive(t, x))
