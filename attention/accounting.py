"""KV-cache size, parameter count, TER and SLSD of every variant (attention.md §2, §3.1).

* ``kv_elements``: scalars stored per token per layer so that keys and values can be
  rebuilt at decode time (bytes = elements x 2 at bf16). MHA/GQA/MQA 2 G d_h, MLA
  d_c + d_r, MFA 2C, MFA-KR C. Mask and bias variants store what their base stores per
  *retained* token (AnSAN retains fewer tokens, DMA's top-w at most w; the DMA bias is
  recomputed from the cached values, not stored). SAQ stores MQA's elements at fewer
  bits: see ``attention.variants.saq.Staircase.stored_bits``.
* ``ter_slsd``: TER (total effective rank) = heads x rank of one head's QK circuit;
  SLSD (shared latent subspace dimension) = dimension of the space all heads' keys and
  values are read from (MFA paper, Table 1 as transcribed). The table assumes query
  latents at least as wide as the head (C_q = C for MFA); a narrower query latent caps
  the rank, so MFA's TER is m min(C, C_q) and MLA's (content part) H min(d_h, d_c, d_c').
* ``param_count``: number of weights; MFA's is d(C_q + 2C) + m C_q C + m C d.

Tests check each formula against the tensors an operator really holds
(``Operator.cache(x).elements_per_token()`` and the sizes of ``init_params``).
"""

from __future__ import annotations

from attention.config import STANDARD, OperatorConfig


def kv_elements(config: OperatorConfig) -> int:
    """Cache scalars per token per layer."""
    v = config.variant
    if v in STANDARD:
        return 2 * config.kv_groups * config.d_h
    if v == "mla":
        return config.C + config.d_r
    if v == "mfa":
        return 2 * config.C
    return config.C  # mfa_kr


def kv_bytes(config: OperatorConfig, layers: int = 1, bytes_per_element: int = 2) -> int:
    """Cache bytes per token over ``layers`` layers (bf16/fp16: 2 bytes per element)."""
    if layers < 1 or bytes_per_element < 1:
        raise ValueError("layers and bytes_per_element must be positive integers")
    return kv_elements(config) * layers * bytes_per_element


def ter_slsd(config: OperatorConfig) -> tuple[int, int]:
    """(TER, SLSD) of the variant."""
    v, H, d_h = config.variant, config.heads, config.d_h
    if v in STANDARD:
        return H * d_h, config.kv_groups * d_h
    if v == "mla":
        return H * min(d_h, config.C, config.C_q), config.C
    return H * min(config.C, config.C_q), config.C  # mfa, mfa_kr


def param_count(config: OperatorConfig) -> int:
    """Number of weights of the operator's heads (and of the DMA bias)."""
    v, d, H, e, G = config.variant, config.d_model, config.heads, config.d_h, config.kv_groups
    if v in STANDARD:
        count = 2 * H * d * e + 2 * G * d * e
        if v == "dma":
            nb = H if config.dma_bias_heads == "query" else G
            count += G * e * nb + 2 * nb
        return count
    C, Cq = config.C, config.C_q
    if v == "mla":
        r = config.d_r
        return d * C + 2 * H * C * e + d * Cq + H * Cq * e + H * Cq * r + d * r + H * e * d
    if v == "mfa":
        return d * (Cq + 2 * C) + H * Cq * C + H * C * d
    return d * (Cq + C) + H * Cq * C + H * C * d + C * C + C  # mfa_kr: S_v -> N, alpha
