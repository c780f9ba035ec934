"""MLA: multi-head latent attention (DeepSeek-V2, arXiv 2405.04434 §2.1; attention.md §2).

Keys and values are read from one cached latent c_j = x_j W_DKV (d_c) plus one shared
rotary key k^R_j = RoPE(x_j W_KR) (d_r):

    k^h_j = [c_j W_UK^h ; k^R_j],   v^h_j = c_j W_UV^h,
    q^h_i = [c^Q_i W_UQ^h ; RoPE(c^Q_i W_QR^h)],   c^Q_i = x_i W_DQ,
    s^h_ij = <q^h_i, k^h_j> / sqrt(d_h + d_r),     y_i = sum_h o^h_i W_O^h

The cache is (c_j, k^R_j): d_c + d_r elements per token. The *absorbed* decode path
folds W_UK^h into the query and W_UV^h into the output,

    <q^C_i, c_j W_UK^h> = <q^C_i W_UK^{hT}, c_j>,   o^h W_O^h = (sum_j P_ij c_j) W_UV^h W_O^h,

so decoding is MQA over the cached latent with head dimension d_c + d_r (``absorbed=True``);
both paths give the same output. DeepSeek-V2/V3 checkpoints also normalise the two
latents, c^Q_i = N_Q(x_i W_DQ) and c_j = N_KV(x_j W_DKV) (RMSNorm: ``norm_q``, ``norm_kv``;
None: no normalisation), which the absorbed path keeps.
Shapes: W_DKV (d, d_c), W_UK (H, d_c, d_h), W_UV (H, d_c, d_v), W_DQ (d, d_cq),
W_UQ (H, d_cq, d_h), W_QR (H, d_cq, d_r), W_KR (d, d_r), W_O (H, d_v, d_out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from attention.array_api import Array, check_real_dtype, namespace
from attention.positional import Rope
from attention.variants.standard import Heads, check_weight


@dataclass(frozen=True)
class LatentHeads(Heads):
    """Heads of MLA (module docstring); ``absorbed`` selects the decode-time factorisation."""

    W_DKV: Any
    W_UK: Any
    W_UV: Any
    W_DQ: Any
    W_UQ: Any
    W_QR: Any
    W_KR: Any
    W_O: Any
    rope: Rope = field(default_factory=Rope)
    absorbed: bool = False
    norm_q: Any = None
    norm_kv: Any = None

    ARRAYS: ClassVar[tuple[str, ...]] = (
        "W_DKV", "W_UK", "W_UV", "W_DQ", "W_UQ", "W_QR", "W_KR", "W_O"
    )

    def __post_init__(self) -> None:
        for name in ("W_DKV", "W_DQ", "W_KR"):
            if getattr(getattr(self, name), "ndim", None) != 2:
                raise ValueError(f"{name} must be a matrix")
            check_real_dtype(name, getattr(self, name))
        d, d_c = (int(s) for s in self.W_DKV.shape)
        d_cq = int(self.W_DQ.shape[1])
        d_r = int(self.W_KR.shape[1])
        if self.W_DQ.shape[0] != d or self.W_KR.shape[0] != d:
            raise ValueError("W_DKV, W_DQ and W_KR must all have d rows")
        H, _, d_h = check_weight("W_UK", self.W_UK, rows=d_c)
        h_v, _, d_v = check_weight("W_UV", self.W_UV, rows=d_c)
        h_q, _, d_hq = check_weight("W_UQ", self.W_UQ, rows=d_cq)
        h_r, _, d_rq = check_weight("W_QR", self.W_QR, rows=d_cq)
        h_o, d_vo, d_out = check_weight("W_O", self.W_O)
        if len({H, h_v, h_q, h_r, h_o}) != 1:
            raise ValueError("every per-head MLA weight must have the same number of heads")
        if d_hq != d_h or d_rq != d_r or d_vo != d_v:
            raise ValueError("MLA head dimensions do not fit: W_UQ/W_UK, W_QR/W_KR, W_UV/W_O")
        if d_r % 2:
            raise ValueError(f"the decoupled RoPE dimension d_r must be even, got {d_r}")
        self._derive(n_heads=H, n_groups=1 if self.absorbed else H, d_in=d,
                     head_dim=d_c + d_r if self.absorbed else d_h + d_r,
                     value_dim=d_c if self.absorbed else d_v, d_out=d_out, latent_dim=d_c,
                     rope_dim=d_r, qk_dim=d_h)

    @property
    def default_scale(self) -> float:
        """1/sqrt(d_h + d_r) on both paths (the absorbed path keeps the original scale)."""
        return 1.0 / math.sqrt(self.qk_dim + self.rope_dim)

    def absorb(self) -> LatentHeads:
        return replace(self, absorbed=True)

    def on(self, like: Array) -> LatentHeads:
        moved = super().on(like)
        norms = {name: getattr(self, name).on(like) for name in ("norm_q", "norm_kv")
                 if getattr(self, name) is not None}
        return replace(moved, **norms) if norms else moved

    def queries(self, x: Array, pos: Any) -> Array:
        xp = namespace(x)
        cq = x @ self.W_DQ
        cq = (cq if self.norm_q is None else self.norm_q(cq))[:, None]
        q_c = cq @ self.W_UQ
        q_r = self.rope(cq @ self.W_QR, pos)
        if self.absorbed:
            q_c = q_c @ xp.matrix_transpose(self.W_UK)
        return xp.concat([q_c, q_r], axis=-1)

    def cache(self, x: Array, pos: Any) -> dict[str, Array]:
        c = x @ self.W_DKV
        c = c if self.norm_kv is None else self.norm_kv(c)
        return {"c": c, "k_rope": self.rope(x @ self.W_KR, pos)}

    def keys_values(self, cache: dict[str, Array], pos: Any) -> tuple[Array, Array]:
        xp = namespace(cache["c"])
        c, k_r = cache["c"][:, None], cache["k_rope"][:, None]
        if self.absorbed:
            return xp.concat([c, k_r], axis=-1), c
        H = self.n_heads
        k_c = c @ self.W_UK
        k_r = xp.broadcast_to(k_r, (k_r.shape[0], H, *k_r.shape[2:]))
        return xp.concat([k_c, k_r], axis=-1), c @ self.W_UV

    def output(self, o: Array) -> Array:
        xp = namespace(o)
        if self.absorbed:
            o = o @ self.W_UV
        return xp.sum(o @ self.W_O, axis=1)
