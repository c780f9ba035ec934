"""Variants by name: a config says which operator, ``init_params`` draws its weights,
``assemble`` builds the :class:`~attention.operator.Operator` from any arrays.

    cfg = OperatorConfig("mfa", d_model=64, heads=8, latent_dim=32)
    op = build(cfg, seed=0)                    # numpy float64 weights
    op = build(cfg, seed=0, backend="torch")   # the same numbers as torch tensors

Variants (attention.md §8): ``mha``, ``gqa`` (``groups``), ``mqa``, ``mla``, ``mfa``,
``mfa_kr``, and on MHA/GQA heads (``groups``, default ``heads``): ``ansan`` (anchor mask),
``prflash`` (random block mask), ``dma`` (dynamic mask bias), ``rope_alibi`` (RoPE and a
distance bias), ``alibi``, ``sinkhorn`` (Sinkhorn normalisation), and ``saq`` (MQA with
a staircase-quantised cache). ``causal`` selects the causal mask for the variants that do
not bring their own; ``rope`` adds rotary embeddings to queries and keys.

Initial weights: i.i.d. normal with variance 1/fan_in (fan_in = the input width of the
map; the output maps W_O have fan_in H f), except where the source code fixes them:
MFA-KR's alpha = 0 (so v = k), DMA's b_dt = 0 and A = 1 ("exp") or 0 ("linear").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from attention import positional, prflash
from attention.anchored import AnchorMask
from attention.array_api import check_integer, from_numpy, rng
from attention.masks import CAUSAL, FULL
from attention.operator import Operator
from attention.positional import Rope
from attention.variants.dma import DynamicMaskBias
from attention.variants.mfa import FactorizedHeads
from attention.variants.mla import LatentHeads
from attention.variants.saq import Staircase, StaircaseQuantizer
from attention.variants.standard import Projections

VARIANTS: tuple[str, ...] = (
    "mha", "gqa", "mqa", "mla", "mfa", "mfa_kr",
    "ansan", "prflash", "dma", "rope_alibi", "alibi", "sinkhorn", "saq",
)
STANDARD = ("mha", "gqa", "mqa", "ansan", "prflash", "dma", "rope_alibi", "alibi", "sinkhorn",
            "saq")
P_KINDS = ("one", "geometric", "harmonic", "window", "given")


@dataclass(frozen=True)
class OperatorConfig:
    """Which attention operator, and its sizes (see the module docstring).

    head_dim: d_h (default d_model // heads); groups: key/value groups (mha: heads, mqa and
    saq: 1, gqa: required); latent_dim: MLA d_c (default 4 d_h) or MFA C (default 2 d_h);
    query_latent_dim: MLA d_c' or MFA C_q (default latent_dim); rope_dim: MLA d_r (default
    d_h // 2). PrFlash: block, p in P_KINDS with p_param (rho, c, w or the table), mask_seed,
    per_member. DMA: window (top-w, None = dense), dma_form "exp" | "linear",
    dma_bias_heads "query" (one bias per query head) | "kv" (per key/value head).
    RoPE x ALiBi: slopes "alibi" | "harmonic" | "zero", distance "harmonic" | "linear".
    SAQ: saq_group S, saq_bits (B_2, ..., B_qn), saq_quant_group G, saq_value_mode.
    """

    variant: str = "mha"
    d_model: int = 64
    heads: int = 4
    head_dim: int | None = None
    groups: int | None = None
    latent_dim: int | None = None
    query_latent_dim: int | None = None
    rope_dim: int | None = None
    rope: bool = False
    rope_base: float = 10000.0
    causal: bool = True
    scale: float | None = None
    normalization: str | None = None
    sinkhorn_iterations: int = 3
    query_norm: bool = False
    value_from: str = "pre_rope"
    anchors: tuple[int, ...] = ()
    block: int = 16
    p: str = "geometric"
    p_param: Any = 0.5
    mask_seed: int = 0
    per_member: bool = False
    window: int | None = None
    dma_form: str = "exp"
    dma_bias_heads: str = "query"
    slopes: str = "alibi"
    distance: str = "harmonic"
    saq_group: int = 8
    saq_bits: tuple[int, ...] = (8, 4, 2)
    saq_quant_group: int = 4
    saq_value_mode: str = "token"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        for name in ("d_model", "heads", "block", "saq_group", "saq_quant_group"):
            check_integer(name, getattr(self, name))
        for name in ("head_dim", "groups", "latent_dim", "query_latent_dim", "rope_dim",
                     "window"):
            if getattr(self, name) is not None:
                check_integer(name, getattr(self, name))
        check_integer("sinkhorn_iterations", self.sinkhorn_iterations, minimum=0)
        needs_d_h = self.variant not in ("mfa", "mfa_kr") or self.latent_dim is None
        if needs_d_h and self.head_dim is None and self.d_model % self.heads:
            raise ValueError(
                f"d_model = {self.d_model} is not divisible by heads = {self.heads}; "
                "give head_dim explicitly"
            )
        if self.variant == "gqa" and self.groups is None:
            raise ValueError("gqa needs the number of key/value groups: pass groups")
        if self.kv_groups < 1 or self.heads % self.kv_groups:
            raise ValueError(
                f"heads = {self.heads} are not divisible by groups = {self.kv_groups}"
            )
        if self.p not in P_KINDS:
            raise ValueError(f"p must be one of {P_KINDS}, got {self.p!r}")
        if self.dma_bias_heads not in ("query", "kv"):
            raise ValueError(f"dma_bias_heads must be 'query' or 'kv', got {self.dma_bias_heads!r}")
        if self.variant == "prflash":
            _distribution(self)  # raises for probabilities outside [0, 1]
        object.__setattr__(self, "anchors", tuple(
            check_integer(f"anchors[{i}]", a, minimum=0) for i, a in enumerate(self.anchors)))
        object.__setattr__(self, "saq_bits", tuple(
            check_integer(f"saq_bits[{i}]", b) for i, b in enumerate(self.saq_bits)))

    @property
    def d_h(self) -> int:
        return self.head_dim if self.head_dim is not None else self.d_model // self.heads

    @property
    def kv_groups(self) -> int:
        if self.variant in ("mqa", "saq"):
            return 1
        if self.variant == "mha":
            return self.heads
        return self.groups if self.groups is not None else self.heads

    @property
    def C(self) -> int:
        """MLA d_c or MFA C."""
        if self.latent_dim is not None:
            return self.latent_dim
        return 4 * self.d_h if self.variant == "mla" else 2 * self.d_h

    @property
    def C_q(self) -> int:
        return self.query_latent_dim if self.query_latent_dim is not None else self.C

    @property
    def d_r(self) -> int:
        return self.rope_dim if self.rope_dim is not None else self.d_h // 2 // 2 * 2


# -- weights -----------------------------------------------------------------------------


def _normal(gen: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return gen.standard_normal(shape) / np.sqrt(fan_in)


def init_params(config: OperatorConfig, seed: Any = 0) -> dict[str, np.ndarray]:
    """Random weights for ``config`` (module docstring), keyed ``heads.NAME`` and ``bias.NAME``
    as :func:`assemble` reads them."""
    gen = rng(seed)
    d, H, e, G = config.d_model, config.heads, config.d_h, config.kv_groups
    v = config.variant
    if v in STANDARD:
        params = {
            "heads.W_Q": _normal(gen, (H, d, e), d),
            "heads.W_K": _normal(gen, (G, d, e), d),
            "heads.W_V": _normal(gen, (G, d, e), d),
            "heads.W_O": _normal(gen, (H, e, d), H * e),
        }
        if v == "dma":
            nb = H if config.dma_bias_heads == "query" else G
            params["bias.W_dt"] = _normal(gen, (G * e, nb), G * e)
            params["bias.b_dt"] = np.zeros(nb)
            params["bias.A"] = np.ones(nb) if config.dma_form == "exp" else np.zeros(nb)
        return params
    if v == "mla":
        C, Cq, r = config.C, config.C_q, config.d_r
        return {
            "heads.W_DKV": _normal(gen, (d, C), d),
            "heads.W_UK": _normal(gen, (H, C, e), C),
            "heads.W_UV": _normal(gen, (H, C, e), C),
            "heads.W_DQ": _normal(gen, (d, Cq), d),
            "heads.W_UQ": _normal(gen, (H, Cq, e), Cq),
            "heads.W_QR": _normal(gen, (H, Cq, r), Cq),
            "heads.W_KR": _normal(gen, (d, r), d),
            "heads.W_O": _normal(gen, (H, e, d), H * e),
        }
    C, Cq = config.C, config.C_q
    params = {
        "heads.S_q": _normal(gen, (d, Cq), d),
        "heads.Q": _normal(gen, (H, Cq, C), Cq),
        "heads.S_k": _normal(gen, (d, C), d),
        "heads.O": _normal(gen, (H, C, d), H * C),
    }
    if v == "mfa":
        params["heads.S_v"] = _normal(gen, (d, C), d)
    else:
        params["heads.N"] = _normal(gen, (C, C), C)
        params["heads.alpha"] = np.zeros(C)
    return params


# -- assembling the operator --------------------------------------------------------------


def _distribution(config: OperatorConfig):
    kind, a = config.p, config.p_param
    if kind == "one":
        return prflash.ONE
    if kind == "given":
        return prflash.given(a)
    return {"geometric": prflash.geometric, "harmonic": prflash.harmonic,
            "window": prflash.window}[kind](a)


def assemble(config: OperatorConfig, params: dict[str, Any]) -> Operator:
    """The operator of ``config`` with the given arrays (numpy, torch or JAX), keyed as
    :func:`init_params` returns them."""
    v = config.variant
    heads_p = {k[6:]: a for k, a in params.items() if k.startswith("heads.")}
    bias_p = {k[5:]: a for k, a in params.items() if k.startswith("bias.")}
    unknown = set(params) - {f"heads.{k}" for k in heads_p} - {f"bias.{k}" for k in bias_p}
    if unknown:
        raise ValueError(f"unknown parameter names {sorted(unknown)}; expected heads.* or bias.*")
    rope = Rope(config.rope_base) if (config.rope or v == "rope_alibi") else None
    if v in STANDARD:
        heads = Projections(**heads_p, rope=rope)
    elif v == "mla":
        heads = LatentHeads(**heads_p, rope=Rope(config.rope_base))
    else:
        heads = FactorizedHeads(**heads_p, key_reuse=v == "mfa_kr", query_norm=config.query_norm,
                                rope=rope, value_from=config.value_from)
    mask: Any = CAUSAL if config.causal else FULL
    if v == "ansan":
        mask = AnchorMask(config.anchors)
    elif v == "prflash":
        mask = prflash.PrFlashMask(_distribution(config), config.block, config.mask_seed,
                           config.per_member)
    bias: Any = None
    if v == "dma":
        bias = DynamicMaskBias(**bias_p, form=config.dma_form, window=config.window)
    elif v in ("rope_alibi", "alibi"):
        slopes = {"alibi": positional.alibi_slopes, "harmonic": positional.harmonic_slopes,
                  "zero": lambda h: np.zeros(h)}[config.slopes](config.heads)
        linear = v == "alibi" or config.distance == "linear"
        g = positional.linear_distance if linear else positional.harmonic_number
        bias = positional.DistanceBias(slopes, g)
    normalization = config.normalization or ("sinkhorn" if v == "sinkhorn" else "softmax")
    quantizer = None
    if v == "saq":
        quantizer = StaircaseQuantizer(
            Staircase(config.saq_group, config.saq_bits, config.saq_quant_group,
                      config.saq_value_mode)
        )
    return Operator(heads, mask=mask, bias=bias, normalization=normalization, scale=config.scale,
                    sinkhorn_iterations=config.sinkhorn_iterations, quantizer=quantizer, name=v)


def build(
    config: OperatorConfig, seed: Any = 0, *, backend: str = "numpy", dtype: Any = None,
    device: Any = None,
) -> Operator:
    """``assemble(config, init_params(config, seed))`` on the chosen backend."""
    drawn = init_params(config, seed)
    params = {k: from_numpy(a, backend, dtype, device) for k, a in drawn.items()}
    return assemble(config, params)


__all__ = ["VARIANTS", "OperatorConfig", "assemble", "build", "init_params"]
