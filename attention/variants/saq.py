"""SAQ: staircase adaptive quantisation of an MQA key/value cache (Fulu Li, arXiv 2410.18441).

Only the abstract and a noisy OCR of one pseudo-code figure could be read (attention.md
§5.2); the algorithm below is the package's reconstruction, in the spirit of KIVI
(arXiv 2402.02750). Tokens enter a full-precision residual; every S tokens the residual
becomes a group quantised at B_2 bits, and every older group steps one stair down:

    stage s = 1, 2, ..., q_n - 1  (1 = newest group)  is stored at B_{s+1} bits,
    B_1 = 16 (the residual) >= B_2 >= ... >= B_{q_n},

the group reaching the last stage joining one tail at B_{q_n}. Each step down
dequantises and re-quantises (errors accumulate, as in the pseudo-code); a group already
in the tail is not re-quantised again. Quantisation is asymmetric min-max,

    scale = (max - min) / (2^b - 1),  code = round((x - min) / scale),  x^ = code scale + min,

so |x - x^| <= scale / 2. Keys are quantised per channel over groups of G tokens, values
per token over their channels (KIVI's choice; unverified for SAQ, so ``value_mode="channel"``
quantises values like keys). A width b >= 16 means
"kept at full precision" (no rounding), so with every width 16 SAQ is exactly MQA.

Stored bits per channel of a stream of N = s_n S + r tokens (r < S in the residual):
    r * 16 + S * sum_{a=1}^{s_n} B_{min(a, q_n - 1) + 1}
(for s_n >= q_n - 2 this is r*16 + S*sum_{l=2}^{q_n-1} B_l + (N - r - (q_n-2) S) B_{q_n},
attention.md §5.2 with the residual holding r tokens), plus a 16-bit scale and zero per
quantisation group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attention.array_api import Array, namespace

FULL_PRECISION = 16


@dataclass(frozen=True)
class Staircase:
    """The schedule: S tokens per flush, widths (B_2, ..., B_{q_n}), G tokens per key group,
    and how values are quantised ("token": per token, "channel": like keys)."""

    group: int = 8
    bits: tuple[int, ...] = (8, 4, 2)
    quant_group: int = 4
    value_mode: str = "token"

    def __post_init__(self) -> None:
        for name in ("group", "quant_group"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.group % self.quant_group:
            raise ValueError(
                f"the quantisation group G = {self.quant_group} must divide S = {self.group}"
            )
        if self.value_mode not in ("token", "channel"):
            raise ValueError(f"value_mode must be 'token' or 'channel', got {self.value_mode!r}")
        bits = tuple(self.bits)
        if not bits:
            raise ValueError("give at least one bit width (B_2, ..., B_qn)")
        for b in bits:
            if not isinstance(b, (int, np.integer)) or isinstance(b, bool) or not 1 <= b <= 16:
                raise ValueError(f"bit widths must be integers in [1, 16], got {self.bits!r}")
        if any(later > earlier for earlier, later in zip((16, *bits), bits, strict=False)):
            raise ValueError(f"bit widths must not increase with age: 16 >= B_2 >= ..., got {bits}")
        object.__setattr__(self, "bits", bits)

    @property
    def stages(self) -> int:
        """q_n - 1: the number of quantised stages."""
        return len(self.bits)

    def stored_bits(self, n_tokens: int) -> int:
        """Bits per channel of a stream of ``n_tokens`` tokens (module docstring)."""
        s_n, r = divmod(int(n_tokens), self.group)
        ages = np.arange(1, s_n + 1)
        widths = np.asarray(self.bits)[np.minimum(ages, self.stages) - 1]
        return int(r * FULL_PRECISION + self.group * widths.sum())


def quantize(x: Array, bits: int, axis: int) -> tuple[Array, Array, Array]:
    """(codes, scale, zero) of asymmetric min-max quantisation along ``axis``."""
    xp = namespace(x)
    lo = xp.min(x, axis=axis, keepdims=True)
    hi = xp.max(x, axis=axis, keepdims=True)
    scale = (hi - lo) / (2**bits - 1)
    safe = xp.where(scale > 0, scale, xp.ones_like(scale))
    codes = xp.round((x - lo) / safe)
    return codes, scale, lo


def dequantize(codes: Array, scale: Array, zero: Array) -> Array:
    return codes * scale + zero


def roundtrip(x: Array, bits: int, kind: str, quant_group: int) -> Array:
    """deq(Q(x)) for keys (per channel, over groups of ``quant_group`` tokens) or values
    (per token); identity for bits >= 16."""
    if bits >= FULL_PRECISION:
        return x
    xp = namespace(x)
    if kind == "value":
        return dequantize(*quantize(x, bits, axis=-1))
    *lead, n, c = x.shape
    grouped = xp.reshape(x, (*lead, n // quant_group, quant_group, c))
    return xp.reshape(dequantize(*quantize(grouped, bits, axis=-2)), x.shape)


@dataclass
class _Group:
    data: Array
    stage: int
    history: list[int] = field(default_factory=list)


class StaircaseCache:
    """One stream (keys or values) under the staircase; token axis -2, oldest first."""

    def __init__(self, schedule: Staircase, kind: str) -> None:
        if kind not in ("key", "value"):
            raise ValueError(f"kind must be 'key' or 'value', got {kind!r}")
        self.schedule, self.kind = schedule, kind
        self.groups: list[_Group] = []
        self.residual: Array | None = None

    def _quantize(self, x: Array, stage: int) -> Array:
        return roundtrip(x, self.schedule.bits[stage - 1], self.kind, self.schedule.quant_group)

    def append(self, x: Array) -> None:
        """Add tokens (..., t, c); flush every S tokens."""
        xp = namespace(x)
        self.residual = x if self.residual is None else xp.concat([self.residual, x], axis=-2)
        S = self.schedule.group
        while self.residual.shape[-2] >= S:
            self._flush(self.residual[..., :S, :])
            self.residual = self.residual[..., S:, :]

    def _flush(self, block: Array) -> None:
        last = self.schedule.stages
        for g in self.groups:
            if g.stage < last:
                g.stage += 1
                g.data = self._quantize(g.data, g.stage)
                g.history.append(self.schedule.bits[g.stage - 1])
        self.groups.append(_Group(self._quantize(block, 1), 1, [self.schedule.bits[0]]))

    def values(self) -> Array:
        """The dequantised stream (..., N, c), oldest token first."""
        parts = [g.data for g in self.groups]
        if self.residual is not None and self.residual.shape[-2]:
            parts.append(self.residual)
        return namespace(parts[0]).concat(parts, axis=-2)

    def token_bits(self) -> np.ndarray:
        """Bit width of each stored token (N,), oldest first."""
        S, bits = self.schedule.group, self.schedule.bits
        widths = [np.full(S, bits[g.stage - 1]) for g in self.groups]
        r = 0 if self.residual is None else self.residual.shape[-2]
        widths.append(np.full(r, FULL_PRECISION))
        return np.concatenate(widths).astype(int)

    def stored_bits(self) -> int:
        """Bits per channel actually held: sum of the tokens' widths."""
        return int(self.token_bits().sum())


@dataclass(frozen=True)
class StaircaseQuantizer:
    """Operator hook: the cache's keys ("k") and values ("v") as the staircase stores them
    after the whole sequence has streamed in."""

    schedule: Staircase = field(default_factory=Staircase)

    def __call__(self, tensors: dict[str, Array]) -> dict[str, Array]:
        out = dict(tensors)
        value_kind = "value" if self.schedule.value_mode == "token" else "key"
        for name, kind in (("k", "key"), ("v", value_kind)):
            if name in tensors:
                cache = StaircaseCache(self.schedule, kind)
                cache.append(tensors[name])
                out[name] = cache.values()
        return out

    def on(self, like: Any) -> StaircaseQuantizer:
        return self
