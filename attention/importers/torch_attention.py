"""``torch.nn.MultiheadAttention`` as an :class:`~attention.operator.Operator`.

torch's module computes, for E = embed_dim features and H heads of e = E / H channels,

    [q | k | v] = x [W_q | W_k | W_v]^T + in_proj_bias,    y = concat_h(o^h) W_out^T + b_out,

with o^h = softmax(q^h k^hT / sqrt(e) + mask) v^h, which is an MHA operator with biases
(``attention.variants.standard.Projections``) and scale 1/sqrt(e). ``batch_first`` only
changes how torch lays out its inputs; the operator always takes (batch, n, E).
The mask torch takes at call time (``is_causal`` / ``attn_mask``) is not part of the
module: pass ``causal=True`` for the causal one.
"""

from __future__ import annotations

from typing import Any

from attention.importers.weights import check_inference, host, merge_heads, split_bias, split_heads
from attention.masks import CAUSAL
from attention.operator import Operator
from attention.variants.standard import Projections


def from_multihead_attention(module: Any, *, causal: bool = False) -> Operator:
    """The operator computing ``module(x, x, x, need_weights=False)[0]`` (module docstring)."""
    check_inference(module, "nn.MultiheadAttention", module.dropout)
    if module.bias_k is not None or module.bias_v is not None:
        raise ValueError("nn.MultiheadAttention with add_bias_kv=True appends learned key/value "
                         "tokens, which an operator over the input tokens does not have")
    if module.add_zero_attn:
        raise ValueError("nn.MultiheadAttention with add_zero_attn=True is not supported")
    if module.kdim != module.embed_dim or module.vdim != module.embed_dim:
        raise ValueError("self-attention needs kdim = vdim = embed_dim; this module is built "
                         "for cross-attention")
    H, E = module.num_heads, module.embed_dim
    if module.in_proj_weight is not None:
        w_q, w_k, w_v = (host(w).T for w in module.in_proj_weight.chunk(3, dim=0))
    else:
        w_q, w_k, w_v = (host(w).T for w in (module.q_proj_weight, module.k_proj_weight,
                                            module.v_proj_weight))
    bias = host(module.in_proj_bias)
    b_q, b_k, b_v = (None, None, None) if bias is None else bias.reshape(3, E)
    heads = Projections(
        W_Q=split_heads(w_q, H), W_K=split_heads(w_k, H), W_V=split_heads(w_v, H),
        W_O=merge_heads(host(module.out_proj.weight).T, H),
        b_Q=split_bias(b_q, H), b_K=split_bias(b_k, H), b_V=split_bias(b_v, H),
        b_O=host(module.out_proj.bias),
    )
    return Operator(heads, mask=CAUSAL if causal else None, name="nn.MultiheadAttention")
