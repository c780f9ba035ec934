"""The FlashAttention-2 forward recurrence over a block layout (the kernels' reference).

For each query tile I, with running row maximum mu, normaliser l and output O
(mu = -inf, l = 0, O = 0 at the start), every visited key tile J does

    S   = scale Q_I K_J^T (+ bias; masked entries -inf on *partial* tiles only)
    mu' = max(mu, rowmax S),   P = exp(S - mu'),   alpha = exp(mu - mu')
    l   = alpha l + rowsum P,  O = alpha O + P V_J,  mu = mu'

and finally O / l and LSE = mu + log l (FA2, arXiv 2307.08691; attention.md §7.1). Tiles
absent from the layout cost nothing. The result does not depend on the tile size and
equals dense softmax attention; a row with no visited entry gives O = 0 and LSE = -inf,
never NaN. Written against the array API: a readable loop, not a fast one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attention.array_api import Array, device, namespace
from attention.masks import BlockLayout, as_backend_mask


def tiled_attention(
    q: Array,
    k: Array,
    v: Array,
    scale: Any,
    *,
    layout: BlockLayout,
    mask: np.ndarray | None = None,
    bias: Array | None = None,
) -> tuple[Array, Array]:
    """(O (..., n, f), LSE (..., n)) for q (..., n, e), k (..., m, e), v (..., m, f).

    ``mask`` is the dense host mask applied on partial tiles, (n, m) or broadcasting
    against (..., n, m) (masks that differ per member and head, as DMA's top-w; the
    layout then lists the union of their tiles); ``bias`` broadcasts against (..., n, m).
    """
    xp = namespace(q, k, v)
    n, m = q.shape[-2], k.shape[-2]
    if (layout.n, layout.m) != (n, m):
        raise ValueError(f"the layout is for ({layout.n}, {layout.m}) scores, got ({n}, {m})")
    b = layout.block
    kt = xp.matrix_transpose(k)
    lead = tuple(np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))
    like = {"dtype": q.dtype, "device": device(q)}
    rows_out, rows_lse = [], []
    for I in range(layout.query_blocks):
        i0, i1 = I * b, min((I + 1) * b, n)
        mu = xp.full((*lead, i1 - i0, 1), -xp.inf, **like)
        ell = xp.zeros((*lead, i1 - i0, 1), **like)
        acc = xp.zeros((*lead, i1 - i0, v.shape[-1]), **like)
        tiles = sorted([(J, False) for J in layout.full[I]]
                       + [(J, True) for J in layout.partial[I]])
        for J, partial in tiles:
            j0, j1 = J * b, min((J + 1) * b, m)
            s = scale * (q[..., i0:i1, :] @ kt[..., :, j0:j1])
            if bias is not None:
                rows = slice(i0, i1) if bias.shape[-2] != 1 else slice(0, 1)
                s = s + bias[..., rows, j0:j1]
            if partial and mask is not None:
                s = xp.where(as_backend_mask(mask[..., i0:i1, j0:j1], s), s, -xp.inf)
            new_mu = xp.maximum(mu, xp.max(s, axis=-1, keepdims=True))
            safe = xp.where(xp.isfinite(new_mu), new_mu, xp.zeros_like(new_mu))
            p = xp.exp(s - safe)
            alpha = xp.exp(mu - safe)
            ell = alpha * ell + xp.sum(p, axis=-1, keepdims=True)
            acc = alpha * acc + p @ v[..., j0:j1, :]
            mu = new_mu
        seen = ell > 0
        rows_out.append(acc / xp.where(seen, ell, xp.ones_like(ell)))
        lse = xp.where(seen, mu + xp.log(xp.where(seen, ell, xp.ones_like(ell))), -xp.inf)
        rows_lse.append(lse[..., 0])
    return xp.concat(rows_out, axis=-2), xp.concat(rows_lse, axis=-1)
