"""Reference attention: the n x m weight matrix, written once for every backend.

For queries q (..., n, e), keys k (..., m, e), values v (..., m, f) and an inverse
temperature beta (a scalar or an array broadcasting against (..., 1, 1)):

    s_ij = beta <q_i, k_j> + b_ij,             masked entries removed
    softmax:     A_ij = e^{s_ij} / sum_l e^{s_il}          (SA, paper (2.4)-(2.5))
    usa:         A_ij = e^{s_ij} / m                       (USA, paper (2.6))
    usa-shifted: A_ij = e^{s_ij - beta} / m                (2410.06833: USA run at time e^{-beta} t)

and ``attend`` returns A v. These functions materialise the n x m matrix: they are
the definition that every fast path (SDPA, chunked, Triton) is tested against.
A row whose mask allows no key gets zero weights, never NaN.
"""

from __future__ import annotations

from typing import Any, Literal

from attention.backend import Array, namespace

Normalization = Literal["softmax", "usa", "usa-shifted"]
NORMALIZATIONS: tuple[str, ...] = ("softmax", "usa", "usa-shifted")


def check_normalization(normalization: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
        )


def causal_mask(n: int, m: int | None = None, *, like: Array) -> Array:
    """Boolean (n, m) mask, True where key j may be seen by query i (j <= i)."""
    xp = namespace(like)
    m = n if m is None else m
    rows = xp.arange(n)[:, None]
    cols = xp.arange(m)[None, :]
    if hasattr(like, "device") and not isinstance(like.device, str):
        rows = xp.asarray(rows, device=like.device)
        cols = xp.asarray(cols, device=like.device)
    return cols <= rows


def scores(q: Array, k: Array, beta: Any, bias: Array | None = None) -> Array:
    """beta <q_i, k_j> (+ bias), shape (..., n, m)."""
    xp = namespace(q, k)
    s = beta * (q @ xp.matrix_transpose(k))
    return s if bias is None else s + bias


def attention_weights(
    q: Array,
    k: Array,
    beta: Any,
    *,
    normalization: Normalization = "softmax",
    causal: bool = False,
    mask: Array | None = None,
    bias: Array | None = None,
) -> Array:
    """The attention matrix A (..., n, m) defined in the module docstring."""
    check_normalization(normalization)
    xp = namespace(q, k)
    s = scores(q, k, beta, bias)
    n, m = s.shape[-2], s.shape[-1]
    allowed = mask
    if causal:
        c = causal_mask(n, m, like=s)
        allowed = c if allowed is None else xp.logical_and(allowed, c)
    if normalization == "softmax":
        if allowed is not None:
            s = xp.where(allowed, s, -xp.inf)
        top = xp.max(s, axis=-1, keepdims=True)
        top = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
        w = xp.exp(s - top)
        z = xp.sum(w, axis=-1, keepdims=True)
        return w / xp.where(z > 0, z, xp.ones_like(z))
    if normalization == "usa-shifted":
        s = s - beta
    w = xp.exp(s) / m
    if allowed is not None:
        w = xp.where(allowed, w, xp.zeros_like(w))
    return w


def attend(
    q: Array,
    k: Array,
    v: Array,
    beta: Any,
    *,
    normalization: Normalization = "softmax",
    causal: bool = False,
    mask: Array | None = None,
    bias: Array | None = None,
) -> Array:
    """A v with A from :func:`attention_weights`; shape (..., n, f). Materialises A."""
    a = attention_weights(
        q, k, beta, normalization=normalization, causal=causal, mask=mask, bias=bias
    )
    return a @ v


def attend_chunked(
    q: Array,
    k: Array,
    v: Array,
    beta: Any,
    *,
    normalization: Normalization = "softmax",
    causal: bool = False,
    chunk: int = 1024,
) -> Array:
    """Same result as :func:`attend`, computed in blocks of ``chunk`` query rows.

    Memory is O(chunk * m) per batch element instead of O(n * m). Each block uses
    its own row maxima, so it is as stable as the dense softmax.
    """
    check_normalization(normalization)
    xp = namespace(q, k, v)
    n, m = q.shape[-2], k.shape[-2]
    if n <= chunk:
        return attend(q, k, v, beta, normalization=normalization, causal=causal)
    kt = xp.matrix_transpose(k)
    blocks = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        s = beta * (q[..., start:stop, :] @ kt)
        if causal:
            rows = xp.arange(start, stop)[:, None]
            cols = xp.arange(m)[None, :]
            allowed = cols <= rows
            if hasattr(s, "device") and not isinstance(s.device, str):
                allowed = xp.asarray(allowed, device=s.device)
            s = xp.where(allowed, s, -xp.inf)
        top = xp.max(s, axis=-1, keepdims=True)
        w = xp.exp(s - top)
        out = w @ v
        if normalization == "softmax":
            out = out / xp.sum(w, axis=-1, keepdims=True)
        else:
            shift = beta if normalization == "usa-shifted" else 0.0
            out = out * (xp.exp(top - shift) / m)
        blocks.append(out)
    return xp.concat(blocks, axis=-2)

