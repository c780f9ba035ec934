"""PrFlash: block-sparse causal attention with blocks drawn by their distance to the diagonal.

From the abstract of Fulu Li (arXiv 2410.18441); everything past the abstract is the
package's definition (attention.md §5.1, unverified). With block size B, T = ceil(N/B)
blocks, query block I and key block J <= I at distance delta = I - J,

    xi_IJ ~ Bernoulli(p(delta)) independently,  xi_II = 1 (the diagonal is always kept),
    M_ij  = 1[j <= i] xi_{floor(i/B), floor(j/B)},

and softmax renormalises over the kept keys. Every row keeps at least itself, so no
row is ever empty; p = 1 is causal attention and p(delta) = 1[delta < w] block
sliding-window attention. The expected fraction of the T(T+1)/2 causal blocks that is
computed is sum_{delta} p(delta) (T - delta) / (T(T+1)/2), with p(0) = 1.

Randomness: the pattern is a deterministic function of (seed, step) - and of the batch
member with ``per_member=True`` - drawn with ``numpy.random.default_rng([seed, step])``,
so a flow that resamples every step is reproducible and can be integrated by any
fixed-step scheme. The compaction that "keeps the lower-triangular shape" gathers the
kept key blocks of each query block in increasing order, diagonal block last: only that
last block needs the elementwise causal mask (:func:`compacted_attention`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from attention.array_api import Array, namespace
from attention.masks import (
    BlockLayout,
    KernelPlan,
    Mask,
    as_backend_mask,
    check_block,
    check_positions,
    square_positions,
)


def _check_probabilities(p: np.ndarray, what: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(p)) or p.min(initial=0.0) < 0 or p.max(initial=0.0) > 1:
        raise ValueError(f"{what}: probabilities must lie in [0, 1], got {p}")
    return p


@dataclass(frozen=True)
class BlockDistance:
    """p(delta) over block distances delta = 0, 1, 2, ... (use the constructors below)."""

    kind: str
    fn: Callable[[np.ndarray], np.ndarray]
    label: str

    def __call__(self, delta: Any) -> np.ndarray:
        delta = np.asarray(delta)
        if delta.size and (delta.dtype.kind not in "iu" or delta.min() < 0):
            raise ValueError("block distances are non-negative integers")
        return _check_probabilities(self.fn(delta), self.label)


def geometric(rho: float) -> BlockDistance:
    """p(delta) = rho^delta."""
    _check_probabilities(np.asarray([rho]), "geometric rho")
    return BlockDistance("geometric", lambda d: float(rho) ** d.astype(float),
                         f"geometric({rho:g})")


def harmonic(c: float) -> BlockDistance:
    """p(delta) = min(1, c / (delta + 1))."""
    if not (np.isfinite(c) and c >= 0):
        raise ValueError(f"harmonic c must be a finite number >= 0, got {c!r}")
    return BlockDistance("harmonic", lambda d: np.minimum(1.0, c / (d + 1.0)), f"harmonic({c:g})")


def window(w: int) -> BlockDistance:
    """p(delta) = 1[delta < w]: block sliding window of w blocks."""
    if not isinstance(w, (int, np.integer)) or w < 1:
        raise ValueError(f"window w must be a positive integer, got {w!r}")
    return BlockDistance("window", lambda d: (d < w).astype(float), f"window({w})")


def given(values: Any) -> BlockDistance:
    """p(delta) = values[delta] (0 beyond the table)."""
    table = _check_probabilities(np.asarray(values, dtype=float).reshape(-1), "given p")

    def fn(d: np.ndarray) -> np.ndarray:
        return np.where(d < table.size, table[np.minimum(d, table.size - 1)], 0.0)

    return BlockDistance("given", fn, f"given({table.size} values)")


ONE = BlockDistance("one", lambda d: np.ones(d.shape), "one")


def expected_work(p: BlockDistance, T: int) -> float:
    """Expected kept fraction of the T(T+1)/2 causal blocks, p(0) counted as 1."""
    delta = np.arange(T)
    probs = p(delta).copy()
    probs[0] = 1.0
    return float(np.sum(probs * (T - delta)) / (T * (T + 1) / 2))


@dataclass(frozen=True)
class PrFlashMask(Mask):
    """The PrFlash mask (module docstring); resampled for every ``step``."""

    p: BlockDistance = ONE
    block: int = 16
    seed: int = 0
    per_member: bool = False

    random: ClassVar[bool] = True  # resampled per step

    def __post_init__(self) -> None:
        check_block(self.block)
        if not isinstance(self.p, BlockDistance):
            raise TypeError("p must be a BlockDistance (geometric, harmonic, window or given)")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    def sample(self, T: int, step: int = 0, member: int | None = None) -> np.ndarray:
        """xi (T, T): kept blocks, lower triangular with a true diagonal.

        Row I is drawn from ``default_rng([seed, step, member + 1 or 0, I])``, so the pattern
        of a block does not depend on the sequence length (decoding sees the same draws).
        """
        if step < 0:
            raise ValueError(f"the step index must be >= 0, got {step}")
        tag = 0 if member is None else int(member) + 1
        xi = np.eye(T, dtype=bool)
        for I in range(1, T):
            u = np.random.default_rng([int(self.seed), int(step), tag, I]).random(I)
            xi[I, :I] = u < self.p(I - np.arange(I))
        return xi

    def _one(self, q: np.ndarray, k: np.ndarray, step: int, member: int | None) -> np.ndarray:
        T = int(max(q.max(initial=0), k.max(initial=0)) // self.block + 1)
        xi = self.sample(T, step, member)
        return (k[None, :] <= q[:, None]) & xi[np.ix_(q // self.block, k // self.block)]

    def allowed(self, q_pos, k_pos, step=0):
        q, k = check_positions("q_pos", q_pos), check_positions("k_pos", k_pos)
        if np.ndim(step) == 0:
            return self._one(q, k, int(step), None)
        steps = np.asarray(step).astype(np.int64)
        return np.stack([
            self._one(q, k, int(s), b if self.per_member else None) for b, s in enumerate(steps)
        ])

    def layout(self, q_pos, k_pos, block=None, step=0) -> BlockLayout:
        """Sampled off-diagonal blocks are full, the diagonal block partial (aligned 0..n-1)."""
        q, k = check_positions("q_pos", q_pos), check_positions("k_pos", k_pos)
        block = self.block if block is None else check_block(block)
        aligned = np.array_equal(q, np.arange(q.size)) and np.array_equal(k, q)
        if block != self.block or not aligned or np.ndim(step):
            return super().layout(q, k, block, step)
        T = -(-q.size // block)
        xi = self.sample(T, int(step))
        full = tuple(tuple(int(J) for J in np.nonzero(xi[I, :I])[0]) for I in range(T))
        return BlockLayout(block, q.size, k.size, full, tuple((I,) for I in range(T)))

    def kernel_plan(self, n, m, step=0, batch=1, block=64, causal=False):
        """Its block lists (one, or one per member for steps (batch,)), causal on the diagonal."""
        pos, steps = square_positions(n, m), np.asarray(step)
        if steps.ndim == 0:
            return KernelPlan("lists", "causal", (self.layout(pos, pos, None, int(steps)),))
        if steps.shape != (batch,):
            raise ValueError(f"per-member steps must have shape ({batch},), got {steps.shape}")
        return KernelPlan("lists", "causal", tuple(
            BlockLayout.from_dense(self._one(pos, pos, int(s), b if self.per_member else None),
                                   self.block) for b, s in enumerate(steps)))

    def compaction(self, T: int, step: int = 0) -> list[list[int]]:
        """Per query block, the kept key blocks in increasing order with the diagonal last."""
        xi = self.sample(T, step)
        return [[*np.nonzero(xi[I, :I])[0].tolist(), I] for I in range(T)]


def compacted_attention(
    q: Array, k: Array, v: Array, scale: Any, mask: PrFlashMask, step: int = 0
) -> Array:
    """Softmax attention under ``mask`` computed on compacted key blocks.

    q (..., n, e), k (..., n, e), v (..., n, f) for positions 0..n-1. For query block I
    the kept key blocks are gathered into K~_I, V~_I (diagonal block last); only the last
    block gets the elementwise causal mask, so the block pattern stays lower triangular.
    """
    xp = namespace(q, k, v)
    n, B = q.shape[-2], mask.block
    T = -(-n // B)
    rows = []
    for I, blocks in enumerate(mask.compaction(T, step)):
        i0, i1 = I * B, min((I + 1) * B, n)
        kt, vt = (xp.concat([a[..., J * B : min((J + 1) * B, n), :] for J in blocks], axis=-2)
                  for a in (k, v))
        s = scale * (q[..., i0:i1, :] @ xp.matrix_transpose(kt))
        width = i1 - i0
        off = s.shape[-1] - width
        local = np.arange(width)
        diag = local[None, :] <= local[:, None]
        keep = np.concatenate([np.ones((width, off), dtype=bool), diag], axis=1)
        s = xp.where(as_backend_mask(keep, s), s, -xp.inf)
        top = xp.max(s, axis=-1, keepdims=True)
        w = xp.exp(s - top)
        rows.append((w / xp.sum(w, axis=-1, keepdims=True)) @ vt)
    return xp.concat(rows, axis=-2)
