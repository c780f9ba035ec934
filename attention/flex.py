"""The FlexAttention route: a block layout becomes a ``BlockMask``, a bias a ``score_mod``.

FlexAttention computes softmax(mask_mod(score_mod(scale q k^T))) v, visiting only the
key blocks listed per query block: *full* blocks without evaluating ``mask_mod``,
*partial* blocks with it (``BlockMask.from_kv_blocks``). Our :class:`BlockLayout` is
exactly that pair of lists, so every mask of the package maps onto Flex: the layout
gives the block lists and ``mask_mod`` looks up the dense mask on partial blocks; an
additive bias (ALiBi, RoPE x ALiBi, DMA) is looked up in ``score_mod``.

On the CPU, FlexAttention needs ``torch.compile`` for its fused kernel (a cold compile
takes 10-20 s) and runs in float32 only; ``compiled=False`` runs Flex's unfused
reference implementation (same semantics, materialised scores), which is what most
tests use. The layout's block size must divide the sequence lengths, as Flex's
kernels tile by whole blocks.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from attention.array_api import Array
from attention.masks import BlockLayout


@functools.cache
def _compiled_flex():
    import torch
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def block_mask(layout: BlockLayout, mask: np.ndarray | None, device: Any = "cpu"):
    """FlexAttention ``BlockMask`` for a layout; ``mask`` (n, m), or (B, H, n, m) for masks
    that differ per batch member and head (DMA's top-w), is used on partial blocks."""
    import torch
    from torch.nn.attention.flex_attention import BlockMask

    if layout.n % layout.block or layout.m % layout.block:
        raise ValueError(
            f"FlexAttention tiles by whole blocks: block {layout.block} must divide the "
            f"lengths ({layout.n}, {layout.m})"
        )
    kv_num, kv_idx, full_num, full_idx = (
        torch.as_tensor(a, device=device)[None, None] for a in layout.kv_arrays()
    )
    if mask is None:
        mask = np.ones((layout.n, layout.m), dtype=bool)
    dense = torch.as_tensor(np.asarray(mask, dtype=bool), device=device)
    if dense.ndim == 4:

        def mask_mod(b, h, q_idx, kv_idx):
            return dense[b, h, q_idx, kv_idx]

    else:

        def mask_mod(b, h, q_idx, kv_idx):
            return dense[q_idx, kv_idx]

    return BlockMask.from_kv_blocks(
        kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=layout.block, mask_mod=mask_mod,
        seq_lengths=(layout.n, layout.m),
    )


def flex_attend(
    q: Array,
    k: Array,
    v: Array,
    scale: Any,
    *,
    layout: BlockLayout,
    mask: np.ndarray | None = None,
    bias: Array | None = None,
    compiled: bool = True,
) -> Array:
    """Softmax attention of q (B, H, n, e) over k, v (B, G, m, .) by FlexAttention."""
    import torch
    from torch.nn.attention import flex_attention as flex_module

    if q.dtype != torch.float32:
        raise ValueError(f"FlexAttention on the CPU runs float32 only, got {q.dtype}")
    B, H, n, _ = q.shape
    G = k.shape[1]
    if k.shape[0] != B:
        k, v = k.expand(B, *k.shape[1:]), v.expand(B, *v.shape[1:])
    if mask is not None and np.ndim(mask) == 4:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), (B, H, n, k.shape[2]))
    bm = block_mask(layout, mask, q.device)
    score_mod = None
    if bias is not None:
        table = torch.broadcast_to(bias.to(q.dtype), (B, H, n, k.shape[2])).contiguous()

        def score_mod(score, b, h, q_idx, kv_idx):
            return score + table[b, h, q_idx, kv_idx]

    fn = _compiled_flex() if compiled else flex_module.flex_attention
    return fn(q, k, v, score_mod=score_mod, block_mask=bm, scale=float(scale), enable_gqa=G != H)
