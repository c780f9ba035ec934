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

transformers = __import__("pytest").importorskip("transformers")

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
    return randomize(cls(config).double().eval(), seed)


def hidden_states(model: torch.nn.Module, ids: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    return [h.numpy() for h in out.hidden_states]


@contextlib.contextmanager
def exact_float64():
    """RMSNorm and the RoPE tables of the Llama family computed in float64."""
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

    saved = []
    for module, prefix in ((llama, "Llama"), (mistral, "Mistral"), (qwen2, "Qwen2")):
        for cls, fn in ((getattr(module, prefix + "RMSNorm"), norm),
                        (getattr(module, prefix + "RotaryEmbedding"), rope)):
            saved.append((cls, cls.forward))
            cls.forward = fn
    try:
        yield
    finally:
        for cls, fn in saved:
            cls.forward = fn
