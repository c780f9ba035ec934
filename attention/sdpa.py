"""The torch route: scaled_dot_product_attention, which never stores the n x m matrix.

Softmax attention maps directly onto SDPA: a mask and an additive bias become its
``attn_mask`` (boolean, or float with -inf where masked), shared key/value heads its
``enable_gqa``. The unnormalised (USA) forms need the partition function
Z_i = sum_j e^{s_ij}; on the CPU the flash kernel returns log Z_i beside its output, so
(1/m) sum_j e^{s_ij} v_j = out_i * exp(log Z_i - log m). Where that kernel is unavailable
(or a mask or bias is given) ``sdpa_attend`` returns None and the router takes the next path.

SDPA's fused kernels (flash on the CPU; flash and memory-efficient on CUDA) accept
only 4-d (batch, heads, n, e) inputs: for any other rank torch silently takes its
math kernel, which stores the n x m matrix (2-5x slower on the CPU, +1 GiB at
n = 16384 in fp32). The router therefore passes (B, H, n, e), leading axes flattened into B.
"""

from __future__ import annotations

import math
from typing import Any

from attention.array_api import Array
from attention.masks import as_backend_mask
from attention.reference import four_d


def _attn_mask(q: Array, mask: Any, causal: bool, bias: Array | None) -> Array | None:
    """SDPA's ``attn_mask`` for a mask (booleans broadcasting to (B, H, n, m)), the causal
    mask and a bias; None when there is neither mask nor bias (``is_causal`` does it)."""
    import torch

    if mask is None and bias is None:
        return None
    n, m = q.shape[2], (bias if mask is None else mask).shape[-1]
    allowed = None if mask is None else four_d(as_backend_mask(mask, q))
    if causal:
        c = torch.ones(n, m, dtype=torch.bool, device=q.device).tril()
        allowed = c if allowed is None else allowed & c
    if bias is None:
        return allowed
    attn = bias.to(q.dtype)
    return attn if allowed is None else torch.where(allowed, attn,
                                                    torch.full_like(attn, float("-inf")))


def sdpa_attend(
    q: Array,
    k: Array,
    v: Array,
    scale: Any,
    *,
    normalization: str = "softmax",
    causal: bool = False,
    mask: Any = None,
    bias: Array | None = None,
) -> Array | None:
    """o (B, H, n, f) for q (B, H, n, e), k, v (B|1, G, m, .) through SDPA; None where SDPA
    cannot express the call (USA with a mask, a bias, off the CPU, or e != f).

    The scale is folded into q where it is per batch (SDPA's scale must be a Python float),
    a mask is given, or the mask is causal (torch 2.13's CPU flash kernel multiplies its
    -inf mask by the scale: NaN for scale <= 0)."""
    import torch
    import torch.nn.functional as F

    B, H = q.shape[:2]
    G, f = k.shape[1], v.shape[-1]
    if k.shape[0] != B:
        k, v = k.expand(B, *k.shape[1:]), v.expand(B, *v.shape[1:])
    attn, beta = _attn_mask(q, mask, causal, bias), scale
    if causal or attn is not None or isinstance(scale, torch.Tensor):
        q, scale = q * scale, 1.0
    if normalization == "softmax":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn, scale=float(scale),
                                              is_causal=causal and attn is None,
                                              enable_gqa=G != H)
    flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if attn is not None or q.device.type != "cpu" or q.shape[-1] != f or flash is None:
        return None
    k, v = (t.repeat_interleave(H // G, dim=1) if G != H else t.contiguous() for t in (k, v))
    try:
        out, lse = flash(q, k, v, 0.0, causal, scale=float(scale))[:2]
    except RuntimeError:
        return None
    out = out * torch.exp(lse - math.log(k.shape[-2]))[..., None]
    if normalization == "usa-shifted":
        out = out * torch.exp(-torch.as_tensor(beta, dtype=out.dtype, device=out.device))
    return out
