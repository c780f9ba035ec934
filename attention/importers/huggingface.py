"""Hugging Face transformers as :class:`~attention.transformer.Network` s: one reader per layout.

Each reader takes the base model (``BertModel``, ``GPT2Model``, ``LlamaModel``, ...; a
model with a task head is reduced to ``model.base_model``) and returns its blocks as the
package's maps, with every weight copied to host float64:

* ``bert``     Post-LN; q, k, v, output with biases; LayerNorm after each residual sum;
               exact GELU MLP (``hidden_act``). ``is_decoder`` makes it causal.
* ``albert``   BERT's block, shared: hidden layer i uses group int(i G / L) (G groups of
               one layer each; ``inner_group_num`` > 1 is refused).
* ``gpt2``     Pre-LN; fused ``c_attn`` (Conv1D, (d, 3d) = [q | k | v]); causal; scale
               1/sqrt(e), divided by (layer + 1) with ``scale_attn_by_inverse_layer_idx``;
               final ``ln_f``.
* ``llama``, ``mistral``, ``qwen2``  Pre-LN with RMSNorm; RoPE with the model's own frequency
               table (``rotary_emb.inv_freq``, "half" layout); GQA (``num_key_value_heads``);
               q/k/v biases where the checkpoint has them (Qwen2); sliding-window layers as
               ``SlidingWindow`` masks; SwiGLU MLP; final RMSNorm.
* ``deepseek_v3`` Pre-LN with RMSNorm; multi-head latent attention (``LatentHeads``: query
               LoRA or plain q_proj, RMSNorm on both latents, one shared rotary key,
               interleaved or half RoPE); dense SwiGLU blocks, then routed experts
               (``RoutedMoE``: sigmoid scores, group-limited top-k, shared experts).

A Hugging Face model computes RMSNorm, the RoPE tables and DeepSeek's router in float32
even when its weights are float64 (and its eager attention takes the softmax in float32);
the readers carry the weights, and the package computes in the dtype of the tokens. So a
float64 Llama and its flow agree to float32 rounding (~1e-7), and to 1e-12 once those
float32 steps are done in float64 (what the tests do).

Loading (:func:`load_model`) reads safetensors only and never runs code shipped with a
model repository (``trust_remote_code=False``, ``use_safetensors=True``, local files only).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from attention.activations import HF_NAMES
from attention.importers.weights import (
    check_inference,
    conv1d,
    host,
    linear,
    merge_heads,
    split_bias,
    split_heads,
)
from attention.masks import CAUSAL, SlidingWindow
from attention.norms import LayerNorm, RMSNorm
from attention.operator import Operator
from attention.positional import Rope
from attention.transformer import Block, DenseMlp, GatedMlp, Network, Residual, RoutedMoE
from attention.variants.mla import LatentHeads
from attention.variants.standard import Projections


def _activation(name: Any) -> str:
    if name not in HF_NAMES:
        raise ValueError(f"the MLP activation {name!r} is not supported; supported: "
                         f"{sorted(HF_NAMES)}")
    return HF_NAMES[name]


def _layer_norm(module: Any) -> LayerNorm:
    return LayerNorm(host(module.weight), host(module.bias), float(module.eps))


def _rms_norm(module: Any) -> RMSNorm:
    eps = getattr(module, "variance_epsilon", getattr(module, "eps", None))
    return RMSNorm(host(module.weight), float(eps))


def _heads(q, k, v, o, H: int, G: int, rope: Rope | None = None) -> Projections:
    """MHA/GQA heads from (W (in, out), b) pairs of q, k, v and the output map o."""
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = q, k, v, o
    return Projections(
        W_Q=split_heads(wq, H), W_K=split_heads(wk, G), W_V=split_heads(wv, G),
        W_O=merge_heads(wo, H), b_Q=split_bias(bq, H), b_K=split_bias(bk, G),
        b_V=split_bias(bv, G), b_O=bo, rope=rope,
    )


# -- BERT and ALBERT (Post-LN) ---------------------------------------------------------------


def _check_bert_config(config: Any) -> None:
    kind = getattr(config, "position_embedding_type", "absolute")
    if kind != "absolute":
        raise ValueError(f"position_embedding_type={kind!r} (relative scores) is not supported; "
                         "absolute position embeddings are")
    if getattr(config, "add_cross_attention", False):
        raise ValueError("this model has cross-attention, which is not a flow of its own tokens")


def _bert_attention(self_attn: Any, output_dense: Any | None, config: Any) -> Operator:
    H = self_attn.num_attention_heads
    e = self_attn.attention_head_size
    # without its output map, the module returns the heads side by side: the identity
    out = linear(output_dense) if output_dense is not None else (np.eye(H * e), None)
    heads = _heads(linear(self_attn.query), linear(self_attn.key), linear(self_attn.value),
                   out, H, H)
    causal = bool(getattr(config, "is_decoder", False))
    return Operator(heads, mask=CAUSAL if causal else None, scale=float(self_attn.scaling),
                    name=config.model_type)


def _bert(base: Any) -> Network:
    config = base.config
    _check_bert_config(config)
    act = _activation(config.hidden_act)
    blocks = []
    for layer in base.encoder.layer:
        attn = layer.attention
        op = _bert_attention(attn.self, attn.output.dense, config)
        w_in, b_in = linear(layer.intermediate.dense)
        w_out, b_out = linear(layer.output.dense)
        blocks.append(Block(
            Residual(op, _layer_norm(attn.output.LayerNorm), "post"),
            Residual(DenseMlp(w_in, w_out, b_in, b_out, act), _layer_norm(layer.output.LayerNorm),
                     "post"),
        ))
    return Network(tuple(blocks), None, "bert", _layer_norm(base.embeddings.LayerNorm))


def _albert_block(layer: Any, config: Any) -> Block:
    attn = layer.attention
    H = attn.num_attention_heads
    heads = _heads(linear(attn.query), linear(attn.key), linear(attn.value), linear(attn.dense),
                   H, H)
    op = Operator(heads, scale=float(attn.scaling), name="albert")
    w_in, b_in = linear(layer.ffn)
    w_out, b_out = linear(layer.ffn_output)
    mlp = DenseMlp(w_in, w_out, b_in, b_out, _activation(config.hidden_act))
    return Block(Residual(op, _layer_norm(attn.LayerNorm), "post"),
                 Residual(mlp, _layer_norm(layer.full_layer_layer_norm), "post"))


def _albert(base: Any) -> Network:
    config = base.config
    _check_bert_config(config)
    if config.inner_group_num != 1:
        raise ValueError(f"ALBERT with inner_group_num = {config.inner_group_num} is not "
                         "supported (every released ALBERT has 1)")
    groups = [_albert_block(g.albert_layers[0], config) for g in base.encoder.albert_layer_groups]
    L, G = config.num_hidden_layers, config.num_hidden_groups
    return Network(tuple(groups[int(i / (L / G))] for i in range(L)), None, "albert")


# -- GPT-2 (Pre-LN, fused projections) -------------------------------------------------------


def _gpt2_attention(attn: Any) -> Operator:
    if attn.is_cross_attention:
        raise ValueError("this GPT-2 attention is cross-attention, which is not a flow of its "
                         "own tokens")
    w, b = conv1d(attn.c_attn)
    d = attn.embed_dim
    parts = [(w[:, i * d:(i + 1) * d], b[i * d:(i + 1) * d]) for i in range(3)]
    heads = _heads(*parts, conv1d(attn.c_proj), attn.num_heads, attn.num_heads)
    return Operator(heads, mask=CAUSAL, scale=float(attn.scaling), name="gpt2")


def _gpt2(base: Any) -> Network:
    config = base.config
    if getattr(config, "add_cross_attention", False):
        raise ValueError("this GPT-2 has cross-attention, which is not a flow of its own tokens")
    act = _activation(config.activation_function)
    blocks = []
    for block in base.h:
        w_in, b_in = conv1d(block.mlp.c_fc)
        w_out, b_out = conv1d(block.mlp.c_proj)
        blocks.append(Block(
            Residual(_gpt2_attention(block.attn), _layer_norm(block.ln_1), "pre"),
            Residual(DenseMlp(w_in, w_out, b_in, b_out, act), _layer_norm(block.ln_2), "pre"),
        ))
    return Network(tuple(blocks), _layer_norm(base.ln_f), "gpt2")


# -- Llama, Mistral, Qwen2 (RMSNorm, RoPE, GQA, SwiGLU) -------------------------------------


def _rope_of_model(base: Any) -> Rope:
    rotary = base.rotary_emb
    kind = getattr(rotary, "rope_type", "default")
    if kind == "dynamic":
        raise ValueError("dynamic RoPE rescales its frequencies with the sequence length; "
                         "only fixed frequency tables are supported")
    if float(getattr(rotary, "attention_scaling", 1.0)) != 1.0:
        raise ValueError(f"RoPE type {kind!r} scales cos and sin by "
                         f"{rotary.attention_scaling}; only unscaled tables are supported")
    return Rope(frequencies=tuple(host(rotary.inv_freq)))


def _rope_of_config(config: Any, head_dim: int) -> Rope:
    params = getattr(config, "rope_parameters", None) or {}
    kind = params.get("rope_type", "default")
    if kind != "default":
        raise ValueError(f"RoPE type {kind!r}: import the whole model (network_from_model), "
                         "which reads the model's own frequency table")
    return Rope(base=float(params.get("rope_theta", 10000.0)))


def _llama_attention(attn: Any, rope: Rope) -> Operator:
    config = attn.config
    if getattr(attn, "q_norm", None) is not None or getattr(attn, "k_norm", None) is not None:
        raise ValueError("query/key normalisation (Qwen3, OLMo-2) is not supported")
    H = config.num_attention_heads
    G = getattr(config, "num_key_value_heads", None) or H
    heads = _heads(linear(attn.q_proj), linear(attn.k_proj), linear(attn.v_proj),
                   linear(attn.o_proj), H, G, rope)
    window = getattr(attn, "sliding_window", getattr(config, "sliding_window", None))
    mask = CAUSAL if window is None else SlidingWindow(int(window))
    return Operator(heads, mask=mask, scale=float(attn.scaling), name=config.model_type)


def _llama(base: Any) -> Network:
    config = base.config
    rope = _rope_of_model(base)
    act = _activation(config.hidden_act)
    blocks = []
    for layer in base.layers:
        mlp = layer.mlp
        if any(getattr(mlp, n).bias is not None for n in ("gate_proj", "up_proj", "down_proj")):
            raise ValueError("an MLP with biases (mlp_bias=True) is not supported")
        gated = GatedMlp(linear(mlp.gate_proj)[0], linear(mlp.up_proj)[0],
                         linear(mlp.down_proj)[0], act)
        blocks.append(Block(
            Residual(_llama_attention(layer.self_attn, rope), _rms_norm(layer.input_layernorm),
                     "pre"),
            Residual(gated, _rms_norm(layer.post_attention_layernorm), "pre"),
        ))
    return Network(tuple(blocks), _rms_norm(base.norm), config.model_type)


# -- DeepSeek-V2/V3 (multi-head latent attention) ---------------------------------------------


def _deepseek_attention(attn: Any, rope: Rope) -> Operator:
    """MLA in the package's ``LatentHeads`` (attention.variants.mla): the query LoRA (or a
    plain q_proj, then W_DQ = I), both latent RMSNorms, the shared rotary key."""
    config = attn.config
    if any(getattr(attn, n) is not None and getattr(attn, n).bias is not None
           for n in ("q_a_proj", "kv_a_proj_with_mqa", "o_proj")):
        raise ValueError("MLA with attention_bias=True is not supported")
    H, nope, r = attn.num_heads, attn.qk_nope_head_dim, attn.qk_rope_head_dim
    if attn.q_lora_rank is None:
        w_dq, norm_q = np.eye(attn.hidden_size), None
        w_q = linear(attn.q_proj)[0]
    else:
        w_dq, norm_q = linear(attn.q_a_proj)[0], _rms_norm(attn.q_a_layernorm)
        w_q = linear(attn.q_b_proj)[0]
    w_q = w_q.reshape(w_q.shape[0], H, nope + r).transpose(1, 0, 2)
    w_kv_a = linear(attn.kv_a_proj_with_mqa)[0]
    latent = attn.kv_lora_rank
    w_kv_b = linear(attn.kv_b_proj)[0]
    w_kv_b = w_kv_b.reshape(latent, H, nope + attn.v_head_dim).transpose(1, 0, 2)
    heads = LatentHeads(
        W_DKV=w_kv_a[:, :latent].copy(), W_UK=w_kv_b[..., :nope].copy(),
        W_UV=w_kv_b[..., nope:].copy(), W_DQ=w_dq, W_UQ=w_q[..., :nope].copy(),
        W_QR=w_q[..., nope:].copy(), W_KR=w_kv_a[:, latent:].copy(),
        W_O=merge_heads(linear(attn.o_proj)[0], H), rope=rope, norm_q=norm_q,
        norm_kv=_rms_norm(attn.kv_a_layernorm),
    )
    return Operator(heads, mask=CAUSAL, scale=float(attn.scaling), name=config.model_type)


def _gated(mlp: Any, act: str) -> GatedMlp:
    return GatedMlp(linear(mlp.gate_proj)[0], linear(mlp.up_proj)[0], linear(mlp.down_proj)[0],
                    act)


def _deepseek_moe(moe: Any, act: str) -> RoutedMoE:
    """DeepSeek-V3's routed experts: ``gate_up_proj`` (E, 2m, d) and ``down_proj`` (E, d, m)
    stored as torch's (out, in), the router and its score-correction bias."""
    experts, gate = moe.experts, moe.gate
    gate_up = host(experts.gate_up_proj).transpose(0, 2, 1)       # (E, d, 2m)
    m = gate_up.shape[-1] // 2
    return RoutedMoE(
        router=host(gate.weight), bias=host(gate.e_score_correction_bias),
        W_gate=gate_up[..., :m].copy(), W_up=gate_up[..., m:].copy(),
        W_down=host(experts.down_proj).transpose(0, 2, 1).copy(),
        shared=_gated(moe.shared_experts, act), top_k=int(gate.top_k),
        groups=int(gate.num_group), topk_group=int(gate.topk_group),
        normalize=bool(gate.norm_topk_prob), factor=float(gate.routed_scaling_factor),
        activation=act,
    )


