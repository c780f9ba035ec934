"""CDMoE: the cross-domain mixture of experts of Wonderful Matrices (arXiv 2412.11834, §6.4).

Token by token (x a row of d features; any leading axes),

    y = ( sigma(x W_gate + b_gate) * (x W_up + b_up) ) W_down + b_down        shared SwiGLU
      + sum_h sum_{e in E_h(x)} sigma(<x, d_e>) softmax_{E_h(x)}(s^h)_e u_e     private experts

with E experts, each a rank-one map x -> sigma(<x, d_e>) u_e (``down_embed`` d_e and
``up_embed`` u_e, rows of (E, d)), selected per retrieval head h by product keys:

    q^h = x W_q^h in R^r, split in halves q^h_1, q^h_2 in R^{r/2};
    sub-keys K^h_1, K^h_2 in R^{s x r/2} with s^2 = E;
    s^h(a s + b) = <q^h_1, K^h_1[a]> + <q^h_2, K^h_2[b]>          (the E = s^2 scores);
    E_h(x) = the k experts of largest s^h, found as the top k of the k^2 sums over the
             top k of each half (exact: an expert (a, b) of the true top k has a among the
             top k of the first half, else k experts (a', b) would beat it; likewise b).

The softmax runs over the k retrieved scores of one head; the heads' outputs add up.
This is the paper-era code (``CheemsCDMoE`` at commit a6a4b63: shared part
down(act(gate x) * up x), expert weights act(<x, d_e>) * softmax(scores)).

Shapes here: W_gate, W_up (d, m), W_down (m, d), b_gate, b_up (m,), b_down (d,) or None;
W_q (H, d, r) with r even (first half of its columns queries K_1, second half K_2);
keys (H, 2, s, r/2): keys[h, 0] = K^h_1, keys[h, 1] = K^h_2; down_embed, up_embed (E, d).
From the Cheems module: W_q[h] = concat(Wq.view(2, H, r/2, d)[0, h].T, [...][1, h].T) with
Wq = ``queries.weight``, keys = ``keys`` (H, s, 2, r/2) permuted to (H, 2, s, r/2), and
the Linear layers' weights transposed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from attention.activations import ACTIVATIONS
from attention.array_api import Array, from_numpy, namespace, rng, to_numpy
from attention.masks import convert_arrays


def top_k(scores: Array, k: int) -> tuple[Array, Array]:
    """(values, indices) of the k largest entries on the last axis, largest first (ties:
    the lower index first)."""
    xp = namespace(scores)
    idx = xp.argsort(scores, axis=-1, descending=True, stable=True)[..., :k]
    return xp.take_along_axis(scores, idx, axis=-1), idx


def _half_scores(q: Array, keys: Array) -> tuple[Array, Array]:
    """The sub-key scores of each half: (..., H, s) twice, for q (..., H, r)."""
    xp = namespace(q, keys)
    half = keys.shape[-1]
    q1, q2 = q[..., None, :half], q[..., None, half:]  # (..., H, 1, r/2)
    s1 = xp.sum(q1 * keys[:, 0], axis=-1)
    s2 = xp.sum(q2 * keys[:, 1], axis=-1)
    return s1, s2


def full_scores(q: Array, keys: Array) -> Array:
    """Every expert's score s^h(a s + b) = <q_1, K_1[a]> + <q_2, K_2[b]>: (..., H, s^2)."""
    xp = namespace(q, keys)
    s1, s2 = _half_scores(q, keys)
    table = s1[..., :, None] + s2[..., None, :]
    return xp.reshape(table, (*table.shape[:-2], table.shape[-2] * table.shape[-1]))


def product_key_top_k(q: Array, keys: Array, k: int) -> tuple[Array, Array]:
    """(scores, expert indices) (..., H, k) of the k best experts per head, by product keys.

    q: (..., H, r) retrieval queries; keys: (H, 2, s, r/2). Equal to ``top_k(full_scores(q,
    keys), k)`` (module docstring), at the cost of 2 s + k^2 scores instead of s^2.
    """
    xp = namespace(q, keys)
    s = keys.shape[-2]
    if not 1 <= k <= s:
        raise ValueError(f"k = {k} must lie in [1, {s}]: product keys take the top k of the "
                         f"{s} sub-keys of each half")
    s1, s2 = _half_scores(q, keys)
    v1, i1 = top_k(s1, k)
    v2, i2 = top_k(s2, k)
    pairs = v1[..., :, None] + v2[..., None, :]  # (..., H, k, k)
    experts = i1[..., :, None] * s + i2[..., None, :]
    lead = pairs.shape[:-2]
    pairs = xp.reshape(pairs, (*lead, k * k))
    experts = xp.reshape(experts, (*lead, k * k))
    best, j = top_k(pairs, k)
    return best, xp.take_along_axis(experts, j, axis=-1)


