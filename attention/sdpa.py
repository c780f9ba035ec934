"""The torch route: scaled_dot_product_attention, which never stores the n x m matrix.

Softmax attention maps directly onto SDPA. The unnormalised (USA) forms need the
partition function Z_i = sum_j e^{s_ij}; on the CPU the flash kernel returns
log Z_i beside its output, so  (1/m) sum_j e^{s_ij} v_j = out_i * exp(log Z_i - log m).
Where that kernel is unavailable the caller falls back to the chunked reference.
"""

from __future__ import annotations

import math
from typing import Any

from attention.backend import Array
from attention.reference import Normalization


def _fold_beta(q: Array, beta: Any) -> Array:
    """beta q: SDPA then runs with scale 1 (its kernels mishandle scale = 0 under masks)."""
    return q * beta


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

    q, scale = _fold_beta(q, beta), 1.0
    if normalization == "softmax":
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    if q.device.type != "cpu" or q.shape[-1] != v.shape[-1]:
        return None
    flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if flash is None:
        return None
    shape = q.shape
    q4, k4, v4 = (t.reshape(-1, 1, *t.shape[-2:]) for t in (q, k, v))
    try:
        out, lse = flash(q4, k4, v4, 0.0, causal, scale=scale)[:2]
    except RuntimeError:
        return None
    weight = torch.exp(lse - math.log(k.shape[-2])).reshape(*shape[:-1], 1)
    out = out.reshape(*shape[:-1], v.shape[-1]) * weight
    if normalization == "usa-shifted":
        out = out * torch.exp(-torch.as_tensor(beta, dtype=out.dtype, device=out.device))
    return out