def _deepseek(base: Any) -> Network:
    config = base.config
    rope = _rope_of_model(base)
    if getattr(config, "rope_interleave", False):
        rope = Rope(layout="interleaved", frequencies=rope.frequencies)
    act = _activation(config.hidden_act)
    blocks = []
    for layer in base.layers:
        mlp = layer.mlp
        feed = _deepseek_moe(mlp, act) if hasattr(mlp, "experts") else _gated(mlp, act)
        blocks.append(Block(
            Residual(_deepseek_attention(layer.self_attn, rope),
                     _rms_norm(layer.input_layernorm), "pre"),
            Residual(feed, _rms_norm(layer.post_attention_layernorm), "pre"),
        ))
    return Network(tuple(blocks), _rms_norm(base.norm), config.model_type)


READERS: dict[str, Callable[[Any], Network]] = {
    "bert": _bert, "albert": _albert, "gpt2": _gpt2,
    "llama": _llama, "mistral": _llama, "qwen2": _llama,
    "deepseek_v3": _deepseek,
}
"""Model type (``config.model_type``) -> reader of its base model."""


def network_from_model(model: Any) -> Network:
    """The blocks of a Hugging Face model (module docstring) as a :class:`Network`."""
    config = getattr(model, "config", None)
    kind = getattr(config, "model_type", None)
    if kind not in READERS:
        raise ValueError(f"model type {kind!r} is not supported; supported: {sorted(READERS)}")
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError("encoder-decoder models have cross-attention; import their encoder")
    base = getattr(model, "base_model", model)
    check_inference(base, f"{kind} model", getattr(config, "attention_dropout", 0.0),
                    getattr(config, "attention_probs_dropout_prob", 0.0))
    return READERS[kind](base)


