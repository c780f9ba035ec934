"""Self-attention as a vector field (paper (2.3)-(2.7), (9.1)).

For tokens x (batch, n, d) the *drive* of one head is

    D_i(x) = sum_j A_ij V x_j,     A = attention(beta <Q x_i, K x_j>)   (row-normalised or 1/n)

and the field is P^perp_{x_i} D_i on the sphere (SA, USA, causal CSA) or D_i itself in
R^d (pure self-attention (9.1)). Q, K may be non-square (k, d); the bilinear form
QK = Q^T K (d, d) may be given instead, as in the authors' code. Every parameter may be
shared (2-d), per batch member (3-d), or a callable of time t returning either.
``None`` means the identity. The multi-head field (2.7) sums heads.

With V = I (any Q, K) the field keeps every token in the span of the initial tokens;
``restricted(U)`` is the same field in the orthonormal coordinates y = U^T x of that
span, which is what the reduced solver integrates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from attention.array_api import (
    Array,
    asarray_like,
    backend_of,
    check_real_dtype,
    namespace,
    to_numpy,
)
from attention.reference import Normalization, check_normalization
from attention.router import PATHS, attend_fast
from dynamics.fields.base import Field, Fusion, check_batch, per_member
from dynamics.space import EUCLIDEAN, SPHERE, Euclidean, Sphere
from dynamics.validation import check_exponent, check_finite, check_real

Param = Any  # None (identity) | array (k, d) or (batch, k, d) | callable t -> array


def param_at(param: Param, t: Any, like: Array) -> Array | None:
    """The value of a (possibly time-dependent) parameter at time t, on x's backend.

    ``t`` is a scalar, or an array (batch,) of per-member times (adaptive steps), in
    which case a callable is evaluated member by member and stacked.
    """
    if param is None or not callable(param):
        return param
    if np.ndim(t) == 0 or getattr(t, "ndim", 0) == 0:
        return asarray_like(param(t), like)
    xp = namespace(like)
    values = [asarray_like(param(float(tb)), like) for tb in np.asarray(t, dtype=float)]
    return xp.stack([v if v.ndim == 2 else v[b] for b, v in enumerate(values)])


def _spectral(m: Param) -> float:
    """The largest spectral norm of a matrix (or stack of matrices); 1 for the identity."""
    if m is None:
        return 1.0
    a = np.asarray(to_numpy(m) if hasattr(m, "shape") else m, dtype=float)
    return float(np.max(np.linalg.norm(a, ord=2, axis=(-2, -1))))


def _mT(a: Array) -> Array:
    return namespace(a).matrix_transpose(a)


def _convert(param: Param, like: Array) -> Param:
    if param is None:
        return None
    if callable(param):
        return param
    value = asarray_like(param, like)
    check_finite("attention parameter", value)
    return value


SYMMETRIC_MIN_N = 2048
"""Tokens per member from which SA's velocity on the CPU takes ``attention.symmetric``
(measured 2.5-5x faster than SDPA with the projection at n = 4096 and 16384, d = 3; at
smaller n the dense small path and SDPA are fast enough)."""


def _host_float(x: Array) -> bool:
    """float32/float64 numpy arrays or CPU torch tensors (not traced, no autograd)."""
    backend = backend_of(x)
    if backend == "numpy":
        return x.dtype in (np.float32, np.float64)
    if backend == "torch":
        import torch

        return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
                and not (torch.is_grad_enabled() and x.requires_grad))
    return False


def _symmetric_velocity(x: Array, beta: float) -> Array:
    """``attention.symmetric.symmetric_rhs`` on numpy or CPU torch tokens (no copy)."""
    from attention.symmetric import symmetric_rhs  # numba, compiled on first use

    if backend_of(x) == "torch":
        import torch

        return torch.from_numpy(symmetric_rhs(x.detach().numpy(), beta))
    return symmetric_rhs(x, beta)


@dataclass(frozen=True)
class SelfAttention(Field):
    """One attention head as a field; see the module docstring for the equations.

    beta:          inverse temperature (any real; negative is repulsive), a scalar or (batch,),
                   or a callable t -> either (a schedule in depth; t is a number, or (batch,)
                   under the adaptive driver, so write it elementwise)
    Q, K, V, QK:   parameters (None = identity); give QK or (Q, K), not both
    normalization: "softmax" (SA), "usa" (1/n) or "usa-shifted" (e^{-beta}/n)
    causal:        token i attends to j <= i only (CSA)
    space:         SPHERE (projected field) or EUCLIDEAN (pure self-attention (9.1))
    path:          attention path, see ``attention.router``
    """

    beta: Any = 1.0
    Q: Param = None
    K: Param = None
    V: Param = None
    QK: Param = None
    normalization: Normalization = "softmax"
    causal: bool = False
    space: Sphere | Euclidean = field(default=SPHERE)
    path: str = "auto"

    def __post_init__(self) -> None:
        check_normalization(self.normalization)
        if self.path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {self.path!r}")
        if self.QK is not None and (self.Q is not None or self.K is not None):
            raise ValueError("give either the bilinear form QK or the pair (Q, K), not both")
        if not isinstance(self.space, (Sphere, Euclidean)):
            raise TypeError("SelfAttention lives on SPHERE or EUCLIDEAN")
        if not callable(self.beta):
            check_real("beta", self.beta)
        for name in ("Q", "K", "V", "QK"):
            p = getattr(self, name)
            if p is not None and not callable(p):
                check_real_dtype(name, p)

    # -- parameters -----------------------------------------------------------------
    @property
    def time_dependent(self) -> bool:
        return any(callable(p) for p in (self.beta, self.Q, self.K, self.V, self.QK))

    @property
    def span_preserving(self) -> bool:
        """V = I: tokens stay in the span of their initial positions."""
        return self.V is None

    def check(self, x: Array) -> None:
        """Raise if the parameters do not fit tokens x (batch, n, d)."""
        batch, _, d = x.shape
        for name in ("Q", "K", "V", "QK"):
            p = getattr(self, name)
            if p is None:
                continue
            value = p(0.0) if callable(p) else p
            shape = tuple(value.shape)
            rows_ok = name not in ("V", "QK") or shape[-2] == d
            if len(shape) not in (2, 3) or shape[-1] != d or not rows_ok:
                want = f"({d}, {d})" if name in ("V", "QK") else f"(k, {d})"
                raise ValueError(f"{name} must have shape {want} or (batch, ...), got {shape}")
            if len(shape) == 3 and shape[0] not in (1, batch):
                raise ValueError(f"{name} has batch {shape[0]}, tokens have batch {batch}")
        if self.Q is not None and self.K is not None:
            kq = (self.Q(0.0) if callable(self.Q) else self.Q).shape[-2]
            kk = (self.K(0.0) if callable(self.K) else self.K).shape[-2]
            if kq != kk:
                raise ValueError(f"Q and K must have the same number of rows, got {kq} and {kk}")
        check_batch("beta", self.beta, batch)
        bound = self.exponent_bound(x)
        if bound is not None:
            check_exponent(
                f"{type(self).__name__}(normalization={self.normalization!r})", bound, x,
                what="the unnormalised weight e^{beta <Q x_i, K x_j>} (and with it the velocity)",
                fix="use SA (softmax: bounded weights), normalization='usa-shifted' (USA in the "
                    "time e^{-beta} t), or a smaller beta (rescale time)",
            )

    def exponent_bound(self, x: Array) -> float | None:
        """An upper bound on the exponents of the unnormalised weights at the states x:
        |beta| |Q| |K| max_i |x_i|^2 (spectral norms; |x_i| = 1 on the sphere), minus beta
        for the shifted USA. None for softmax (bounded weights) or a callable parameter."""
        if self.normalization == "softmax" or callable(self.beta):
            return None
        if any(callable(p) for p in (self.Q, self.K, self.QK)):
            return None
        beta = np.ravel(np.asarray(to_numpy(self.beta) if hasattr(self.beta, "shape")
                                   else self.beta, dtype=float))
        if self.QK is not None:
            score = _spectral(self.QK)
        else:
            score = _spectral(self.Q) * _spectral(self.K)
        if not isinstance(self.space, Sphere):
            score *= float(np.max(np.sum(to_numpy(x) ** 2, axis=-1), initial=0.0))
        shift = beta if self.normalization == "usa-shifted" else 0.0
        return float(np.max(np.abs(beta) * score - shift))

    def on(self, like: Array) -> SelfAttention:
        """This field with its arrays on the backend, dtype and device of ``like``."""
        return replace(
            self,
            beta=self.beta if callable(self.beta) else per_member(self.beta, like),
            Q=_convert(self.Q, like),
            K=_convert(self.K, like),
            V=_convert(self.V, like),
            QK=_convert(self.QK, like),
        )

    # -- the field --------------------------------------------------------------------
    def queries_keys_values(self, t: Any, x: Array) -> tuple[Array, Array, Array]:
        Q, K, V, QK = (param_at(p, t, x) for p in (self.Q, self.K, self.V, self.QK))
        if QK is not None:
            q, k = x @ QK, x
        else:
            q = x if Q is None else x @ _mT(Q)
            k = x if K is None else x @ _mT(K)
        v = x if V is None else x @ _mT(V)
        return q, k, v

    def drive(self, t: Any, x: Array) -> Array:
        """sum_j A_ij V x_j, before any projection; shape (batch, n, d)."""
        q, k, v = self.queries_keys_values(t, x)
        beta = per_member(self.beta(t), x) if callable(self.beta) else self.beta
        return attend_fast(
            q, k, v, beta, normalization=self.normalization, causal=self.causal,
            path=self.path,
        )

    def __call__(self, t: Any, x: Array) -> Array:
        if self._symmetric(x):
            return _symmetric_velocity(x, float(self.beta))
        return self.space.project(x, self.drive(t, x))

    def _symmetric(self, x: Array) -> bool:
        """Whether the large-n symmetric kernel (``attention.symmetric``: one shift, each
        exponential once per pair, the projection fused) computes this call: SA on the
        sphere with Q = K = V = I, one beta >= 0, float32/float64 numpy or CPU torch tokens,
        n >= SYMMETRIC_MIN_N, path "auto"."""
        return (self.path == "auto" and self.normalization == "softmax" and not self.causal
                and isinstance(self.space, Sphere) and x.shape[-2] >= SYMMETRIC_MIN_N
                and all(p is None for p in (self.Q, self.K, self.V, self.QK))
                and isinstance(self.beta, (int, float)) and self.beta >= 0
                and _host_float(x))

    def fusion(self) -> Fusion | None:
        """One head; a callable beta has no fused form."""
        if callable(self.beta):
            return None
        return Fusion((self,), "tangent" if isinstance(self.space, Sphere) else None)

    # -- reduction to the span of the initial tokens -----------------------------------
    def bilinear_form(self, t: Any, like: Array) -> Array | None:
        """Q^T K (or QK) at time t; None for Q = K = I."""
        Q, K, QK = (param_at(p, t, like) for p in (self.Q, self.K, self.QK))
        if QK is not None:
            return QK
        if Q is None:
            return K
        return _mT(Q) if K is None else _mT(Q) @ K

    def restricted(self, basis: Array) -> SelfAttention:
        """The field in coordinates y = U^T x, U = ``basis`` (batch, d, r) orthonormal.

        Exact when V = I and every token lies in span(U): <Q x_i, K x_j> = y_i^T U^T Q^T K U y_j.
        """
        if not self.span_preserving:
            raise ValueError("only fields with V = I preserve the span of the tokens")
        U, Ut = basis, _mT(basis)
        if self.Q is None and self.K is None and self.QK is None:
            reduced: Param = None
        elif self.time_dependent:
            def reduced(t, _f=self, _U=U, _Ut=Ut):
                return _Ut @ _f.bilinear_form(t, _Ut) @ _U
        else:
            reduced = Ut @ self.bilinear_form(0.0, Ut) @ U
        return replace(self, Q=None, K=None, V=None, QK=reduced)


@dataclass(frozen=True)
class MultiHeadAttention(Field):
    """Multi-head attention (2.7): the drives of the heads add up; one projection."""

    heads: tuple[SelfAttention, ...]

    def __post_init__(self) -> None:
        if len(self.heads) == 0:
            raise ValueError("MultiHeadAttention needs at least one head")
        object.__setattr__(self, "heads", tuple(self.heads))
        spaces = {type(h.space) for h in self.heads}
        if len(spaces) != 1:
            raise ValueError("all heads must live on the same space")

    @property
    def space(self):
        return self.heads[0].space

    @property
    def time_dependent(self) -> bool:
        return any(h.time_dependent for h in self.heads)

    @property
    def span_preserving(self) -> bool:
        return all(h.span_preserving for h in self.heads)

    def check(self, x: Array) -> None:
        for h in self.heads:
            h.check(x)

    def on(self, like: Array) -> MultiHeadAttention:
        return MultiHeadAttention(tuple(h.on(like) for h in self.heads))

    def drive(self, t: Any, x: Array) -> Array:
        total = self.heads[0].drive(t, x)
        for h in self.heads[1:]:
            total = total + h.drive(t, x)
        return total

    def __call__(self, t: Any, x: Array) -> Array:
        return self.space.project(x, self.drive(t, x))

    def restricted(self, basis: Array) -> MultiHeadAttention:
        return MultiHeadAttention(tuple(h.restricted(basis) for h in self.heads))

    def fusion(self) -> Fusion | None:
        """The heads in one launch when they share normalisation, causality and fuse alone."""
        first = self.heads[0]
        if any(h.fusion() is None or h.normalization != first.normalization
               or h.causal != first.causal for h in self.heads):
            return None
        return replace(first.fusion(), heads=self.heads)


def SA(beta: Any = 1.0, **kwargs: Any) -> SelfAttention:
    """Self-attention on the sphere, softmax normalisation (paper (2.6) 'SA')."""
    return SelfAttention(beta=beta, normalization="softmax", **kwargs)


def USA(beta: Any = 1.0, **kwargs: Any) -> SelfAttention:
    """Unnormalised self-attention: Z_i replaced by n (paper (2.6) 'USA')."""
    return SelfAttention(beta=beta, normalization="usa", **kwargs)


def PureSelfAttention(beta: Any = 1.0, **kwargs: Any) -> SelfAttention:
    """Self-attention in R^d without normalisation layer (paper (9.1))."""
    return SelfAttention(beta=beta, space=EUCLIDEAN, **kwargs)

