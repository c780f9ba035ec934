"""The torch route: scaled_dot_product_attention, which never stores the n x m matrix.

Softmax attention maps directly onto SDPA. The unnormalised (USA) forms need the
partition function Z_i = sum_j e^{s_ij}; on the CPU the flash kernel returns
log Z_i beside its output, so  (1/m) sum_j e^{s_ij} v_j = out_i * exp(log Z_i - log m).
Where that kernel is unavailable the caller falls back to the chunked reference.

SDPA's fused kernels (flash on the CPU; flash and memory-efficient on CUDA) accept
only 4-d (batch, heads, n, e) inputs: for any other rank torch silently takes its
math kernel, which stores the n x m matrix (2-5x slower on the CPU, +1 GiB at
n = 16384 in fp32). Inputs are therefore always passed as (B, 1, n, e), with the
leading axes broadcast and flattened into B.
"""

from __future__ import annotations

import math
from typing import Any

from attention.backend import Array
from attention.reference import Normalization


def _as_torch_scale(q: Array, beta: Any, causal: bool) -> tuple[Array, float]:
    """(q, scale) for SDPA: beta folded into q where it is per batch (SDPA's scale must be
    a Python float) or the mask is causal (torch 2.13's CPU flash kernel multiplies its
    -inf mask by the scale: NaN for beta <= 0)."""
    import torch

    if causal or isinstance(beta, torch.Tensor):
        return q * beta, 1.0
    return q, float(beta)


def _as_4d(q: Array, k: Array, v: Array) -> tuple[Array, Array, Array, tuple[int, ...]]:
    """(..., n, e) tensors -> (B, 1, n, e) views or copies, and the leading shape (...)."""
    lead = tuple(q.shape[:-2])
    if k.shape[:-2] != lead or v.shape[:-2] != lead:
        import torch

        lead = tuple(torch.broadcast_shapes(lead, k.shape[:-2], v.shape[:-2]))
        q, k, v = (t.expand(*lead, *t.shape[-2:]) for t in (q, k, v))
    if len(lead) == 2:
        return q, k, v, lead
    return (*(t.reshape(-1, 1, *t.shape[-2:]) for t in (q, k, v)), lead)


def sdpa_attend(
    q: Array,
    k: Array,
    v: Array,
    beta: Any,
    *,
    normalization: Normalization = "softmax",
    causal: bool = False,
) -> Array | None:
    """A v through torch SDPA for torch tensors; ``None`` where SDPA cannot express it."""
    import torch
    import torch.nn.functional as F

    q, scale = _as_torch_scale(q, beta, causal)
    n, f = q.shape[-2], v.shape[-1]
    q4, k4, v4, lead = _as_4d(q, k, v)
    if normalization == "softmax":
        out = F.scaled_dot_product_attention(q4, k4, v4, is_causal=causal, scale=scale)
        return out.reshape(*lead, n, f)
    if q.device.type != "cpu" or q.shape[-1] != f:
        return None
    flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if flash is None:
        return None
    try:
        out, lse = flash(q4, k4, v4, 0.0, causal, scale=scale)[:2]
    except RuntimeError:
        return None
    weight = torch.exp(lse - math.log(k.shape[-2])).reshape(*lead, n, 1)
    out = out.reshape(*lead, n, f) * weight
    if normalization == "usa-shifted":
        out = out * torch.exp(-torch.as_tensor(beta, dtype=out.dtype, device=out.device))
    return out


def sdpa_grouped(
    q: Array,
    k: Array,
    v: Array,
    scale: Any,
    *,
    mask: Any = None,
    causal: bool = False,
    bias: Array | None = None,
) -> Array:
    """Softmax attention of q (B, H, n, e) over grouped k, v (B, G, m, .) through SDPA.

    The mask (host or torch booleans broadcasting to (B, H, n, m)) and the additive bias
    become SDPA's ``attn_mask`` (boolean, or float with -inf where masked); G < H uses
    ``enable_gqa``. The scale is folded into q (see ``_as_torch_scale``).
    """
    import torch
    import torch.nn.functional as F

    from attention.masks import as_backend_mask

    B, H, n, _ = q.shape
    G, m = k.shape[1], k.shape[2]
    if k.shape[0] != B:
        k, v = k.expand(B, *k.shape[1:]), v.expand(B, *v.shape[1:])
    q = q * scale
    attn = None
    if mask is not None or bias is not None:
        allowed = None
        if mask is not None:
            allowed = as_backend_mask(mask, q)
            allowed = allowed if allowed.ndim != 3 else allowed[:, None]
        if causal:
            c = torch.ones(n, m, dtype=torch.bool, device=q.device).tril()
            allowed = c if allowed is None else allowed & c
        if bias is None:
            attn = allowed
        else:
            attn = bias.to(q.dtype)
            if allowed is not None:
                attn = torch.where(allowed, attn, torch.full_like(attn, float("-inf")))
        causal = False
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn, is_causal=causal, scale=1.0, enable_gqa=G != H
    )
