"""The normalisations of trained transformers, token by token on the last axis (d).

    LayerNorm(x) = gain * (x - mean(x)) / sqrt(var(x) + eps) + bias     (BERT, GPT-2, ALBERT)
    RMSNorm(x)   = gain * x / sqrt(mean(x^2) + eps)                     (Llama, Qwen2, DeepSeek)

with the population variance over the d features. Without gain, bias and eps, LayerNorm
maps a token to the sphere of radius sqrt(d) in the hyperplane orthogonal to (1, ..., 1),
and RMSNorm to the sphere of radius sqrt(d): the sphere of the paper up to a fixed scale,
which is why a Post-LN network is a flow on (a linear image of) the sphere. Both act on
numpy, torch and JAX arrays (``attention.array_api``); ``on(like)`` moves gain and bias.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from attention.array_api import Array, asarray_like, namespace


def _check(name: str, gain: Any, bias: Any, eps: float) -> None:
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"{name} needs a finite eps >= 0, got {eps!r}")
    for label, value in (("gain", gain), ("bias", bias)):
        if value is not None and len(np.shape(value)) != 1:
            raise ValueError(f"{name} {label} must be a vector (d,), got shape {np.shape(value)}")
    if gain is not None and bias is not None and np.shape(gain) != np.shape(bias):
        raise ValueError(f"{name} gain {np.shape(gain)} and bias {np.shape(bias)} differ")


@dataclass(frozen=True)
class LayerNorm:
    """gain * (x - mean) / sqrt(var + eps) + bias over the last axis; gain/bias None = 1/0."""

    gain: Any = None
    bias: Any = None
    eps: float = 1e-5

    def __post_init__(self) -> None:
        _check("LayerNorm", self.gain, self.bias, self.eps)

    @property
    def size(self) -> int | None:
        for value in (self.gain, self.bias):
            if value is not None:
                return int(np.shape(value)[0])
        return None

    def on(self, like: Array) -> LayerNorm:
        return replace(self, gain=_move(self.gain, like), bias=_move(self.bias, like))

    def standardize(self, x: Array) -> Array:
        """(x - mean) / sqrt(var + eps): LayerNorm before its gain and bias."""
        xp = namespace(x)
        centred = x - xp.mean(x, axis=-1, keepdims=True)
        var = xp.mean(centred * centred, axis=-1, keepdims=True)
        return centred / xp.sqrt(var + self.eps)

    def affine(self, u: Array) -> Array:
        """gain * u + bias: LayerNorm's last step."""
        y = u if self.gain is None else u * self.gain
        return y if self.bias is None else y + self.bias

    def coordinates(self, y: Array) -> Array:
        """(y - bias) / gain: the standardised u of an output y = LayerNorm(x) (gain != 0)."""
        u = y if self.bias is None else y - self.bias
        return u if self.gain is None else u / self.gain

    def __call__(self, x: Array) -> Array:
        return self.affine(self.standardize(x))


@dataclass(frozen=True)
class RMSNorm:
    """gain * x / sqrt(mean(x^2) + eps) over the last axis; gain None = 1."""

    gain: Any = None
    eps: float = 1e-6

    def __post_init__(self) -> None:
        _check("RMSNorm", self.gain, None, self.eps)

    @property
    def size(self) -> int | None:
        return None if self.gain is None else int(np.shape(self.gain)[0])

    def on(self, like: Array) -> RMSNorm:
        return replace(self, gain=_move(self.gain, like))

    def __call__(self, x: Array) -> Array:
        xp = namespace(x)
        y = x / xp.sqrt(xp.mean(x * x, axis=-1, keepdims=True) + self.eps)
        return y if self.gain is None else y * self.gain


Norm = LayerNorm | RMSNorm


def _move(value: Any, like: Array) -> Any:
    return None if value is None else asarray_like(value, like)