def _softmax(z: Array) -> Array:
    xp = namespace(z)
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def _check_finite(name: str, a: Any) -> None:
    if "jax" in sys.modules:
        import jax

        if isinstance(a, jax.core.Tracer):
            return
    values = to_numpy(a)
    if not np.all(np.isfinite(values)):
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        raise ValueError(f"CDMoE parameter {name} contains {bad} NaN or infinite entries")


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in getattr(a, "shape", np.shape(a)))


@dataclass(frozen=True)
class CrossDomainMoE:
    """CDMoE weights and its forward map (module docstring for the equations and shapes).

    k: experts retrieved per head (1 <= k <= s = sqrt(E)); activation: a name of
    ``attention.activations.ACTIVATIONS`` ("silu": Cheems's hidden_act) or an elementwise
    array-API callable, used by the shared SwiGLU and by the experts alike.
    """

    W_gate: Any
    W_up: Any
    W_down: Any
    W_q: Any
    keys: Any
    down_embed: Any
    up_embed: Any
    k: int
    b_gate: Any = None
    b_up: Any = None
    b_down: Any = None
    activation: str | Callable[[Array], Array] = "silu"

    ARRAYS: ClassVar[tuple[str, ...]] = ("W_gate", "W_up", "W_down", "W_q", "keys",
                                         "down_embed", "up_embed", "b_gate", "b_up", "b_down")

    def __post_init__(self) -> None:
        if isinstance(self.activation, str):
            if self.activation not in ACTIVATIONS:
                raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)} or a "
                                 f"callable, got {self.activation!r}")
        elif not callable(self.activation):
            raise TypeError(f"activation must be a name or a callable, got {self.activation!r}")
        shapes = {n: _shape(getattr(self, n)) for n in self.ARRAYS
                  if getattr(self, n) is not None}
        d, m = _expect(shapes, "W_gate", 2)
        _expect(shapes, "W_up", 2, (d, m))
        _expect(shapes, "W_down", 2, (m, d))
        H, _, r = _expect(shapes, "W_q", 3, (None, d, None))
        if r % 2:
            raise ValueError(f"W_q must have an even number of columns r (two halves), got {r}")
        _, _, s, _ = _expect(shapes, "keys", 4, (H, 2, None, r // 2))
        E, _ = _expect(shapes, "down_embed", 2, (None, d))
        _expect(shapes, "up_embed", 2, (E, d))
        if E != s * s:
            raise ValueError(f"{E} experts, but product keys with {s} sub-keys per half index "
                             f"s^2 = {s * s} experts")
        for name, size in (("b_gate", m), ("b_up", m), ("b_down", d)):
            if name in shapes and shapes[name] != (size,):
                raise ValueError(f"{name} must have shape ({size},), got {shapes[name]}")
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)):
            raise TypeError(f"k must be an integer, got {self.k!r}")
        if not 1 <= self.k <= s:
            raise ValueError(
                f"k = {self.k} experts per head must lie in [1, {s}]: product-key retrieval "
                f"takes the top k of the s = sqrt(E) = {s} sub-keys of each half "
                f"(E = {E} experts)"
            )
        for name in shapes:
            _check_finite(name, getattr(self, name))
        object.__setattr__(self, "k", int(self.k))
        for key, value in (("d", d), ("hidden", m), ("heads", H), ("retrieval_dim", r),
                           ("sub_keys", s), ("experts", E)):
            object.__setattr__(self, key, value)

    @classmethod
    def init(cls, d: int, hidden: int, experts: int, heads: int, k: int,
             retrieval_dim: int | None = None, *, bias: bool = False, seed: Any = 0,
             backend: str = "numpy", activation: str | Callable = "silu") -> CrossDomainMoE:
        """Random weights, N(0, 1/fan_in) (fan_in: d for W_gate, W_up, W_q, the
        embeddings; m for W_down; r/2 for the sub-keys); biases zero. ``experts`` must be
        a perfect square; ``retrieval_dim`` r defaults to 2 ceil(d / 4)."""
        s = math.isqrt(experts)
        if s * s != experts:
            raise ValueError(f"experts must be a perfect square (product keys), got {experts}")
        r = retrieval_dim if retrieval_dim is not None else 2 * math.ceil(d / 4)
        gen = rng(seed)
        arrays = {
            "W_gate": gen.standard_normal((d, hidden)) / np.sqrt(d),
            "W_up": gen.standard_normal((d, hidden)) / np.sqrt(d),
            "W_down": gen.standard_normal((hidden, d)) / np.sqrt(hidden),
            "W_q": gen.standard_normal((heads, d, r)) / np.sqrt(d),
            "keys": gen.standard_normal((heads, 2, s, r // 2)) / np.sqrt(r // 2),
            "down_embed": gen.standard_normal((experts, d)) / np.sqrt(d),
            "up_embed": gen.standard_normal((experts, d)) / np.sqrt(d),
        }
        if bias:
            arrays.update(b_gate=np.zeros(hidden), b_up=np.zeros(hidden), b_down=np.zeros(d))
        return cls(**{n: from_numpy(a, backend) for n, a in arrays.items()}, k=k,
                   activation=activation)

    @property
    def d_in(self) -> int:
        """Features read per token (a residual map R^d -> R^d: ``attention.transformer``)."""
        return self.d

    @property
    def d_out(self) -> int:
        return self.d

    def on(self, like: Array) -> CrossDomainMoE:
        """These weights on the backend, dtype and device of ``like``."""
        return convert_arrays(self, like)

    @property
    def sigma(self) -> Callable[[Array], Array]:
        return ACTIVATIONS[self.activation] if isinstance(self.activation, str) \
            else self.activation

    def queries(self, x: Array) -> Array:
        """The retrieval queries q^h = x W_q^h, (..., H, r): one product with the heads'
        maps side by side, [W_q^1 ... W_q^H] (d, H r)."""
        xp = namespace(x)
        side_by_side = xp.reshape(xp.permute_dims(self.W_q, (1, 0, 2)),
                                  (self.d, self.heads * self.retrieval_dim))
        q = x @ side_by_side
        return xp.reshape(q, (*q.shape[:-1], self.heads, self.retrieval_dim))

    def retrieve(self, x: Array) -> tuple[Array, Array]:
        """(scores, expert indices), each (..., H, k): the experts each head selects."""
        return product_key_top_k(self.queries(x), self.keys, self.k)

    def shared(self, x: Array) -> Array:
        """The cross-domain SwiGLU, (..., d)."""
        gate, up = x @ self.W_gate, x @ self.W_up
        if self.b_gate is not None:
            gate = gate + self.b_gate
        if self.b_up is not None:
            up = up + self.b_up
        y = (self.sigma(gate) * up) @ self.W_down
        return y if self.b_down is None else y + self.b_down

    def experts_output(self, x: Array) -> Array:
        """sum_h sum_{e in E_h(x)} sigma(<x, d_e>) softmax(s^h)_e u_e, (..., d)."""
        xp = namespace(x)
        scores, idx = self.retrieve(x)  # (..., H, k)
        flat = xp.reshape(idx, (-1,))
        shape = (*idx.shape, self.d)
        down = xp.reshape(xp.take(self.down_embed, flat, axis=0), shape)
        up = xp.reshape(xp.take(self.up_embed, flat, axis=0), shape)
        gates = self.sigma(xp.sum(x[..., None, None, :] * down, axis=-1)) * _softmax(scores)
        return xp.sum(gates[..., None] * up, axis=(-3, -2))

    def forward(self, x: Array) -> Array:
        """y (..., d) for tokens x (..., d): the shared SwiGLU plus the retrieved experts."""
        if getattr(x, "ndim", 0) < 1 or x.shape[-1] != self.d:
            raise ValueError(f"tokens must have {self.d} features on the last axis, got shape "
                             f"{tuple(getattr(x, 'shape', ()))}")
        return self.shared(x) + self.experts_output(x)

    __call__ = forward


def cdmoe(x: Array, params: dict[str, Any], k: int, activation: Any = "silu") -> Array:
    """The CDMoE of tokens x (..., d) with the arrays ``params`` (named as the fields of
    :class:`CrossDomainMoE`): ``CrossDomainMoE(**params, k=k, activation=activation)(x)``."""
    return CrossDomainMoE(**params, k=k, activation=activation)(x)


def _expect(shapes: dict[str, tuple[int, ...]], name: str, rank: int,
            sizes: tuple[int | None, ...] | None = None) -> tuple[int, ...]:
    """The shape of ``name``, checked against its rank and the known sizes (None: free)."""
    if name not in shapes:
        raise ValueError(f"CDMoE needs the array {name}")
    shape = shapes[name]
    if len(shape) != rank or (sizes is not None and any(
            want is not None and want != got for want, got in zip(sizes, shape, strict=True))):
        want = "x".join("?" if w is None else str(w) for w in (sizes or (None,) * rank))
        raise ValueError(f"{name} must have shape ({want}) (rank {rank}), got {shape}")
    return shape
