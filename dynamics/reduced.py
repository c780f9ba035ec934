"""The reduced solver: with V = I the flow lives in the span of the initial tokens.

If V = I (any Q, K), every velocity P^perp_{x_i} sum_j A_ij x_j is a combination of the
tokens, so X(t) = C(t) X(0) stays in span{x_j(0)} (dimension r <= n). Take an
orthonormal basis U (d x r) of that span (QR of X(0)^T) and coordinates y = U^T x.
U is an isometry onto the span, so

    <x_i, x_j> = <y_i, y_j>,    <Q x_i, K x_j> = y_i^T (U^T Q^T K U) y_j,

and the field in y is the same field in dimension r with the bilinear form U^T Q^T K U.
Every integrator of the package is equivariant under isometries (retraction and the
error norm use Euclidean norms of tokens), so integrating y and mapping back
X = Y U^T reproduces the full solver up to rounding, at the cost of dimension r
instead of d: the paper's d = 1024, n = 32 phase diagrams cost what d = 32 costs.
"""

from __future__ import annotations

from attention.array_api import Array, namespace


def span_basis(x0: Array) -> Array:
    """Orthonormal U (batch, d, r), r = min(n, d), whose columns span the tokens of x0."""
    xp = namespace(x0)
    q, _ = xp.linalg.qr(xp.matrix_transpose(x0))
    return q


def to_span(x: Array, basis: Array) -> Array:
    """Coordinates y = x U, shape (batch, n, r)."""
    return x @ basis


def from_span(y: Array, basis: Array) -> Array:
    """Back to R^d: x = y U^T; y may carry extra axes after the batch (batch, T, n, r)."""
    xp = namespace(y)
    ut = xp.matrix_transpose(basis)
    if y.ndim == 4:
        ut = ut[:, None]
    return y @ ut


def reducible(field, x0: Array) -> bool:
    """True when the reduced solver is exact and cheaper-or-equal: V = I and d >= n."""
    n, d = x0.shape[-2], x0.shape[-1]
    return field.span_preserving and d >= n and x0.ndim == 3
