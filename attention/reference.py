"""Reference attention: the n x m weight matrix, written once for every backend.

For queries q (..., n, e), keys k (..., m, e), values v (..., m, f) and an inverse
temperature beta (a scalar or an array broadcasting against (..., 1, 1)):

    s_ij = beta <q_i, k_j> + b_ij,             masked entries removed
    softmax:     A_ij = e^{s_ij} / sum_l e^{s_il}          (SA, paper (2.4)-(2.5))
    usa:         A_ij = e^{s_ij} / m                       (USA, paper (2.6))
    usa-shifted: A_ij = e^{s_ij - beta} / m                (2410.06833: USA run at time e^{-beta} t)

and ``attend`` returns A v. With grouped heads (``grouped_weights``), queries q (B, H, n, e)
read keys k (B, G, m, e) with G | H: query head h reads key/value group h // (H/G), as in
GQA and torch's ``enable_gqa``; "sinkhorn" (``attention.sinkhorn``) is a fourth
normalisation there. These functions materialise the n x m matrix: they are the
definition that every fast path of ``attention.router`` is tested against.
A boolean mask that leaves a query row with no key (with ``causal``: no key j <= i) is
refused with a ValueError naming the rows (``attention.masks.check_rows``); a row is never
silently zero or NaN.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from attention.array_api import Array, device, namespace
from attention.masks import as_backend_mask, check_rows
from attention.sinkhorn import sinkhorn_weights

Normalization = Literal["softmax", "usa", "usa-shifted"]
NORMALIZATIONS: tuple[str, ...] = ("softmax", "usa", "usa-shifted")
NORMALIZATIONS_ALL: tuple[str, ...] = (*NORMALIZATIONS, "sinkhorn")


def check_normalization(normalization: str, allowed: tuple[str, ...] = NORMALIZATIONS) -> None:
    if normalization not in allowed:
        raise ValueError(f"normalization must be one of {allowed}, got {normalization!r}")


def causal_mask(n: int, m: int | None = None, *, like: Array, start: int = 0) -> Array:
    """Boolean (n, m) mask, True where key j may be seen by query i (j <= i), for the
    queries start..start+n-1, on the backend and device of ``like``."""
    xp, where = namespace(like), device(like)
    m = n if m is None else m
    return xp.arange(m, device=where)[None, :] <= xp.arange(start, start + n, device=where)[:, None]


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
    if mask is not None:
        check_rows(allowed)
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


def attend(q: Array, k: Array, v: Array, beta: Any, **options: Any) -> Array:
    """A v with A from :func:`attention_weights` (same keyword options: normalization,
    causal, mask, bias); shape (..., n, f). Materialises A."""
    return attention_weights(q, k, beta, **options) @ v


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
            s = xp.where(causal_mask(stop - start, m, like=s, start=start), s, -xp.inf)
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


# -- grouped heads ---------------------------------------------------------------------


def as_batch_of_heads(q: Array, k: Array, v: Array, beta: Any):
    """(q, k, v, beta, lead): q (..., n, e), k (..., m, e), v (..., m, f) with broadcasting
    leading axes ``lead`` as one batch of one head, q (L, 1, n, e) and k, v (L | 1, 1, m, .)
    (one member where their leading axes are all 1; k stays q where it is q); beta a number,
    or broadcasting against (..., 1, 1) and then (L, 1, 1, 1)."""
    lead = tuple(np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))
    L = math.prod(lead)

    def heads(a, shared=True):
        if shared and a.shape[:-2] != lead and all(s == 1 for s in a.shape[:-2]):
            return a.reshape(1, 1, *a.shape[-2:])
        if a.shape[:-2] != lead:
            a = namespace(a).broadcast_to(a, (*lead, *a.shape[-2:]))
        return a.reshape(L, 1, *a.shape[-2:])

    if np.ndim(beta):
        bp = namespace(beta)
        beta = bp.reshape(bp.broadcast_to(beta, (*lead, 1, 1)), (L, 1, 1, 1))
    q4 = heads(q, shared=False)
    k4, v4 = (q4 if a is q else heads(a) for a in (k, v))
    return q4, k4, v4, beta, lead


def check_heads(q: Array, k: Array, v: Array) -> tuple[int, int, int]:
    """(B, H, G) for q (B, H, n, e), k (B, G, m, e), v (B, G, m, f); raise if they do not fit."""
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(
            "expected q (B, H, n, e), k (B, G, m, e), v (B, G, m, f); got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    B, H, _, e = q.shape
    G = k.shape[1]
    if k.shape[-1] != e:
        raise ValueError(f"query and key head dimensions differ: {e} and {k.shape[-1]}")
    if v.shape[1] != G or v.shape[2] != k.shape[2]:
        raise ValueError(f"keys {tuple(k.shape)} and values {tuple(v.shape)} do not match")
    if H % G:
        raise ValueError(f"{H} query heads are not divisible into {G} key/value groups")
    if k.shape[0] not in (1, B) or v.shape[0] not in (1, B):
        raise ValueError(f"batch sizes differ: q {B}, k {k.shape[0]}, v {v.shape[0]}")
    return B, H, G


def four_d(a: Any) -> Any:
    """A mask or bias as (B | 1, H | 1, n | 1, m)."""
    if a is None or a.ndim == 4:
        return a
    if a.ndim in (2, 3):
        return a[None, None] if a.ndim == 2 else a[:, None]
    raise ValueError(f"masks and biases must have 2 to 4 axes, got shape {tuple(a.shape)}")


def grouped(a: Array | None, G: int, r: int) -> Array | None:
    """(B', H', ...) with H' in {1, G r} -> (B', G | 1, r | 1, ...): heads split by group."""
    if a is None or isinstance(a, (int, float)) or a.ndim < 2:
        return a
    xp = namespace(a)
    Bp, Hp = a.shape[0], a.shape[1]
    if Hp == 1:
        return a[:, :, None]
    if Hp != G * r:
        raise ValueError(f"a mask or bias has {Hp} heads, the operator has {G * r}")
    return xp.reshape(a, (Bp, G, r, *a.shape[2:]))


def grouped_weights(
    q: Array,
    k: Array,
    scale: Any,
    *,
    mask: Any = None,
    causal: bool = False,
    bias: Array | None = None,
    normalization: str = "softmax",
    sinkhorn_iterations: int = 3,
) -> Array:
    """The weights P (B, H, n, m) of q (B, H, n, e) over k (B, G, m, e): scores
    ``scale`` <q^h_i, k^g_j> + b^h_ij, normalised over the allowed keys (module docstring).

    mask: host or backend booleans (n, m), (B, n, m) or (B|1, H|1, n, m); scale: a number
    or an array broadcasting to (B, H, 1, 1)."""
    B, H, n, e = q.shape
    G = k.shape[1]
    r = H // G
    xp = namespace(q, k)
    q5 = xp.reshape(q, (B, G, r, n, e))
    k5 = k[:, :, None]
    m5 = None if mask is None else grouped(four_d(as_backend_mask(mask, q)), G, r)
    b5, s5 = grouped(four_d(bias), G, r), grouped(scale, G, r)
    if normalization == "sinkhorn":
        s = scores(q5, k5, s5, b5)
        if causal:
            c = causal_mask(n, k.shape[2], like=s)
            m5 = c if m5 is None else xp.logical_and(m5, c)
        w = sinkhorn_weights(s, m5, sinkhorn_iterations)
    else:
        w = attention_weights(
            q5, k5, s5, normalization=normalization, causal=causal, mask=m5, bias=b5
        )
    return xp.reshape(w, (B, H, n, k.shape[2]))
