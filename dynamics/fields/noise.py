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
from dataclasses import dataclass, replace
from typing import Any

from attention.backend import Array


@dataclass(frozen=True)
class Noisy:
    """``field`` with additive noise of strength sigma = sqrt(2/kappa), kappa > 0 finite."""

    field: Any
    kappa: float

    def __post_init__(self) -> None:
        if not callable(self.field) or not hasattr(self.field, "space"):
            raise TypeError("Noisy wraps a field: a callable (t, x) -> velocity with a .space")
        if isinstance(self.kappa, bool) or not isinstance(self.kappa, (int, float)):
            raise TypeError(f"kappa must be a real number, got {self.kappa!r}")
        if not (math.isfinite(self.kappa) and self.kappa > 0):
            raise ValueError(
                f"kappa must be finite and > 0 (noise strength sqrt(2/kappa)), got {self.kappa!r}"
            )

    @property
    def sigma(self) -> float:
        """Diffusion coefficient sqrt(2/kappa)."""
        return math.sqrt(2.0 / self.kappa)

    @property
    def space(self):
        return self.field.space

    @property
    def time_dependent(self) -> bool:
        return bool(getattr(self.field, "time_dependent", True))

    span_preserving = False  # noise leaves the span of the initial tokens

    def check(self, x: Array) -> None:
        if hasattr(self.field, "check"):
            self.field.check(x)

    def on(self, like: Array) -> Noisy:
        return replace(self, field=self.field.on(like)) if hasattr(self.field, "on") else self

    def drive(self, t: Any, x: Array) -> Array:
        """The drift's unprojected drive (the drift itself if it has none)."""
        inner = getattr(self.field, "drive", None)
        return inner(t, x) if inner is not None else self.field(t, x)

    def __call__(self, t: Any, x: Array) -> Array:
        """The drift f(t, x)."""
        return self.field(t, x)
