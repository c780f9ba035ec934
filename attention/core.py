"""The attention core shared by every operator: grouped heads, mask, bias, normalisation.

For queries q (B, H, n, e), keys k (B, G, m, e) and values v (B, G, m, f) with G | H
(query head h reads key/value group h // (H/G), as in GQA and in torch's ``enable_gqa``):

    s^h_ij = scale <q^h_i, k^g_j> + b^h_ij,  P^h = normalise(s^h, mask),  o^h_i = sum_j P^h_ij v^g_j

Normalisations: "softmax", "usa" (e^s / m), "usa-shifted" and "sinkhorn". A row whose mask
allows no key gets zero weights, never NaN (operators refuse such masks beforehand).

Routes (each tested against "reference" on random inputs):

* ``"reference"`` - the dense matrix, array API (numpy, torch, JAX);
* ``"sdpa"``      - torch ``scaled_dot_product_attention`` (softmax; the mask and bias
  become its ``attn_mask``; shared KV heads through ``enable_gqa``);
* ``"flex"``      - torch FlexAttention (softmax; mask as a ``BlockMask`` built from the
  block layout, bias through ``score_mod``), see ``attention.flex``;
* ``"tiled"``     - the FlashAttention-2 online-softmax recurrence over the block layout
  (``attention.online_softmax``), the reference for kernels;
* ``"auto"``      - unmasked or causal, unbiased attention goes through
  ``attention.dispatch.attend_fast`` (SDPA for numpy and torch), other softmax
  attention on torch through SDPA, the rest through the reference.
"""

from __future__ import annotations

from typing import Any

from attention.backend import Array, backend_of, namespace
from attention.dispatch import attend_fast
from attention.masks import BlockLayout, as_backend_mask
from attention.reference import NORMALIZATIONS, attention_weights, scores
from attention.sinkhorn import sinkhorn_weights

NORMALIZATIONS_ALL: tuple[str, ...] = (*NORMALIZATIONS, "sinkhorn")
ROUTES: tuple[str, ...] = ("auto", "reference", "sdpa", "flex", "tiled")


def check_route(path: str) -> None:
    if path not in ROUTES:
        raise ValueError(f"path must be one of {ROUTES}, got {path!r}")


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


def _four_d(a: Any) -> Any:
    """A mask or bias as (B | 1, H | 1, n | 1, m)."""
    if a is None:
        return None
    if a.ndim == 2:
        return a[None, None]
    if a.ndim == 3:
        return a[:, None]
    if a.ndim == 4:
        return a
    raise ValueError(f"masks and biases must have 2 to 4 axes, got shape {tuple(a.shape)}")


def _grouped(a: Array | None, G: int, r: int) -> Array | None:
    """(B', H', n', m) with H' in {1, G r} -> (B', G | 1, r | 1, n', m)."""
    if a is None:
        return None
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
    """The attention weights P (B, H, n, m) of the module docstring (dense reference)."""
    B, H, n, e = q.shape
    G = k.shape[1]
    r = H // G
    xp = namespace(q, k)
    q5 = xp.reshape(q, (B, G, r, n, e))
    k5 = k[:, :, None]
    m4 = None if mask is None else _four_d(as_backend_mask(mask, q))
    b5 = _grouped(_four_d(bias), G, r)
    m5 = _grouped(m4, G, r)
    if normalization == "sinkhorn":
        s = scores(q5, k5, scale, b5)
        if causal:
            from attention.reference import causal_mask

            c = causal_mask(n, k.shape[2], like=s)
            m5 = c if m5 is None else xp.logical_and(m5, c)
        w = sinkhorn_weights(s, m5, sinkhorn_iterations)
    else:
        w = attention_weights(
            q5, k5, scale, normalization=normalization, causal=causal, mask=m5, bias=b5
        )
    return xp.reshape(w, (B, H, n, k.shape[2]))


