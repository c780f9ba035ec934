"""Position encodings: rotary (RoPE), ALiBi, and the factored RoPE x ALiBi bias.

RoPE rotates each query and key by its position: with angles theta_k = base^{-2k/e},
k = 0..e/2-1, the pair (x_a, x_b) of channel k turns by pos * theta_k, so that
<R_i q, R_j k> depends on i - j only. Two channel pairings are in use; ``layout="half"``
pairs channel k with k + e/2 (GPT-NeoX, Llama), ``"interleaved"`` pairs 2k with 2k+1
(the RoFormer paper). The choice does not change any result of this package.

A distance bias adds b^h_ij = -m_h g(|pos(i) - pos(j)|) to the scores of head h:

* ALiBi (Press et al. 2022): g(r) = r with geometric slopes m_h = 2^{-8h/H};
* factored RoPE x ALiBi with a harmonic series (Fulu Li, arXiv 2410.18441; only the
  abstract could be read, so the exact form is unverified, attention.md §5.3). Both
  candidate forms are offered, and g and the slopes are pluggable:
  (a) g(r) = H_r = sum_{k=1}^r 1/k with geometric slopes  (``harmonic_alibi``),
  (b) g(r) = r with harmonic slopes m_h = 1/h                (``alibi`` with ``harmonic_slopes``).
  The bias depends on i - j only (a Toeplitz matrix), and |i - j| is used so the same
  bias serves non-causal masks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from attention.array_api import Array, asarray_like, namespace
from attention.masks import Bias, KernelBias, check_positions

Distance = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Rope:
    """Rotary position embedding on the last axis (even size e) of (..., n, e) arrays.

    ``frequencies`` (e/2 values), when given, replaces base^{-2k/e}: a trained model's
    own table (Llama 3's rescaled frequencies, say) is used as the model stores it.
    """

    base: float = 10000.0
    layout: str = "half"
    frequencies: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.layout not in ("half", "interleaved"):
            raise ValueError(f"layout must be 'half' or 'interleaved', got {self.layout!r}")
        if not (np.isfinite(self.base) and self.base > 1):
            raise ValueError(f"RoPE base must be a finite number > 1, got {self.base!r}")
        if self.frequencies is not None:
            freq = tuple(float(f) for f in np.ravel(self.frequencies))
            if not freq or not np.all(np.isfinite(freq)):
                raise ValueError("RoPE frequencies must be a non-empty set of finite numbers")
            object.__setattr__(self, "frequencies", freq)

    def angles(self, pos: Any, e: int) -> np.ndarray:
        """(n, e/2) rotation angles pos * theta_k (theta_k = base^{-2k/e} by default)."""
        if e % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {e}")
        pos = check_positions("positions", pos)
        if self.frequencies is None:
            freq = self.base ** (-np.arange(0, e, 2, dtype=np.float64) / e)
        elif len(self.frequencies) != e // 2:
            raise ValueError(f"{len(self.frequencies)} RoPE frequencies for head dimension {e}")
        else:
            freq = np.asarray(self.frequencies, dtype=np.float64)
        return pos[:, None].astype(np.float64) * freq[None, :]

    def __call__(self, x: Array, pos: Any) -> Array:
        xp = namespace(x)
        e = x.shape[-1]
        ang = self.angles(pos, e)
        cos, sin = asarray_like(np.cos(ang), x), asarray_like(np.sin(ang), x)
        if self.layout == "half":
            a, b = x[..., : e // 2], x[..., e // 2 :]
            return xp.concat([a * cos - b * sin, b * cos + a * sin], axis=-1)
        a, b = x[..., 0::2], x[..., 1::2]
        rot = xp.stack([a * cos - b * sin, b * cos + a * sin], axis=-1)
        return xp.reshape(rot, x.shape)


# -- slopes and distance functions ---------------------------------------------------


def alibi_slopes(heads: int) -> np.ndarray:
    """Geometric ALiBi slopes m_h = 2^{-8h/H}, h = 1..H."""
    _check_heads(heads)
    return 2.0 ** (-8.0 * np.arange(1, heads + 1) / heads)


def harmonic_slopes(heads: int) -> np.ndarray:
    """Harmonic slopes m_h = 1/h, h = 1..H (candidate (b) of attention.md §5.3)."""
    _check_heads(heads)
    return 1.0 / np.arange(1, heads + 1)


def linear_distance(r: np.ndarray) -> np.ndarray:
    """g(r) = r (ALiBi)."""
    return np.asarray(r, dtype=np.float64)


def harmonic_number(r: np.ndarray) -> np.ndarray:
    """g(r) = H_r = sum_{k=1}^r 1/k, H_0 = 0 (exact partial sums, r a non-negative integer)."""
    r = np.asarray(r)
    if r.size and (r.dtype.kind not in "iu" or r.min() < 0):
        raise ValueError("harmonic_number takes non-negative integers")
    top = int(r.max()) if r.size else 0
    table = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top + 1))])
    return table[r]


def _check_heads(heads: int) -> None:
    if not isinstance(heads, (int, np.integer)) or heads < 1:
        raise ValueError(f"heads must be a positive integer, got {heads!r}")


@dataclass(frozen=True)
class DistanceBias(Bias):
    """b^h_ij = -m_h g(|pos(i) - pos(j)|): ALiBi-type bias, one slope per head.

    slopes: (H,) non-negative slopes m_h; g: distance function on non-negative integers.
    """

    slopes: Any
    g: Distance = linear_distance

    def __post_init__(self) -> None:
        s = np.asarray(self.slopes, dtype=np.float64)
        if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)):
            raise ValueError(f"slopes must be a non-empty 1-d finite array, got {self.slopes!r}")
        object.__setattr__(self, "slopes", s)

    @property
    def heads(self) -> int:
        return int(self.slopes.size)

    def table(self, q_pos: Any, k_pos: Any) -> np.ndarray:
        """(H, n, m) bias values on the host."""
        q, k = check_positions("q_pos", q_pos), check_positions("k_pos", k_pos)
        dist = np.abs(q[:, None] - k[None, :])
        return -self.slopes[:, None, None] * self.g(dist)[None]

    def values(self, q: Array, k: Array, v: Array, q_pos: Any, k_pos: Any) -> Array:
        """The bias as (1, H, n, m) on the backend of q."""
        H = q.shape[1]
        if H != self.heads:
            raise ValueError(f"the bias has {self.heads} slopes, the operator has {H} heads")
        return asarray_like(self.table(q_pos, k_pos)[None], q)

    def kernel_bias(self, q, k, v, causal=False) -> KernelBias:
        """Slopes and g(r) = r (computed in the kernel) or the table g(0..max(n, m) - 1)."""
        if self.g is linear_distance:
            return KernelBias(self.slopes)
        return KernelBias(self.slopes, self.g(np.arange(max(q.shape[-2], k.shape[-2]))))


def alibi(heads: int) -> DistanceBias:
    """ALiBi: g(r) = r, geometric slopes."""
    return DistanceBias(alibi_slopes(heads), linear_distance)


def harmonic_alibi(heads: int) -> DistanceBias:
    """Candidate (a) of the factored RoPE x ALiBi: g = H_r, geometric slopes."""
    return DistanceBias(alibi_slopes(heads), harmonic_number)