def attention_from_module(module: Any) -> Operator | Residual:
    """A Hugging Face attention module as the package's map: an Operator for a module that is
    attention alone, a Post-LN :class:`Residual` for one that also adds its input and
    normalises (``BertAttention``, ``AlbertAttention``)."""
    name = type(module).__name__
    config = getattr(module, "config", None) or getattr(getattr(module, "self", None), "config",
                                                        None)
    check_inference(module, name, getattr(config, "attention_dropout", 0.0),
                    getattr(config, "attention_probs_dropout_prob", 0.0))
    if name == "BertSelfAttention":
        _check_bert_config(config)
        return _bert_attention(module, None, config)
    if name == "BertAttention":
        _check_bert_config(config)
        op = _bert_attention(module.self, module.output.dense, config)
        return Residual(op, _layer_norm(module.output.LayerNorm), "post")
    if name == "AlbertAttention":
        _check_bert_config(config)
        H = module.num_attention_heads
        heads = _heads(linear(module.query), linear(module.key), linear(module.value),
                       linear(module.dense), H, H)
        op = Operator(heads, scale=float(module.scaling), name="albert")
        return Residual(op, _layer_norm(module.LayerNorm), "post")
    if name == "GPT2Attention":
        return _gpt2_attention(module)
    if name in ("LlamaAttention", "MistralAttention", "Qwen2Attention"):
        return _llama_attention(module, _rope_of_config(config, int(module.head_dim)))
    raise ValueError(f"{name} is not a supported attention module; supported: "
                     f"{sorted(ATTENTION_MODULES)} and torch.nn.MultiheadAttention")


