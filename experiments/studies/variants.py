"""The operators of the variant-flows study (``experiments.studies.variant_flows``): every
attention variant of ``attention`` under one coupled weight ensemble.

To ask whether compressing the KV cache changes how fast tokens cluster, the variants
must differ *only* in what they compress. The "tied Gaussian" ensemble (:class:`Ensemble`)
draws one set of multi-head weights per key and derives every variant from it:

* queries and keys: W_Q^h, W_K^h with i.i.d. N(0, 1/d) entries; scores scaled by
  beta / sqrt(head dim);
* values and outputs are tied, W_O^h = W_V^{g(h)T}, with N(0, 1/(H f)) value entries, so
  every head's value-output circuit U_h = W_V W_O^h is positive semidefinite and
  E[sum_h U_h] = I for every variant (the same expected value gain);
* GQA/MQA group g keeps the key and value maps of the first head of the group (its
  queries are MHA's); AnSAN (an anchor every ``anchor_every`` tokens), PrFlash (block
  ``block``, p(delta) per variant, resampled every step) and DMA (top-``dma_window``
  keys; W_dt ~ N(0, 1/(G f)), b_dt = 0, A = 1 in the "exp" form, 0 in the "linear" one)
  keep the MHA weights and change only the mask or bias;
* MFA and MFA-KR (C = ``latent_dim``, default 2 d_h) have their own draw from the same key:
  S_q, S_k ~ N(0, 1/d), Q_c ~ N(0, 1/C); MFA's O_c = S_v^T with S_v ~ N(0, 1/(m C)); MFA-KR
  (alpha = 0, so its value is its key) O_c = (d / (m C)) S_k^T.

Variants are named by spec strings: ``mha``, ``gqa``, ``mqa``, ``mfa``, ``mfa_kr``,
``ansan``, ``dma`` and ``prflash:KIND[:PARAM]`` with KIND one of ``one`` (p = 1),
``geometric:rho``, ``harmonic:c``, ``window:w`` or ``given:p0,p1,...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from attention import accounting
from attention.config import OperatorConfig, assemble, init_params
from attention.operator import Operator

BASES: tuple[str, ...] = ("mha", "gqa", "mqa", "mfa", "mfa_kr", "ansan", "dma", "prflash")
P_KINDS: tuple[str, ...] = ("one", "geometric", "harmonic", "window", "given")
CACHE_COMPRESSING: tuple[str, ...] = ("gqa", "mqa", "mfa", "mfa_kr")


@dataclass(frozen=True)
class VariantSpec:
    """A parsed spec string: the operator variant and, for PrFlash, p(delta)."""

    text: str
    base: str
    p: str = "one"
    p_param: Any = None


def parse_variant(text: str) -> VariantSpec:
    """The :class:`VariantSpec` of a spec string (module docstring); ValueError if invalid."""
    if not isinstance(text, str):
        raise TypeError(f"a variant spec is a string, got {type(text).__name__}")
    parts = text.split(":")
    base = parts[0]
    if base not in BASES:
        raise ValueError(f"unknown variant {text!r}; the bases are {BASES}")
    if base != "prflash":
        if len(parts) > 1:
            raise ValueError(f"variant {base!r} takes no parameters, got {text!r}")
        return VariantSpec(text, base)
    if len(parts) < 2 or parts[1] not in P_KINDS:
        raise ValueError(f"prflash needs p(delta): 'prflash:KIND[:PARAM]' with KIND in "
                         f"{P_KINDS}, got {text!r}")
    kind = parts[1]
    if kind == "one":
        if len(parts) > 2:
            raise ValueError(f"'prflash:one' takes no parameter, got {text!r}")
        return VariantSpec(text, base, kind)
    if len(parts) != 3:
        raise ValueError(f"'prflash:{kind}' needs one parameter, e.g. 'prflash:{kind}:2'")
    try:
        if kind == "window":
            param: Any = int(parts[2])
        elif kind == "given":
            param = tuple(float(v) for v in parts[2].split(","))
        else:
            param = float(parts[2])
    except ValueError:
        raise ValueError(f"bad parameter in variant spec {text!r}") from None
    spec = VariantSpec(text, base, kind, param)
    _operator_config(spec, Ensemble(), 8, 8)  # checks the probabilities
    return spec


@dataclass(frozen=True)
class Ensemble:
    """Sizes and mask/bias parameters of the tied Gaussian ensemble (module docstring).

    heads: H; gqa_groups: G of ``gqa``; latent_dim: MFA's C (0: 2 d_h); anchor_every:
    AnSAN's segment length; block: PrFlash's block size; dma_window, dma_form: DMA's
    top-w and bias form; causal: all variants causal (False: bidirectional, except
    AnSAN and PrFlash, which are causal by definition).
    """

    heads: int = 4
    gqa_groups: int = 2
    latent_dim: int = 0
    anchor_every: int = 8
    block: int = 4
    dma_window: int = 8
    dma_form: Literal["exp", "linear"] = "exp"
    causal: bool = True

    def __post_init__(self) -> None:
        for name in ("heads", "gqa_groups", "anchor_every", "block", "dma_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.latent_dim, int) or self.latent_dim < 0:
            raise ValueError(f"latent_dim must be an integer >= 0, got {self.latent_dim!r}")
        if self.heads % self.gqa_groups:
            raise ValueError(f"heads = {self.heads} are not divisible by gqa_groups = "
                             f"{self.gqa_groups}")
        if self.dma_form not in ("exp", "linear"):
            raise ValueError(f"dma_form must be 'exp' or 'linear', got {self.dma_form!r}")

    def operator(self, variant: str | VariantSpec, n: int, d: int, beta: float,
                 key: Sequence[int]) -> Operator:
        """The operator of ``variant`` for the draw ``key`` (ints seeding numpy's
        ``default_rng``): the same key gives coupled weights across variants."""
        spec = variant if isinstance(variant, VariantSpec) else parse_variant(variant)
        if d % self.heads:
            raise ValueError(f"d = {d} is not divisible by heads = {self.heads}")
        key = [int(k) for k in key]
        gen = np.random.default_rng(key)
        H, e = self.heads, d // self.heads
        shared = {
            "W_Q": gen.standard_normal((H, d, e)) / np.sqrt(d),
            "W_K": gen.standard_normal((H, d, e)) / np.sqrt(d),
            "W_V": gen.standard_normal((H, d, e)) / np.sqrt(H * e),
        }
        mask_seed = int(np.random.default_rng([*key, 1]).integers(2**62))
        oc = _operator_config(spec, self, n, d, mask_seed)
        params = init_params(oc, gen)
        if spec.base == "mfa":
            C = oc.C
            params["heads.S_v"] = gen.standard_normal((d, C)) / np.sqrt(H * C)
            params["heads.O"] = np.stack([params["heads.S_v"].T] * H)
        elif spec.base == "mfa_kr":
            params["heads.O"] = np.stack([params["heads.S_k"].T * d / (H * oc.C)] * H)
        else:
            r = H // oc.kv_groups
            reps = np.arange(0, H, r)
            params["heads.W_Q"] = shared["W_Q"]
            params["heads.W_K"] = shared["W_K"][reps]
            params["heads.W_V"] = shared["W_V"][reps]
            params["heads.W_O"] = np.stack([shared["W_V"][reps[h // r]].T for h in range(H)])
        op = assemble(oc, params)
        return replace(op, scale=float(beta) / np.sqrt(op.heads.head_dim), name=spec.text)

    def kv_elements(self, variant: str | VariantSpec, n: int, d: int) -> int:
        """Cache scalars per retained token per layer (``attention.accounting``)."""
        spec = variant if isinstance(variant, VariantSpec) else parse_variant(variant)
        return accounting.kv_elements(_operator_config(spec, self, n, d))

    def retained_fraction(self, variant: str | VariantSpec, n: int, d: int) -> float:
        """Fraction of the n tokens a decoder keeps after the last one: AnSAN's anchors and
        open segment (Algorithm 1), DMA's top-w keys per head (``evicting_decode``), all
        of them otherwise (PrFlash drops compute, not cache)."""
        spec = variant if isinstance(variant, VariantSpec) else parse_variant(variant)
        if spec.base == "ansan":
            anchors = _anchors(self, n)
            open_segment = n - 1 - anchors[-1] if anchors else n
            return (len(anchors) + open_segment) / n
        if spec.base == "dma":
            return min(self.dma_window, n) / n
        return 1.0


def _anchors(ensemble: Ensemble, n: int) -> tuple[int, ...]:
    return tuple(range(ensemble.anchor_every - 1, n, ensemble.anchor_every))


def _operator_config(spec: VariantSpec, ensemble: Ensemble, n: int, d: int,
                     mask_seed: int = 0) -> OperatorConfig:
    base = dict(d_model=d, heads=ensemble.heads, causal=ensemble.causal)
    name = spec.base
    if name in ("mha", "mqa"):
        return OperatorConfig(name, **base)
    if name == "gqa":
        return OperatorConfig("gqa", groups=ensemble.gqa_groups, **base)
    if name in ("mfa", "mfa_kr"):
        C = ensemble.latent_dim or 2 * (d // ensemble.heads)
        return OperatorConfig(name, latent_dim=C, **base)
    if name == "ansan":
        return OperatorConfig("ansan", anchors=_anchors(ensemble, n), **base)
    if name == "dma":
        return OperatorConfig("dma", window=ensemble.dma_window, dma_form=ensemble.dma_form,
                              **base)
    return OperatorConfig("prflash", block=ensemble.block, p=spec.p,
                          p_param=0.5 if spec.p_param is None else spec.p_param,
                          mask_seed=mask_seed, **base)


__all__ = ["BASES", "CACHE_COMPRESSING", "Ensemble", "VariantSpec", "parse_variant"]
