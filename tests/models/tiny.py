"""Tiny Hugging Face models built from their configs with random weights (no download).

``randomize`` redraws every parameter (LayerNorm gains and biases included) so that no
weight sits at its initial 0 or 1; ``exact_float64`` makes Hugging Face compute RMSNorm and
the RoPE tables in the dtype of the model instead of float32, the reference for the
package's float64 computation.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import transformers  # the ``models`` extra, which the README's install includes

VOCAB, WIDTH, HEADS, LAYERS = 40, 24, 4, 3


def configs() -> dict:
    tf = transformers
    return {
        "bert": (tf.BertConfig(vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=LAYERS,
                               num_attention_heads=HEADS, intermediate_size=48), tf.BertModel),
        "albert": (tf.AlbertConfig(vocab_size=VOCAB, embedding_size=12, hidden_size=WIDTH,
                                   num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                   intermediate_size=48), tf.AlbertModel),
        "gpt2": (tf.GPT2Config(vocab_size=VOCAB, n_embd=WIDTH, n_layer=LAYERS, n_head=HEADS,
                               n_positions=32), tf.GPT2Model),
        "llama": (tf.LlamaConfig(vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=LAYERS,
                                 num_attention_heads=HEADS, num_key_value_heads=2,
                                 intermediate_size=40), tf.LlamaModel),
        "qwen2": (tf.Qwen2Config(vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=LAYERS,
                                 num_attention_heads=HEADS, num_key_value_heads=1,
                                 intermediate_size=40), tf.Qwen2Model),
        "mistral": (tf.MistralConfig(vocab_size=VOCAB, hidden_size=WIDTH,
                                     num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                     num_key_value_heads=2, intermediate_size=40,
                                     sliding_window=4), tf.MistralModel),
        # MLA with a query LoRA, interleaved RoPE; block 0 dense, blocks 1-2 routed experts
        "deepseek_v3": (tf.DeepseekV3Config(
            vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, num_key_value_heads=HEADS, intermediate_size=40,
            moe_intermediate_size=12, q_lora_rank=16, kv_lora_rank=8, qk_rope_head_dim=4,
            qk_nope_head_dim=6, v_head_dim=5, first_k_dense_replace=1, n_routed_experts=8,
            num_experts_per_tok=3, n_group=2, topk_group=1, n_shared_experts=1),
            tf.DeepseekV3Model),
    }


ARCHITECTURES = tuple(configs())


def randomize(model: torch.nn.Module, seed: int, scale: float = 0.4) -> torch.nn.Module:
    """Every parameter redrawn: matrices N(0, scale^2 / fan_in), vectors 1 + N(0, 0.1^2)
    for gains and N(0, 0.1^2) for biases."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            z = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if p.ndim >= 2:
                p.copy_(z * scale * 3 / np.sqrt(p.shape[-1]))
            elif name.endswith("weight"):
                p.copy_(1 + 0.1 * z)
            else:
                p.copy_(0.1 * z)
    return model


def build(kind: str, seed: int = 0) -> torch.nn.Module:
    config, cls = configs()[kind]
    config._attn_implementation = "sdpa"  # eager attention takes its softmax in float32
    config._experts_implementation = "eager"  # grouped_mm has no float64
    model = randomize(cls(config).double().eval(), seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():  # DeepSeek's routing bias is a buffer, not a parameter
            bias = getattr(module, "e_score_correction_bias", None)
            if bias is not None:
                bias.copy_(0.3 * torch.randn(bias.shape, generator=g, dtype=torch.float64))
    return model


def hidden_states(model: torch.nn.Module, ids: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    return [h.numpy() for h in out.hidden_states]


@contextlib.contextmanager
def exact_float64():
    """RMSNorm, the RoPE tables and DeepSeek's router computed in float64."""
    from transformers.models.deepseek_v3 import modeling_deepseek_v3 as deepseek
    from transformers.models.llama import modeling_llama as llama
    from transformers.models.mistral import modeling_mistral as mistral
    from transformers.models.qwen2 import modeling_qwen2 as qwen2

    def norm(self, h):
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True)
                                              + self.variance_epsilon))

    def rope(self, x, position_ids):
        freqs = position_ids[..., None].double() * self.inv_freq.double()
        emb = torch.cat((freqs, freqs), dim=-1)
        return ((emb.cos() * self.attention_scaling).to(x.dtype),
                (emb.sin() * self.attention_scaling).to(x.dtype))

    def router(self, h):
        """DeepSeek-V3's group-limited top-k routing, written again in float64."""
        h = h.reshape(-1, self.hidden_dim)
        logits = h @ self.weight.T
        scores = logits.sigmoid()
        choice = scores + self.e_score_correction_bias
        grouped = choice.view(-1, self.num_group, self.num_experts // self.num_group)
        group_scores = grouped.topk(2, dim=-1)[0].sum(dim=-1)
        keep = torch.zeros_like(group_scores).scatter_(
            1, group_scores.topk(self.topk_group, dim=-1)[1], 1.0)
        keep = keep[..., None].expand_as(grouped).reshape(-1, self.num_experts)
        index = choice.masked_fill(keep == 0, -torch.inf).topk(self.top_k, dim=-1)[1]
        weights = scores.gather(1, index)
        if self.norm_topk_prob:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return logits, weights * self.routed_scaling_factor, index

    saved = []
    patches = [(getattr(module, prefix + "RMSNorm"), norm) for module, prefix in
               ((llama, "Llama"), (mistral, "Mistral"), (qwen2, "Qwen2"),
                (deepseek, "DeepseekV3"))]
    patches += [(getattr(module, prefix + "RotaryEmbedding"), rope) for module, prefix in
                ((llama, "Llama"), (mistral, "Mistral"), (qwen2, "Qwen2"),
                 (deepseek, "DeepseekV3"))]
    patches.append((deepseek.DeepseekV3TopkRouter, router))
    for cls, fn in patches:
        saved.append((cls, cls.forward))
        cls.forward = fn
    try:
        yield
    finally:
        for cls, fn in saved:
            cls.forward = fn
