"""DMA: dynamic mask attention (Wonderful Matrices, arXiv 2412.11834; attention.md §6.3).

Each key carries a learned, value-dependent "mass": from the values of all key/value
heads,

    delta^h_j = concat_g(v^g_j) W_dt + b_dt,                   W_dt (G f, n_b)
    b^h_j     = exp(A_h softplus(delta^h_j))   ("exp": the paper-era code, A init 1)
    b^h_j     = A_h softplus(delta^h_j)        ("linear": the 2025 kernel, A init 0)

is added to every score of key j (a key-only bias, so P_ij = M_ij mu_j e^{<q_i,k_j>} / Z
with mu_j = e^{b_j}). n_b is H (one bias per query head, the 2024 code) or G (one per
key/value head, the 2025 kernel), broadcast over the heads of each group. With
``window = w`` each query keeps only the w keys of largest bias among those it may see
(ties broken by position, earlier first), which bounds the cache at w tokens
(``evicting_decode`` decodes with such a cache and equals the full forward); None keeps
every key. The paper's own equation text was not seen (attention.md §10.7): both forms
are parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from attention.array_api import Array, namespace, to_numpy
from attention.masks import Bias, KernelBias, as_backend_mask
from attention.reference import four_d

FORMS = ("exp", "linear")


@dataclass(frozen=True)
class DynamicMaskBias(Bias):
    """The DMA bias (module docstring). W_dt (G f, n_b), b_dt (n_b,), A (n_b,)."""

    W_dt: Any
    b_dt: Any
    A: Any
    form: str = "exp"
    window: int | None = None

    ARRAYS: ClassVar[tuple[str, ...]] = ("W_dt", "b_dt", "A")

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"DMA form must be one of {FORMS}, got {self.form!r}")
        if getattr(self.W_dt, "ndim", None) != 2:
            raise ValueError("W_dt must be a matrix (G * f, n_b)")
        nb = self.W_dt.shape[1]
        if tuple(self.b_dt.shape) != (nb,) or tuple(self.A.shape) != (nb,):
            raise ValueError(f"b_dt and A must have shape ({nb},)")
        if self.window is not None and (not isinstance(self.window, int) or self.window < 1):
            raise ValueError(f"window must be a positive integer or None, got {self.window!r}")

    @property
    def restricts(self) -> bool:
        return self.window is not None

    def key_bias(self, v: Array, heads: int) -> Array:
        """b^h_j (B, heads, m) from the values v (B, G, m, f) of the cached keys."""
        xp = namespace(v)
        B, G, m, f = v.shape
        if self.W_dt.shape[0] != G * f:
            raise ValueError(f"W_dt must have G * f = {G * f} rows, got {self.W_dt.shape[0]}")
        nb = self.W_dt.shape[1]
        if nb not in (heads, G):
            raise ValueError(f"the DMA bias has {nb} heads; expected H = {heads} or G = {G}")
        flat = xp.reshape(xp.permute_dims(v, (0, 2, 1, 3)), (B, m, G * f))
        delta = flat @ self.W_dt + self.b_dt
        soft = xp.logaddexp(xp.zeros_like(delta), delta)
        b = xp.exp(self.A * soft) if self.form == "exp" else self.A * soft
        b = xp.permute_dims(b, (0, 2, 1))
        return b if nb == heads else xp.repeat(b, heads // G, axis=1)

    def values(self, q: Array, k: Array, v: Array, q_pos: Any, k_pos: Any) -> Array:
        """The bias (B, H, 1, m): one value per key, shared by every query."""
        return self.key_bias(v, q.shape[1])[:, :, None, :]

    def kernel_bias(self, q, k, v, causal=False) -> KernelBias:
        """The key bias (B, H, m); with a window, its top-w mask over the causal (or full)
        mask as a dense table (B, H, n, m)."""
        kb, base = self.values(q, k, v, None, None), np.ones((q.shape[-2], k.shape[-2]), bool)
        mask = None if self.window is None else self.restrict(np.tril(base) if causal else base, kb)
        return KernelBias(key_bias=kb[:, :, 0], mask=mask)

    def restrict(self, allowed: Any, bias: Array) -> Array | None:
        """allowed AND (key among the ``window`` largest biases the query may see)."""
        if self.window is None:
            return allowed
        if allowed is None:
            raise ValueError("DMA's top-w mask needs the base mask (use a causal or full mask)")
        a = four_d(as_backend_mask(allowed, bias))
        return a & (_ranks(bias[:, :, 0, :], a) < self.window)


def _ranks(b: Array, allowed: Array) -> Array:
    """rank[..., i, j]: how many keys query i may see that beat key j (a larger bias, or
    the same bias at an earlier position); b (B, H, m), allowed (B|1, H|1, n, m)."""
    xp = namespace(b)
    idx = np.arange(b.shape[-1])
    earlier = as_backend_mask(idx[:, None] < idx[None, :], b)
    beats = (b[..., :, None] > b[..., None, :]) | ((b[..., :, None] == b[..., None, :]) & earlier)
    return xp.astype(allowed, b.dtype) @ xp.astype(beats, b.dtype)


def evicting_decode(op: Any, x: Array, prefix: int = 1) -> tuple[Array, list[int]]:
    """Decode token by token with a cache evicted to DMA's top-w keys; (y (B, N, d), lengths).

    Prefill ``prefix`` tokens, then feed one token at a time; after each step drop every
    cached key that is not among the ``window`` heaviest for some member and head. The
    bias depends on the key alone, so a key that w others beat stays beaten as keys
    arrive: it is masked for every later query, and the outputs equal the full forward
    pass. ``lengths`` are the cache lengths after each token from the prefill on: at most
    ``window`` per (member, bias head), so ``window`` exactly for one member with one
    bias head (``dma_bias_heads="kv"`` on MQA heads), the bound a decoder's memory obeys.
    """
    bias = op.bias
    if not isinstance(bias, DynamicMaskBias) or bias.window is None:
        raise ValueError("evicting decoding needs an operator with a DMA bias and a window")
    if op.mask is None or not op.mask.causal:
        raise ValueError("evicting decoding runs causal DMA (the decoder sees only the past)")
    N = x.shape[-2]
    if not isinstance(prefix, int) or not 1 <= prefix <= N:
        raise ValueError(f"prefix must be an integer in [1, {N}], got {prefix!r}")
    H = op.heads.n_heads

    def evict(cache):
        _, v = op.heads.keys_values(cache.tensors, cache.positions)
        b = bias.key_bias(v, H)
        everyone = as_backend_mask(np.ones((1, len(cache)), dtype=bool), b)[None]
        kept = to_numpy(_ranks(b, everyone)[:, :, 0, :] < bias.window)
        return cache.select(np.asarray(kept).any(axis=(0, 1)))

    y, cache = op.prefill(x[:, :prefix])
    outputs, cache = [y], evict(cache)
    lengths = [len(cache)]
    for t in range(prefix, N):
        y, cache = op.decode(x[:, t : t + 1], np.array([t]), cache)
        cache = evict(cache)
        outputs.append(y)
        lengths.append(len(cache))
    return namespace(y).concat(outputs, axis=-2), lengths
