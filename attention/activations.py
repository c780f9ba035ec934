"""Elementwise activations of feed-forward layers, written once for numpy, torch and JAX.

    relu(z) = max(z, 0)                 tanh(z)
    gelu(z) = z Phi(z) = z (1 + erf(z / sqrt 2)) / 2                      (exact; BERT)
    gelu_tanh(z) = z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) / 2         (GPT-2, ALBERT)
    silu(z) = z / (1 + e^{-z})                                            (Llama's SwiGLU)

``ACTIVATIONS`` maps each name to its function; ``HF_NAMES`` maps the names Hugging Face
configs use (``hidden_act``) to these.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from attention.array_api import Array, backend_of, namespace


def _erf(z: Array) -> Array:
    backend = backend_of(z)
    if backend == "torch":
        import torch

        return torch.special.erf(z)
    if backend == "jax":
        import jax.scipy.special

        return jax.scipy.special.erf(z)
    import scipy.special

    return scipy.special.erf(z)


def relu(z: Array) -> Array:
    """max(z, 0)."""
    xp = namespace(z)
    return xp.maximum(z, xp.zeros_like(z))


def tanh(z: Array) -> Array:
    return namespace(z).tanh(z)


def gelu(z: Array) -> Array:
    """Exact GELU z Phi(z) = z (1 + erf(z / sqrt 2)) / 2."""
    return 0.5 * z * (1.0 + _erf(z * (1.0 / math.sqrt(2.0))))


def gelu_tanh(z: Array) -> Array:
    """The tanh approximation of GELU (Hendrycks & Gimpel 2016), as GPT-2 computes it."""
    xp = namespace(z)
    return 0.5 * z * (1.0 + xp.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


def silu(z: Array) -> Array:
    """z sigmoid(z) = z / (1 + e^{-z})."""
    xp = namespace(z)
    return z / (1.0 + xp.exp(-z))


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": relu, "tanh": tanh, "gelu": gelu, "gelu_tanh": gelu_tanh, "silu": silu,
}

HF_NAMES: dict[str, str] = {
    "relu": "relu", "tanh": "tanh", "gelu": "gelu", "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh", "silu": "silu", "swish": "silu",
}


def activation(name: str) -> Callable[[Array], Array]:
    """The activation called ``name`` (one of ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {tuple(ACTIVATIONS)}") \
            from None
