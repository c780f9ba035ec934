"""Pure self-attention seen in rescaled coordinates z = e^{-tV} x (paper (9.2)-(9.3)).

Pure self-attention (9.1), x_dot_i = sum_j A_ij(x) V x_j in R^d, grows or shrinks along
e^{tV}; in z_i(t) = e^{-tV} x_i(t) (the stand-in for LayerNorm of 2305.05465) it reads

    z_dot_i = sum_j A_ij(t) V z_j - V z_i,
    A_ij(t) = attention(beta <Q e^{tV} z_i, K e^{tV} z_j>)  (the same matrix as for x),

which for row-stochastic A (softmax) is (9.3): z_dot_i = sum_j A_ij V (z_j - z_i). The field
depends on t through e^{tV}, so V must be constant; Q and K may depend on time.
``to_rescaled``/``from_rescaled`` convert between x and z.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from attention.array_api import Array, asarray_like, expm, namespace
from attention.router import attend_fast
from dynamics.fields.attention import PureSelfAttention, SelfAttention
from dynamics.fields.base import Wrapper
from dynamics.space import EUCLIDEAN


def _times_like(t: Any, like: Array) -> Array:
    """t as an array broadcasting against (batch, d, d): a scalar, or (batch, 1, 1)."""
    tt = asarray_like(np.asarray(t, dtype=float), like)
    return tt if tt.ndim == 0 else tt.reshape(-1, 1, 1)


def flow_matrix(t: Any, V: Array | None, like: Array) -> Array:
    """e^{tV} (d, d) or (batch, d, d); t a scalar or (batch,), V None for the identity."""
    xp = namespace(like)
    tt = _times_like(t, like)
    if V is None:
        d = like.shape[-1]
        eye = xp.eye(d, dtype=like.dtype)
        return xp.exp(tt) * asarray_like(eye, like)
    return expm(tt * asarray_like(V, like))


def to_rescaled(t: Any, x: Array, V: Array | None) -> Array:
    """z = e^{-tV} x for tokens x (batch, n, d) (as rows: z_i^T = x_i^T e^{-tV^T})."""
    xp = namespace(x)
    return x @ xp.matrix_transpose(flow_matrix(-np.asarray(t, dtype=float), V, x))


def from_rescaled(t: Any, z: Array, V: Array | None) -> Array:
    """x = e^{tV} z for tokens z (batch, n, d)."""
    xp = namespace(z)
    return z @ xp.matrix_transpose(flow_matrix(t, V, z))


@dataclass(frozen=True)
class RescaledSelfAttention(Wrapper):
    """Pure self-attention (9.1) in z = e^{-tV} x; see the module docstring.

    attention: the pure self-attention in x (``PureSelfAttention(beta, Q=, K=, V=)``) whose
               beta, Q, K (or QK), V, normalization and mask define A; V must be constant
    """

    attention: SelfAttention = field(default_factory=PureSelfAttention)

    def __post_init__(self) -> None:
        if not isinstance(self.attention, SelfAttention):
            raise TypeError("attention must be a SelfAttention (e.g. PureSelfAttention(beta, ...))")
        if callable(self.attention.V):
            raise ValueError("the rescaling z = e^{-tV} x needs a constant value matrix V")

    INNER: ClassVar[str] = "attention"
    time_dependent = True  # e^{tV} enters the weights

    space = EUCLIDEAN

    def weights_input(self, t: Any, z: Array) -> Array:
        """e^{tV} z_i, the tokens whose attention matrix drives z (that is, x)."""
        return from_rescaled(t, z, self.attention.V)

    def __call__(self, t: Any, z: Array) -> Array:
        """z_dot (batch, n, d) = A(t) (V z) - V z."""
        a = self.attention
        q, k, _ = a.queries_keys_values(t, self.weights_input(t, z))
        xp = namespace(z)
        v = z if a.V is None else z @ xp.matrix_transpose(a.V)
        return attend_fast(
            q, k, v, a.beta, normalization=a.normalization, causal=a.causal, path=a.path
        ) - v

    drive = __call__
