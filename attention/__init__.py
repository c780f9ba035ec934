"""attention: attention operators, defined once for numpy, torch and JAX.

The reference (``attend``, ``attention_weights``) and its fast paths, in one table
(``attention.router``: ``ROUTES``, ``PATHS``; ``attend_fast``, ``grouped_attention``);
the operator layer (``Operator``: heads, mask, bias, normalisation, KV cache) with every
variant of the spec by name (``OperatorConfig``, ``build``), its masks in dense and block
form, KV accounting, and a torch layer (``AttentionLayer``, loaded on first use).
Trained networks: their blocks as maps (``Network``, ``Residual``, ``LayerNorm``,
``RMSNorm``, MLPs), importers from torch and Hugging Face (``from_torch``,
``network_from_model``, ``load_model``; ``attention.importers``), per-head diagnostics
against the clustering theorems (``diagnose``), SSD and CDMoE (``SSDLayer``, ``CDMoELayer``,
``cdmoe``).
"""

from attention.accounting import kv_bytes, kv_elements, param_count, ter_slsd
from attention.anchored import AnchorMask, anchored_decode, stack_forward
from attention.config import VARIANTS, OperatorConfig, assemble, build, init_params
from attention.diagnostics import (
    HeadDiagnostics,
    diagnose,
    diagnose_layers,
    head_matrices,
    head_operator,
    layer_grid,
)
from attention.masks import (
    CAUSAL,
    FULL,
    BlockLayout,
    Causal,
    DenseMask,
    Full,
    SlidingWindow,
    check_rows,
)
from attention.moe import CrossDomainMoE, cdmoe, full_scores, product_key_top_k
from attention.norms import LayerNorm, RMSNorm
from attention.online_softmax import tiled_attention
from attention.operator import KVCache, Operator
from attention.positional import (
    DistanceBias,
    Rope,
    alibi,
    alibi_slopes,
    harmonic_alibi,
    harmonic_number,
    harmonic_slopes,
)
from attention.prflash import PrFlashMask, expected_work, geometric, given, harmonic, window
from attention.reference import (
    attend,
    attend_chunked,
    attention_weights,
    causal_mask,
    grouped_weights,
    scores,
)
from attention.router import PATHS, ROUTES, attend_fast, grouped_attention
from attention.ssd import StateSpaceDuality
from attention.transformer import Block, DenseMlp, GatedMlp, Network, Residual
from attention.variants.dma import evicting_decode

_LAZY = {"AttentionLayer": "attention.layer", "SSDLayer": "attention.ssd_layer",
         "CDMoELayer": "attention.moe_layer",
         "from_torch": "attention.importers", "network_from_model": "attention.importers",
         "load_model": "attention.importers"}


def __getattr__(name: str):
    """The torch layers and the importers are imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attention' has no attribute {name!r}")


__all__ = [
    "CAUSAL",
    "FULL",
    "PATHS",
    "ROUTES",
    "VARIANTS",
    "AnchorMask",
    "AttentionLayer",
    "Block",
    "BlockLayout",
    "CDMoELayer",
    "Causal",
    "CrossDomainMoE",
    "DenseMask",
    "DenseMlp",
    "DistanceBias",
    "Full",
    "GatedMlp",
    "HeadDiagnostics",
    "KVCache",
    "LayerNorm",
    "Network",
    "Operator",
    "OperatorConfig",
    "PrFlashMask",
    "RMSNorm",
    "Residual",
    "Rope",
    "SSDLayer",
    "SlidingWindow",
    "StateSpaceDuality",
    "alibi",
    "alibi_slopes",
    "anchored_decode",
    "assemble",
    "attend",
    "attend_chunked",
    "attend_fast",
    "attention_weights",
    "build",
    "causal_mask",
    "cdmoe",
    "check_rows",
    "diagnose",
    "diagnose_layers",
    "evicting_decode",
    "expected_work",
    "from_torch",
    "full_scores",
    "geometric",
    "given",
    "grouped_attention",
    "grouped_weights",
    "harmonic",
    "harmonic_alibi",
    "harmonic_number",
    "harmonic_slopes",
    "head_matrices",
    "head_operator",
    "init_params",
    "kv_bytes",
    "kv_elements",
    "layer_grid",
    "load_model",
    "network_from_model",
    "param_count",
    "product_key_top_k",
    "scores",
    "stack_forward",
    "ter_slsd",
    "tiled_attention",
    "window",
]
