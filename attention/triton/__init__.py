"""Triton kernels for attention flows: one fused launch per right-hand side, no n x n memory.

The flow of tokens x (B, n, d) under H attention heads,

    x_dot_i = E( sum_h sum_j A^h_ij v^h_j ),   A^h = softmax_j(beta_h <q^h_i, k^h_j> + b^h_ij)

(or the 1/n USA weights), is one kernel launch: the online softmax of FlashAttention-2,
the sum over heads, and the epilogue E, which is the tangent projection v - <x_i, v> x_i
on the sphere, the identity (Pre-LN, pure attention) or v / |v| (Peri-LN). Masks (causal,
anchored, PrFlash block lists, dense tables), distance biases (ALiBi, harmonic) and the
DMA key bias are applied inside the tiles; key/value heads may be shared by several query
heads. For d <= 4 without masks other than causal, a low-dimensional kernel (``lowdim``)
replaces the online softmax by a fixed per-row shift and exact FMA scores.

* ``attend(q, k, v, beta, ...)``    - every head, (B, H, n, f) (and the LSE on request);
* ``flow_rhs(x, q, k, v, beta, ...)`` - the head sum with the epilogue, (B, n, f);
* ``attend_any(q, k, v, beta, ...)``  - A v for (..., n, e) inputs with broadcasting
  leading axes (``attention.router`` runs ``fused_attention`` on (B, H, n, e) directly);
* ``pairwise_extreme(x)``            - min_{i != j} <x_i, x_j> (the clustering test).

CUDA tensors run compiled kernels; with ``TRITON_INTERPRET=1`` set before this package
is first imported, CPU tensors run them in Triton's interpreter (the tests do this).
"""

from __future__ import annotations

from typing import Any

import torch

from attention.reference import as_batch_of_heads
from attention.triton.kernels import INTERPRET
from attention.triton.launch import (
    DTYPES,
    FAMILIES,
    PRECISIONS,
    Tiles,
    fused_attention,
    pairwise_extreme,
    runs_here,
)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: Any, **options: Any):
    """A v for every head: q (B, H, n, e), k (B|1, G, m, e), v (B|1, G, m, f) -> (B, H, n, f).

    Options as ``launch.fused_attention`` (normalization, causal, mask, step, bias,
    key_bias, return_lse, precision, tiles).
    """
    return fused_attention(q, k, v, beta, heads="separate", **options)


def flow_rhs(x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: Any, *,
             epilogue: str | None = "tangent", **options: Any) -> torch.Tensor:
    """E(sum_h A^h v^h) for tokens x (B, n, d), q (B, H, n, e), k/v (B|1, G, n, .) -> (B, n, d).

    epilogue: "tangent" (the sphere), None (Pre-LN / R^d) or "unit" (Peri-LN).
    """
    return fused_attention(q, k, v, beta, heads="sum", x=x, epilogue=epilogue, **options)


def attend_any(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: Any, *,
               normalization: str = "softmax", causal: bool = False) -> torch.Tensor:
    """A v for q (..., n, e), k (..., m, e), v (..., m, f) with broadcasting leading axes;
    beta is a number or broadcasts against (..., 1, 1)."""
    q4, k4, v4, beta, lead = as_batch_of_heads(q, k, v, beta)
    out = fused_attention(q4, k4, v4, beta, normalization=normalization, causal=causal)
    return out.reshape(*lead, q.shape[-2], v.shape[-1])


__all__ = [
    "DTYPES",
    "FAMILIES",
    "INTERPRET",
    "PRECISIONS",
    "Tiles",
    "attend",
    "attend_any",
    "flow_rhs",
    "fused_attention",
    "pairwise_extreme",
    "runs_here",
]
