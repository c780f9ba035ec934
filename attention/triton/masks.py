"""Masks and biases as kernel arguments: host plans become tensors, strides and constexprs.

A mask describes itself (``attention.masks.Mask.kernel_plan``) by a host ``KernelPlan``:
how the kernel walks the key tiles (``ITER``: all tiles, the causal band, or block lists)
and which elementwise rule it applies where a tile is not fully allowed (``RULE``: none,
causal, anchored, a dense table). Positions are the token indices 0..n-1 (queries and keys
are the same sequence for every plan except a dense table). Here a plan becomes a ``Plan``:

    None                  -> all tiles, no rule (the ragged last tile is bounds-masked)
    "causal"              -> the causal band: tiles J < I unmasked, the diagonal tile masked
    a Mask object         -> its ``kernel_plan`` (causal band, anchor rule, block lists, table)
    boolean array         -> all tiles, dense table (B|1, H|1, n, m) everywhere

A bias describes itself by a ``KernelBias``: the distance bias -m_h g(|i - j|) (ALiBi,
the harmonic form) becomes per-head slopes and either g(r) = r computed in the kernel or a
table of g(0..n-1); a key-only bias (DMA) a (B, H, m) vector. Everything is scaled by
log2(e) here, once. This module reads plans; it knows no mask or bias class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attention.masks import BlockLayout, KernelBias, KernelPlan, square_positions
from attention.triton import kernels

LOG2E = kernels.LOG2E
VISIT = {"all": kernels.ITER_ALL, "causal": kernels.ITER_CAUSAL, "lists": kernels.ITER_LISTS}
RULES = {"none": kernels.RULE_NONE, "causal": kernels.RULE_CAUSAL,
         "anchored": kernels.RULE_ANCHORED, "dense": kernels.RULE_DENSE}


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


def _lists_plan(layouts: tuple[BlockLayout, ...], rule: int, B: int, device) -> Plan:
    """FULL_NUM/PART_NUM (L, Qb) and FULL_IDX/PART_IDX (L, Qb, Kb) int32 tensors, L = 1
    (shared by the batch) or B."""
    if len(layouts) not in (1, B):
        raise ValueError(f"got {len(layouts)} block layouts for a batch of {B}")
    part_num, part_idx, full_num, full_idx = (
        _int_tensor(np.stack(a), device) for a in zip(*(lay.kv_arrays() for lay in layouts),
                                                      strict=True))
    shared = len(layouts) == 1
    strides = {"snb": 0 if shared else full_num.stride(0), "snq": full_num.stride(1),
               "sib": 0 if shared else full_idx.stride(0), "siq": full_idx.stride(1)}
    return Plan(kernels.ITER_LISTS, rule, layouts[0].block, {
        "FULL_NUM": full_num, "FULL_IDX": full_idx, "PART_NUM": part_num,
        "PART_IDX": part_idx}, strides)


def _from_host(kp: KernelPlan, B: int, H: int, n: int, m: int, device) -> Plan:
    """The tensors of a host plan (module docstring); the causal band needs n == m."""
    if kp.visit == "causal":
        square_positions(n, m)
    if kp.visit == "lists":
        plan = _lists_plan(kp.layouts, RULES[kp.rule], B, device)
    else:
        plan = Plan(VISIT[kp.visit], RULES[kp.rule])
    if "MASK" in kp.arrays:
        dense = _dense_plan(kp.arrays["MASK"], B, H, n, m, device)
        plan.tensors.update(dense.tensors)
        plan.strides.update(dense.strides)
    plan.tensors.update({name: _int_tensor(a, device) for name, a in kp.arrays.items()
                         if name != "MASK"})
    return plan


def plan_mask(mask: Any, causal: bool, B: int, H: int, n: int, m: int, device,
              step: Any = 0, block: int = 64) -> Plan:
    """The ``Plan`` for a mask (module docstring); ``step`` indexes resampled masks."""
    if isinstance(mask, str):
        if mask != "causal":
            raise ValueError(f"the only mask given by name is 'causal', got {mask!r}")
        mask, causal = None, True
    if mask is None:
        return _from_host(KernelPlan("causal", "causal") if causal else KernelPlan(), B, H, n, m,
                          device)
    if isinstance(mask, (np.ndarray, torch.Tensor)):
        if causal:
            mask = torch.as_tensor(mask, device=device).bool() & torch.ones(
                n, m, dtype=torch.bool, device=device).tril()
        return _dense_plan(mask, B, H, n, m, device)
    kp = mask if isinstance(mask, KernelPlan) else mask.kernel_plan(
        n, m, step=step, batch=B, block=block, causal=causal)
    return _from_host(kp, B, H, n, m, device)


# -- biases ---------------------------------------------------------------------------


def distance_bias(bias: KernelBias, H: int, dtype, device) -> tuple[int, dict]:
    """(BIAS kind, tensors) for -m_h g(|i - j|): slopes scaled by log2(e), g(r) = r in the
    kernel or the table of g(0..L-1)."""
    if bias.slopes.size != H:
        raise ValueError(f"the bias has {bias.slopes.size} slopes, the queries have {H} heads")
    slopes = torch.as_tensor(bias.slopes * LOG2E, dtype=dtype, device=device)
    if bias.distances is None:
        return kernels.BIAS_LINEAR, {"SLOPES": slopes}
    table = np.asarray(bias.distances, dtype=np.float64)
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
