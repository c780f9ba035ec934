"""Trained layers and models into the package: torch and Hugging Face, exactly.

    op = from_torch(torch.nn.MultiheadAttention(64, 8).eval())     # an Operator
    net = network_from_model(GPT2Model(config).eval())            # a Network of blocks

``from_torch`` takes ``nn.MultiheadAttention`` or the attention module of a supported
Hugging Face model; ``network_from_model`` a whole model (``READERS``); the flow in depth
is ``dynamics.model_flow``. Importing copies weights to host float64 and never modifies
the user's module. ``transformers`` and ``safetensors`` are the optional extra ``models``.
"""

from __future__ import annotations

from typing import Any

from attention.importers.huggingface import (
    ATTENTION_MODULES,
    READERS,
    attention_from_module,
    load_model,
    network_from_model,
)
from attention.importers.torch_attention import from_multihead_attention
from attention.operator import Operator
from attention.transformer import Residual


def from_torch(module: Any, *, causal: bool = False) -> Operator | Residual:
    """The package's map computing what ``module`` computes on (batch, n, d) tokens.

    ``torch.nn.MultiheadAttention`` -> an Operator (``causal=True``: the causal mask torch
    takes at call time); a Hugging Face attention module -> an Operator, or a Post-LN
    ``Residual`` where the module adds its input and normalises (BERT, ALBERT); its mask
    is the model's own (causal for decoders), so ``causal`` must stay False there.
    """
    import torch

    if isinstance(module, torch.nn.MultiheadAttention):
        return from_multihead_attention(module, causal=causal)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch takes a torch.nn.Module, got {type(module).__name__}")
    if causal:
        raise ValueError("a Hugging Face attention module brings its model's mask; pass "
                         "causal only for nn.MultiheadAttention")
    return attention_from_module(module)


__all__ = ["ATTENTION_MODULES", "READERS", "from_torch", "load_model", "network_from_model"]
