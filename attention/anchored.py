"""AnSAN: anchor-based attention and its cache-reducing decoder (AnLLM, arXiv 2402.07616).

The sequence is cut into segments, each ending with its *anchor* token (the anchors are
at the given positions A; tokens after the last anchor form an open segment). With
seg(p) = #{a in A : a < p} the segment of position p, the anchor mask is (§4.1, checked
against the paper's Fig. 2 and the official code, attention.md §4.1)

    M_ij = 1  iff  j <= i  and  ( seg(j) = seg(i)  or  (j in A and i not in A) ):

an ordinary token sees its own segment's prefix and every earlier anchor; an anchor
sees only its own segment. Information from a closed segment reaches later tokens only
through its anchor, so a decoder may drop the segment once its anchor is processed:
REDUCTION keeps the cache entries that are anchors or lie at or after the last anchor
(Algorithm 1). :func:`anchored_decode` runs a stack of layers token by token with that
reduction and gives the same outputs as the full forward pass under the anchor mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attention.array_api import Array, namespace
from attention.masks import KernelPlan, Mask, check_positions, square_positions
from attention.operator import KVCache, Operator


@dataclass(frozen=True)
class AnchorMask(Mask):
    """The AnSAN mask for anchors at the given positions (module docstring)."""

    anchors: Any = ()

    def __post_init__(self) -> None:
        a = np.unique(np.asarray(self.anchors, dtype=np.int64).reshape(-1))
        if a.size and a.min() < 0:
            raise ValueError(f"anchor positions must be non-negative, got {self.anchors!r}")
        object.__setattr__(self, "anchors", tuple(int(p) for p in a))

    def segment(self, pos: Any) -> np.ndarray:
        """seg(p) = number of anchors strictly before p."""
        return np.searchsorted(np.asarray(self.anchors, dtype=np.int64), pos, side="left")

    def is_anchor(self, pos: Any) -> np.ndarray:
        return np.isin(pos, np.asarray(self.anchors, dtype=np.int64))

    def allowed(self, q_pos, k_pos, step=0):
        q, k = check_positions("q_pos", q_pos), check_positions("k_pos", k_pos)
        same = self.segment(q)[:, None] == self.segment(k)[None, :]
        summary = self.is_anchor(k)[None, :] & ~self.is_anchor(q)[:, None]
        return (k[None, :] <= q[:, None]) & (same | summary)

    def kernel_plan(self, n, m, step=0, batch=1, block=64, causal=False):
        """The causal band with the anchor rule, reading seg(p), 1[p in A] and cum[p] = #A < p:
        a tile below the band holding no anchor and no key of the query's segments is skipped."""
        pos = square_positions(n, m)
        anc = self.is_anchor(pos).astype(np.int32)
        return KernelPlan("causal", "anchored", arrays={
            "SEG": self.segment(pos), "ANC": anc, "ANC_CUM": np.concatenate([[0], np.cumsum(anc)])})

    def reduction(self, cache: KVCache, upto: int) -> KVCache:
        """REDUCTION: keep anchors and entries at or after the last anchor <= ``upto``."""
        past = [a for a in self.anchors if a <= upto]
        if not past:
            return cache
        pos = cache.positions
        return cache.select(self.is_anchor(pos) | (pos >= past[-1]))


def stack_forward(layers: Sequence[Operator], x: Array, pos: Any = None) -> list[Array]:
    """The residual stream after each layer, h^{l+1} = h^l + op_l(h^l); a list of (B, n, d)."""
    states, h = [], x
    for op in layers:
        h = h + op.forward(h, pos)
        states.append(h)
    return states


def anchored_decode(
    layers: Sequence[Operator], x: Array, prefix: int = 1
) -> tuple[list[Array], list[list[int]]]:
    """Algorithm 1: prefill ``prefix`` tokens, then decode one token at a time, reducing
    every layer's cache after the prefill and after each anchor.

    Every layer must carry an :class:`AnchorMask`. Returns the residual stream after each
    layer (a list of (B, N, d), as :func:`stack_forward`) and, per layer, the cache length
    after each token from the prefill on.
    """
    if not layers:
        raise ValueError("give at least one layer")
    mask = layers[0].mask
    if not isinstance(mask, AnchorMask) or any(op.mask != mask for op in layers):
        raise ValueError("anchored decoding needs every layer to carry the same AnchorMask")
    N = x.shape[-2]
    if not isinstance(prefix, int) or not 1 <= prefix <= N:
        raise ValueError(f"prefix must be an integer in [1, {N}], got {prefix!r}")
    xp = namespace(x)
    caches: list[KVCache] = []
    outputs: list[list[Array]] = [[] for _ in layers]
    lengths: list[list[int]] = [[] for _ in layers]
    h = x[:, :prefix]
    for l, op in enumerate(layers):
        y, cache = op.prefill(h, np.arange(prefix))
        caches.append(mask.reduction(cache, prefix - 1))
        lengths[l].append(len(caches[l]))
        h = h + y
        outputs[l].append(h)
    for t in range(prefix, N):
        h = x[:, t : t + 1]
        for l, op in enumerate(layers):
            y, cache = op.decode(h, np.array([t]), caches[l])
            if mask.is_anchor(t):
                cache = mask.reduction(cache, t)
            caches[l] = cache
            lengths[l].append(len(cache))
            h = h + y
            outputs[l].append(h)
    return [xp.concat(o, axis=-2) for o in outputs], lengths
