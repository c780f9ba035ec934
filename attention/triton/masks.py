"""Masks and biases as kernel arguments: how each mask kind is visited and applied.

A ``Plan`` says how the kernel walks the key tiles (``ITER``: all tiles, the causal band,
or block lists) and which elementwise rule it applies where a tile is not fully allowed
(``RULE``: none, causal, anchored, a dense table). Positions are the token indices
0..n-1 (queries and keys are the same sequence for every mask except a dense table).

    None / Full           -> all tiles, no rule (the ragged last tile is bounds-masked)
    causal / Causal       -> the causal band: tiles J < I unmasked, the diagonal tile masked
    AnchorMask            -> the causal band with the anchor rule; a tile below the band is
                             skipped when it holds no anchor and no key of the query tile's
                             segments (segments are contiguous, so one load decides)
    PrFlashMask           -> its block lists (absent blocks skipped), causal on the diagonal
    other Mask objects    -> their block layout, with the dense table on partial tiles
    boolean array         -> all tiles, dense table (B|1, H|1, n, m) everywhere

The distance bias -m_h g(|i - j|) (ALiBi, the harmonic form) becomes per-head slopes
and either g(r) = r computed in the kernel or a table of g(0..n-1); the DMA key bias
becomes a (B, H, m) vector. Everything is scaled by log2(e) here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attention.anchored import AnchorMask
from attention.masks import BlockLayout, Causal, Full, Mask
from attention.positional import DistanceBias, linear_distance
from attention.prflash import PrFlashMask
from attention.triton import kernels

LOG2E = kernels.LOG2E


@dataclass
class Plan:
    """Kernel arguments describing the mask (see the module docstring)."""

    iter: int = kernels.ITER_ALL
    rule: int = kernels.RULE_NONE
    block: int = 0  # the layout block size (ITER_LISTS), else 0
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    strides: dict[str, int] = field(default_factory=dict)


def _int_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.int32), device=device)


def _dense_plan(allowed: Any, B: int, H: int, n: int, m: int, device) -> Plan:
    """A boolean (..., n, m) table broadcasting to (B, H, n, m), read on every tile."""
    table = allowed if isinstance(allowed, torch.Tensor) else torch.as_tensor(
        np.asarray(allowed, dtype=bool))
    if table.ndim < 2 or table.ndim > 4 or tuple(table.shape[-2:]) != (n, m):
        raise ValueError(f"a mask array must have shape (..., {n}, {m}) with at most 4 axes, "
                         f"got {tuple(table.shape)}")
    table = table.reshape((1,) * (4 - table.ndim) + tuple(table.shape))
    lead = tuple(table.shape[:2])
    if lead[0] not in (1, B) or lead[1] not in (1, H):
        raise ValueError(f"a mask of shape {tuple(table.shape)} does not broadcast to "
                         f"(batch {B}, heads {H}, {n}, {m})")
    table = table.to(device=device, dtype=torch.uint8).contiguous()
    sb, sh, sn, sm = table.stride()
    return Plan(kernels.ITER_ALL, kernels.RULE_DENSE, tensors={"MASK": table},
                strides={"smb": 0 if lead[0] == 1 else sb, "smh": 0 if lead[1] == 1 else sh,
                         "smn": sn, "smm": sm})


def _pack_layouts(layouts: list[BlockLayout], device) -> dict[str, torch.Tensor]:
    """FULL_NUM/PART_NUM (L, Qb) and FULL_IDX/PART_IDX (L, Qb, Kb) int32 tensors."""
    arrays = [layout.kv_arrays() for layout in layouts]
    part_num = np.stack([a[0] for a in arrays])
    part_idx = np.stack([a[1] for a in arrays])
    full_num = np.stack([a[2] for a in arrays])
    full_idx = np.stack([a[3] for a in arrays])
    return {"FULL_NUM": _int_tensor(full_num, device), "FULL_IDX": _int_tensor(full_idx, device),
            "PART_NUM": _int_tensor(part_num, device), "PART_IDX": _int_tensor(part_idx, device)}


def _lists_plan(layouts: list[BlockLayout], rule: int, B: int, device) -> Plan:
    block = layouts[0].block
    tensors = _pack_layouts(layouts, device)
    shared = len(layouts) == 1
    if not shared and len(layouts) != B:
        raise ValueError(f"got {len(layouts)} block layouts for a batch of {B}")
    full_num, full_idx = tensors["FULL_NUM"], tensors["FULL_IDX"]
    strides = {"snb": 0 if shared else full_num.stride(0), "snq": full_num.stride(1),
               "sib": 0 if shared else full_idx.stride(0), "siq": full_idx.stride(1)}
    return Plan(kernels.ITER_LISTS, rule, block, tensors, strides)


def _anchor_plan(mask: AnchorMask, n: int, device) -> Plan:
    pos = np.arange(n)
    seg = mask.segment(pos)
    anc = mask.is_anchor(pos).astype(np.int32)
    cum = np.concatenate([[0], np.cumsum(anc)])  # anchors in [a, b) = cum[b] - cum[a]
    return Plan(kernels.ITER_CAUSAL, kernels.RULE_ANCHORED, tensors={
        "SEG": _int_tensor(seg, device), "ANC": _int_tensor(anc, device),
        "ANC_CUM": _int_tensor(cum, device)})


def plan_mask(mask: Any, causal: bool, B: int, H: int, n: int, m: int, device,
              step: Any = 0, block: int = 64) -> Plan:
    """The ``Plan`` for a mask (module docstring); ``step`` indexes resampled masks."""
    if isinstance(mask, str):
        if mask != "causal":
            raise ValueError(f"the only mask given by name is 'causal', got {mask!r}")
        mask, causal = None, True
    if mask is None or isinstance(mask, Full):
        if not causal:
            return Plan()
        mask = Causal()
    if isinstance(mask, Mask):
        if n != m:
            raise ValueError(f"mask objects need as many keys as queries, got n={n}, m={m}")
        if causal and not mask.causal and not isinstance(mask, (AnchorMask, PrFlashMask)):
            allowed = mask.allowed(np.arange(n), np.arange(m)) & np.tri(n, m, dtype=bool)
            return _dense_plan(allowed, B, H, n, m, device)
        if isinstance(mask, Causal):
            return Plan(kernels.ITER_CAUSAL, kernels.RULE_CAUSAL)
        if isinstance(mask, AnchorMask):
            return _anchor_plan(mask, n, device)
        pos = np.arange(n)
        if isinstance(mask, PrFlashMask):
            steps = np.asarray(step)
            if steps.ndim == 0:
                layouts = [mask.layout(pos, pos, None, int(steps))]
            else:
                if steps.shape != (B,):
                    raise ValueError(f"per-member steps must have shape ({B},), got {steps.shape}")
                member = [b if mask.per_member else None for b in range(B)]
                layouts = [BlockLayout.from_dense(mask._one(pos, pos, int(s), mb), mask.block)
                           for s, mb in zip(steps, member, strict=True)]
            return _lists_plan(layouts, kernels.RULE_CAUSAL, B, device)
        allowed = mask.allowed(pos, pos, step)
        if allowed.ndim != 2:
            return _dense_plan(allowed, B, H, n, m, device)
        plan = _lists_plan([BlockLayout.from_dense(allowed, block)], kernels.RULE_DENSE, B,
                           device)
        dense = _dense_plan(allowed, B, H, n, m, device)
        plan.tensors.update(dense.tensors)
        plan.strides.update(dense.strides)
        return plan
    if isinstance(mask, (np.ndarray, torch.Tensor)):
        allowed = mask
        if causal:
            tri = torch.ones(n, m, dtype=torch.bool).tril()
            allowed = torch.as_tensor(np.asarray(allowed) if isinstance(allowed, np.ndarray)
                                      else allowed.cpu(), dtype=torch.bool) & tri
        return _dense_plan(allowed, B, H, n, m, device)
    raise TypeError(f"mask must be None, 'causal', a Mask object or a boolean array; got "
                    f"{type(mask).__name__}")


# -- biases ---------------------------------------------------------------------------


def distance_bias(bias: DistanceBias, H: int, n: int, m: int, dtype, device) -> tuple[int, dict]:
    """(BIAS kind, tensors) for -m_h g(|i - j|): slopes scaled by log2(e), g(r) = r in the
    kernel or a table of g(0..max(n, m) - 1)."""
    if bias.heads != H:
        raise ValueError(f"the bias has {bias.heads} slopes, the queries have {H} heads")
    slopes = torch.as_tensor(bias.slopes * LOG2E, dtype=dtype, device=device)
    if bias.g is linear_distance:
        return kernels.BIAS_LINEAR, {"SLOPES": slopes}
    table = np.asarray(bias.g(np.arange(max(n, m))), dtype=np.float64)
    return kernels.BIAS_TABLE, {"SLOPES": slopes,
                                "DIST": torch.as_tensor(table, dtype=dtype, device=device)}


def key_bias_tensor(key_bias: Any, B: int, H: int, m: int, dtype, device
                    ) -> tuple[torch.Tensor, dict[str, int]]:
    """A key-only bias (B|1, H|1, m) or (B|1, H|1, 1, m), scaled by log2(e), with strides."""
    kb = torch.as_tensor(key_bias)
    if kb.ndim == 4:
        if kb.shape[2] != 1:
            raise ValueError(f"a key bias varies over keys only: expected (B, H, 1, {m}), "
                             f"got {tuple(kb.shape)}")
        kb = kb[:, :, 0]
    if kb.ndim != 3 or kb.shape[-1] != m or kb.shape[0] not in (1, B) or kb.shape[1] not in (1, H):
        raise ValueError(f"key_bias must have shape (B|1, H|1, {m}), got {tuple(kb.shape)}")
    kb = (kb.to(device=device, dtype=dtype) * LOG2E).contiguous()
    return kb, {"skbb": 0 if kb.shape[0] == 1 else kb.stride(0),
                "skbh": 0 if kb.shape[1] == 1 else kb.stride(1), "skbn": kb.stride(2)}
