"""MFA and MFA-KR: many query heads over ONE wide key/value head (arXiv 2412.19255).

Multi-matrix factorisation attention (Hu et al., ACL Findings 2025), attention.md §3.2:

    k_j = x_j S_k,  v_j = x_j S_v  (in R^C, shared by all m heads),
    q^c_i = norm?(x_i S_q) Q_c,    y_i = sum_c (sum_j P^c_ij v_j) O_c

so MFA is MQA with a large head dimension C and a low-rank query factorisation; its
FPBA form is W_c = S_q Q_c S_k^T (rank C), U_c = S_v O_c. The cache holds k and v: 2C
elements per token, whatever m. Shapes: S_q (d, C_q), Q (m, C_q, C), S_k, S_v (d, C),
O (m, C, d_out). The score scale is 1/sqrt(C) as in StepFun's Step-3 code (the paper's
formula shows 1/sqrt(d); pass ``scale`` to the operator to change it). ``query_norm``
applies the RMS normalisation Step-3 inserts on x S_q (without a learned gain).

MFA-KR (key reuse, §3.3) caches only k and rebuilds the value from it,

    v_j = k_j + alpha (.) (k_j N),     alpha in R^C (initialised to 0), N in R^{C x C},

so the cache holds C elements per token. Which key is reused under RoPE is not
verified (attention.md §10.5): ``value_from="pre_rope"`` (default) caches the
un-rotated key, builds the value from it and rotates the key at score time;
``"post_rope"`` caches the rotated key and builds the value from that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from attention.array_api import Array, check_real_dtype, namespace
from attention.positional import Rope
from attention.variants.standard import Heads, check_weight


def _matrix(name: str, w: Any, rows: int | None = None) -> tuple[int, int]:
    if getattr(w, "ndim", None) != 2:
        raise ValueError(f"{name} must be a matrix, got {getattr(w, 'shape', type(w).__name__)}")
    check_real_dtype(name, w)
    if rows is not None and w.shape[0] != rows:
        raise ValueError(
            f"{name} has {w.shape[0]} rows, expected {rows}; the dimensions do not fit"
        )
    return int(w.shape[0]), int(w.shape[1])


@dataclass(frozen=True)
class FactorizedHeads(Heads):
    """Heads of MFA (``key_reuse=False``: S_v given) or MFA-KR (``key_reuse=True``: N, alpha)."""

    S_q: Any
    Q: Any
    S_k: Any
    O: Any
    S_v: Any = None
    N: Any = None
    alpha: Any = None
    key_reuse: bool = False
    query_norm: bool = False
    rope: Rope | None = None
    value_from: str = "pre_rope"

    ARRAYS: ClassVar[tuple[str, ...]] = ("S_q", "Q", "S_k", "O", "S_v", "N", "alpha")

    def __post_init__(self) -> None:
        d, c_q = _matrix("S_q", self.S_q)
        _, C = _matrix("S_k", self.S_k, rows=d)
        m, _, c = check_weight("Q", self.Q, rows=c_q)
        if c != C:
            raise ValueError(f"Q maps to {c} dimensions but the key head has C = {C}")
        m_o, c_o, d_out = check_weight("O", self.O)
        if (m_o, c_o) != (m, C):
            raise ValueError(f"O must have shape ({m}, {C}, d_out), got {tuple(self.O.shape)}")
        if self.key_reuse:
            if self.S_v is not None:
                raise ValueError("MFA-KR reuses the key as the value: give N and alpha, not S_v")
            if self.N is None or self.alpha is None:
                raise ValueError("MFA-KR needs N (C, C) and alpha (C,)")
            if tuple(self.N.shape) != (C, C) or tuple(self.alpha.shape) != (C,):
                raise ValueError(f"N must be ({C}, {C}) and alpha ({C},), got "
                                 f"{tuple(self.N.shape)} and {tuple(self.alpha.shape)}")
        else:
            if self.S_v is None or self.N is not None or self.alpha is not None:
                raise ValueError("MFA needs S_v (d, C) and no N/alpha (those belong to MFA-KR)")
            _matrix("S_v", self.S_v, rows=d)
            if self.S_v.shape[1] != C:
                raise ValueError(f"S_v must have C = {C} columns, got {self.S_v.shape[1]}")
        if self.value_from not in ("pre_rope", "post_rope"):
            raise ValueError(
                f"value_from must be 'pre_rope' or 'post_rope', got {self.value_from!r}"
            )
        if self.rope is not None and C % 2:
            raise ValueError(f"RoPE needs an even head dimension C, got {C}")
        self._derive(n_heads=m, n_groups=1, d_in=d, head_dim=C, value_dim=C, d_out=d_out,
                     query_dim=c_q)

    def _rot(self, a: Array, pos: Any) -> Array:
        return a if self.rope is None else self.rope(a, pos)

    def queries(self, x: Array, pos: Any) -> Array:
        xp = namespace(x)
        c = x @ self.S_q
        if self.query_norm:
            c = c / xp.sqrt(xp.mean(c * c, axis=-1, keepdims=True) + 1e-6)
        return self._rot(c[:, None] @ self.Q, pos)

    def cache(self, x: Array, pos: Any) -> dict[str, Array]:
        k = (x @ self.S_k)[:, None]
        if not self.key_reuse:
            return {"k": self._rot(k, pos), "v": (x @ self.S_v)[:, None]}
        return {"k": k if self.value_from == "pre_rope" else self._rot(k, pos)}

    def keys_values(self, cache: dict[str, Array], pos: Any) -> tuple[Array, Array]:
        if not self.key_reuse:
            return cache["k"], cache["v"]
        k = cache["k"]
        v = k + self.alpha * (k @ self.N)
        return (self._rot(k, pos) if self.value_from == "pre_rope" else k), v

    def output(self, o: Array) -> Array:
        return namespace(o).sum(o @ self.O, axis=1)