ATTENTION_MODULES = ("BertSelfAttention", "BertAttention", "AlbertAttention", "GPT2Attention",
                     "LlamaAttention", "MistralAttention", "Qwen2Attention")


def load_model(path_or_name: str | Path, *, dtype: str = "float64", **config: Any) -> Any:
    """A Hugging Face model from a local directory or the local cache, in eval mode.

    Only safetensors weights are read (no unpickling), code shipped with a repository is
    never run, and nothing is downloaded. ``config`` overrides entries of the model's
    configuration (``num_hidden_layers=48`` runs ALBERT's shared layer 48 times)."""
    import torch
    from transformers import AutoModel

    try:
        model, info = AutoModel.from_pretrained(
            str(path_or_name), trust_remote_code=False, use_safetensors=True,
            local_files_only=True, dtype=getattr(torch, dtype), output_loading_info=True,
            **config,
        )
    except OSError as err:
        raise FileNotFoundError(
            f"no local safetensors model at {path_or_name!r} (nothing is downloaded; a .bin "
            f"checkpoint is refused because reading it would unpickle code): {err}"
        ) from err
    missing = sorted(info.get("missing_keys", ()))
    if missing:  # transformers would fill them with random numbers, silently
        raise ValueError(f"the checkpoint at {path_or_name!r} lacks {len(missing)} weights the "
                         f"model needs ({', '.join(missing[:4])}, ...); it is incomplete or "
                         "made for another architecture")
    return model.eval()


