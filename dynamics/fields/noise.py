"""Noise: any field plus Brownian motion of strength sqrt(2/kappa) (Survey §7, paper §2.9).

The noisy Transformer is the SDE

    dX_i = f_i(X) dt + sqrt(2/kappa) dW_i,

with W_i independent Brownian motions on the space of the field: on the sphere the
generator of the noise is (1/kappa) Laplacian, so a lone token (zero drift) decorrelates as
E<x(t), x(0)> = e^{-(d-1) t / kappa}; on angles each phase spreads with variance (2/kappa) t.
``Noisy(field, kappa)`` carries the drift and sigma = sqrt(2/kappa); simulate it with
``method="euler-maruyama"`` and an explicit ``seed`` (the scheme, in
``dynamics.integrators.schemes``, turns sigma into projected Gaussian kicks plus retraction).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from dynamics.fields.base import Field, Fusion, Wrapper


@dataclass(frozen=True)
class Noisy(Wrapper):
    """``field`` with additive noise of strength sigma = sqrt(2/kappa), kappa > 0 finite.

    The velocity and the drive are the drift's; the fused form is the noise around the
    drift's fused form.
    """

    field: Field
    kappa: float

    INNER: ClassVar[str] = "field"
    span_preserving = False  # noise leaves the span of the initial tokens

    def __post_init__(self) -> None:
        if not isinstance(self.field, Field):
            raise TypeError("Noisy wraps a field (a dynamics.Field, e.g. SA(beta))")
        if isinstance(self.kappa, bool) or not isinstance(self.kappa, (int, float)):
            raise TypeError(f"kappa must be a real number, got {self.kappa!r}")
        if not (math.isfinite(self.kappa) and self.kappa > 0):
            raise ValueError(
                f"kappa must be finite and > 0 (noise strength sqrt(2/kappa)), got {self.kappa!r}"
            )

    @property
    def sigma(self) -> float:  # type: ignore[override]
        """Diffusion coefficient sqrt(2/kappa)."""
        return math.sqrt(2.0 / self.kappa)

    def restricted(self, basis: Any) -> Field:
        return Field.restricted(self, basis)

    def fused(self, build: Callable[[Field, Fusion], Field]) -> Noisy | None:
        """The noise around the drift's fused form."""
        inner = self.field.fused(build)
        return None if inner is None else self.with_inner(inner)

    def drive(self, t: Any, x: Any) -> Any:
        """The drift's unprojected drive."""
        return self.field.drive(t, x)

    def __call__(self, t: Any, x: Any) -> Any:
        """The drift f(t, x)."""
        return self.field(t, x)
