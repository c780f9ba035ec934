"""MHA, GQA and MQA: H query heads reading G shared key/value groups (G | H).

    q^h_i = x_i W_Q^h,   k^g_j = x_j W_K^g,   v^g_j = x_j W_V^g,   y_i = sum_h o^h_i W_O^h

with query head h reading group g(h) = h // (H/G): G = H is MHA (Vaswani et al. 2017),
G = 1 is MQA (Shazeer, arXiv 1911.02150), 1 < G < H is GQA (Ainslie et al.,
arXiv 2305.13245). Shapes: W_Q (H, d, e), W_K (G, d, e), W_V (G, d, f), W_O (H, f, d_out).
Any of them may be None, the identity (then e = d, f = d, and y = sum_h o^h): with
H = G = 1 and all four None this is the head of ``dynamics.SA``. The cache holds the
(rotated) keys and the values: 2 G e elements per token when f = e.

Trained layers add biases (``nn.MultiheadAttention``, BERT, GPT-2, Qwen2):
q^h_i = x_i W_Q^h + b_Q^h before the rotation, likewise k and v, and y_i + b_O, with
b_Q (H, e), b_K (G, e), b_V (G, f) and b_O (d_out,). A bias needs its matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from attention.array_api import Array, check_integer, check_real_dtype, namespace
from attention.masks import convert_arrays
from attention.positional import Rope


def check_weight(name: str, w: Any, rows: int | None = None) -> tuple[int, int, int]:
    """(count, rows, cols) of a stack of real matrices (count, rows, cols)."""
    if getattr(w, "ndim", None) != 3:
        raise ValueError(f"{name} must be a stack of matrices (count, rows, cols), got "
                         f"{getattr(w, 'shape', type(w).__name__)}")
    check_real_dtype(name, w)
    c, r, k = (int(s) for s in w.shape)
    if rows is not None and r != rows:
        raise ValueError(f"{name} has {r} rows, expected {rows}")
    return c, r, k


class Heads:
    """What the heads of every variant share: sizes derived once (``_derive``), the score
    scale 1/sqrt(head_dim) by default, and ``on`` (their ``ARRAYS`` moved to a backend)."""

    def _derive(self, **sizes: int) -> None:
        for key, value in sizes.items():
            object.__setattr__(self, key, value)

    @property
    def default_scale(self) -> float:
        return 1.0 / math.sqrt(self.head_dim)

    def on(self, like: Array) -> Any:
        return convert_arrays(self, like)


@dataclass(frozen=True)
class Projections(Heads):
    """Heads of MHA / GQA / MQA (module docstring). ``heads``/``groups``/``d`` are needed
    only where every array that would fix them is None."""

    W_Q: Any = None
    W_K: Any = None
    W_V: Any = None
    W_O: Any = None
    b_Q: Any = None
    b_K: Any = None
    b_V: Any = None
    b_O: Any = None
    heads: int | None = None
    groups: int | None = None
    d: int | None = None
    rope: Rope | None = None

    ARRAYS: ClassVar[tuple[str, ...]] = ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O")

    def __post_init__(self) -> None:
        dims: dict[str, set[int]] = {"H": set(), "G": set(), "d": set(), "e": set(), "f": set()}
        if self.W_Q is not None:
            h, d, e = check_weight("W_Q", self.W_Q)
            dims["H"].add(h), dims["d"].add(d), dims["e"].add(e)
        if self.W_K is not None:
            g, d, e = check_weight("W_K", self.W_K)
            dims["G"].add(g), dims["d"].add(d), dims["e"].add(e)
        if self.W_V is not None:
            g, d, f = check_weight("W_V", self.W_V)
            dims["G"].add(g), dims["d"].add(d), dims["f"].add(f)
        if self.W_O is not None:
            h, f, _ = check_weight("W_O", self.W_O)
            dims["H"].add(h), dims["f"].add(f)
        for key, name in (("H", "heads"), ("G", "groups"), ("d", "d")):
            if getattr(self, name) is not None:
                dims[key].add(check_integer(name, getattr(self, name)))
        H = _one(dims["H"], "query heads (W_Q, W_O, heads)", 1)
        G = _one(dims["G"], "key/value groups (W_K, W_V, groups)", 1)
        d = _one(dims["d"], "model dimension (W_Q, W_K, W_V rows, d)", None)
        if self.W_Q is None or self.W_K is None:
            if d is None:
                raise ValueError("identity projections need the model dimension: pass d")
            dims["e"].add(d)
        if self.W_V is None:
            dims["f"].add(d)
        e = _one(dims["e"], "query/key head dimension", None)
        f = _one(dims["f"], "value head dimension (W_V cols, W_O rows)", None)
        if H % G:
            raise ValueError(f"{H} query heads are not divisible by {G} key/value groups")
        if self.rope is not None and e % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {e}")
        d_out = int(self.W_O.shape[-1]) if self.W_O is not None else f
        expected = {"b_Q": ("W_Q", (H, e)), "b_K": ("W_K", (G, e)), "b_V": ("W_V", (G, f)),
                    "b_O": ("W_O", (d_out,))}
        for name, (matrix, shape) in expected.items():
            b = getattr(self, name)
            if b is None:
                continue
            if getattr(self, matrix) is None:
                raise ValueError(f"{name} needs its matrix {matrix} (an identity map has no bias)")
            check_real_dtype(name, b)
            if tuple(int(s) for s in b.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(b.shape)}")
        self._derive(n_heads=H, n_groups=G, d_in=d, head_dim=e, value_dim=f, d_out=d_out)

    def _map(self, x: Array, w: Any, count: int, b: Any = None) -> Array:
        xp = namespace(x)
        xh = x[:, None]
        if w is None:
            return xh if count == 1 else xp.broadcast_to(xh, (x.shape[0], count, *x.shape[1:]))
        return xh @ w if b is None else xh @ w + b[:, None, :]

    def queries(self, x: Array, pos: Any) -> Array:
        q = self._map(x, self.W_Q, self.n_heads, self.b_Q)
        return q if self.rope is None else self.rope(q, pos)

    def cache(self, x: Array, pos: Any) -> dict[str, Array]:
        k = self._map(x, self.W_K, self.n_groups, self.b_K)
        k = k if self.rope is None else self.rope(k, pos)
        return {"k": k, "v": self._map(x, self.W_V, self.n_groups, self.b_V)}

    def keys_values(self, cache: dict[str, Array], pos: Any) -> tuple[Array, Array]:
        return cache["k"], cache["v"]

    def output(self, o: Array) -> Array:
        xp = namespace(o)
        y = xp.sum(o if self.W_O is None else o @ self.W_O, axis=1)
        return y if self.b_O is None else y + self.b_O


def _one(values: set[int], what: str, default: int | None) -> int | None:
    if len(values) > 1:
        raise ValueError(f"inconsistent {what}: {sorted(values)}; the head dimensions do not fit")
    return next(iter(values)) if values else default