def grouped_attention(
    q: Array,
    k: Array,
    v: Array,
    scale: Any,
    *,
    mask: Any = None,
    causal: bool = False,
    bias: Array | None = None,
    normalization: str = "softmax",
    sinkhorn_iterations: int = 3,
    path: str = "auto",
    layout: BlockLayout | None = None,
    flex_compiled: bool = True,
) -> Array:
    """o (B, H, n, f) = P v for the module docstring's P, through the chosen route.

    mask: None, host booleans (n, m) or (B, n, m), or backend booleans (B|1, H|1, n, m);
    causal: additionally require key index <= query index (q and k aligned at 0);
    bias: None or an array broadcasting to (B, H, n, m); layout: the block form of a 2-d
    mask, for the "flex" and "tiled" routes (built from ``mask`` when omitted);
    flex_compiled: False runs FlexAttention's unfused implementation (same semantics).
    """
    check_route(path)
    if normalization not in NORMALIZATIONS_ALL:
        raise ValueError(
            f"normalization must be one of {NORMALIZATIONS_ALL}, got {normalization!r}"
        )
    B, H, G = check_heads(q, k, v)
    n, m, f = q.shape[2], k.shape[2], v.shape[-1]
    backend = backend_of(q)
    softmax = normalization == "softmax"
    if path in ("sdpa", "flex") and (backend != "torch" or not softmax):
        raise ValueError(f"path={path!r} needs torch tensors and softmax normalisation")
    if path == "auto":
        if mask is None and bias is None and normalization in NORMALIZATIONS:
            return _via_dispatch(q, k, v, scale, normalization, causal)
        path = "sdpa" if backend == "torch" and softmax else "reference"
    if path == "sdpa":
        from attention.sdpa import sdpa_grouped

        return sdpa_grouped(q, k, v, scale, mask=mask, causal=causal, bias=bias)
    if path in ("flex", "tiled"):
        dense = _dense_for(mask, causal, n, m)
        layout = _layout_for(dense, n, m, layout)
        if path == "flex":
            from attention.flex import flex_attend

            return flex_attend(q, k, v, scale, layout=layout, mask=dense, bias=bias,
                               compiled=flex_compiled)
        from attention.online_softmax import tiled_attention

        if not softmax:
            raise ValueError("path='tiled' runs softmax attention")
        r = H // G
        xp = namespace(q)
        q5 = xp.reshape(q, (B, G, r, n, q.shape[-1]))
        out, _ = tiled_attention(
            q5, k[:, :, None], v[:, :, None], scale, layout=layout,
            mask=None if dense is None else _grouped(_four_d(dense), G, r),
            bias=_grouped(_four_d(bias), G, r),
        )
        return xp.reshape(out, (B, H, n, f))
    w = grouped_weights(
        q, k, scale, mask=mask, causal=causal, bias=bias, normalization=normalization,
        sinkhorn_iterations=sinkhorn_iterations,
    )
    xp = namespace(w, v)
    r = H // G
    o = xp.reshape(w, (B, G, r, n, m)) @ v[:, :, None]
    return xp.reshape(o, (B, H, n, f))


def _via_dispatch(q, k, v, scale, normalization, causal) -> Array:
    """Unmasked or causal attention through ``attend_fast`` (the fields' own path)."""
    B, H, n, e = q.shape
    G = k.shape[1]
    xp = namespace(q)
    if G == H:
        return attend_fast(q, k, v, scale, normalization=normalization, causal=causal)
    q5 = xp.reshape(q, (B, G, H // G, n, e))
    o = attend_fast(q5, k[:, :, None], v[:, :, None], scale, normalization=normalization,
                    causal=causal)
    return xp.reshape(o, (B, H, n, v.shape[-1]))


def _dense_for(mask: Any, causal: bool, n: int, m: int):
    """One host mask combining ``mask`` and ``causal`` (None: everything allowed): (n, m),
    or (B | 1, H | 1, n, m) for masks that differ per member or head (DMA's top-w)."""
    import numpy as np

    from attention.backend import to_numpy

    dense = None
    if mask is not None:
        dense = np.asarray(to_numpy(mask), dtype=bool)
        dense = dense if dense.ndim != 3 else dense[:, None]
        while dense.ndim > 2 and dense.shape[0] == 1 and dense.shape[1] == 1:
            dense = dense[0, 0]
    if causal:
        c = np.arange(m)[None, :] <= np.arange(n)[:, None]
        dense = c if dense is None else dense & c
    return dense


def _layout_for(dense, n: int, m: int, layout: BlockLayout | None) -> BlockLayout:
    """The given layout (checked), or the tiling of the dense mask (its union over heads)."""
    import numpy as np

    if layout is not None:
        if (layout.n, layout.m) != (n, m):
            raise ValueError(f"the block layout is for ({layout.n}, {layout.m}), got ({n}, {m})")
        return layout
    if dense is None:
        dense = np.ones((n, m), dtype=bool)
    union = dense if dense.ndim == 2 else dense.any(axis=(0, 1))
    return BlockLayout.from_dense(union, _block_size(n, m))


def _block_size(n: int, m: int) -> int:
    """The largest of 128, 64, ..., 1 dividing both lengths (Flex tiles by whole blocks)."""
    b = 128
    while n % b or m % b:
        b //= 2
    return b
