"""A tiny causal language model from the package's layers, and its checkpoints.

    token embedding (+ learned positions, if positions = "learned")
    -> L blocks  x <- x + mix(RMSNorm(x));  x <- x + ffn(RMSNorm(x))
    -> RMSNorm -> linear head (logits over the vocabulary)

``mix`` is :class:`attention.layer.AttentionLayer` of any attention variant (causal, with
RoPE when positions = "rope"; MLA always brings its decoupled RoPE) or, for variant
"ssd", :class:`attention.ssd_layer.SSDLayer` (SSD with RoPE on B and C and its output map,
Wonderful Matrices' Cheems mixer). ``ffn`` is a GELU MLP (feedforward = "mlp") or the
cross-domain mixture of experts :class:`attention.moe_layer.CDMoELayer` (feedforward =
"cdmoe", the Cheems feed-forward). RMSNorm puts the tokens on a sphere: RMSNorm(x) =
g * x / sqrt(mean(x^2) + eps) ~ sqrt(d) g * x/|x|, so each block's mixer acts on points of
the unit sphere through :meth:`TinyLM.mixers` with ``fold_norm=True`` (the gain sqrt(d) g
folded into the maps that read the tokens).

Checkpoints are safetensors files: the weights, and in the metadata the model config
(JSON, key ``config``), the seed and whatever the trainer adds (task, training settings,
the training curve: ``experiments.training.train``). :func:`load_trained` reads one back.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attention.config import VARIANTS, OperatorConfig, assemble
from attention.layer import AttentionLayer
from attention.moe import CrossDomainMoE
from attention.moe_layer import CDMoELayer
from attention.norms import RMSNorm
from attention.operator import Operator
from attention.ssd import StateSpaceDuality
from attention.ssd_layer import SSDLayer
from attention.transformer import Block as NetworkBlock
from attention.transformer import DenseMlp, Network, Residual

POSITIONS = ("rope", "learned")
MIXERS: tuple[str, ...] = (*VARIANTS, "ssd")
FEEDFORWARDS = ("mlp", "cdmoe")
SSD_DEFAULTS: dict[str, Any] = {"state": 16, "head_dim": None}
"""SSD mixer settings (``options`` of an "ssd" model): state size N, head dim p (d/heads)."""
CDMOE_DEFAULTS: dict[str, Any] = {"hidden": 96, "experts": 64, "heads": 4, "k": 4,
                                  "retrieval_dim": None}
"""CDMoE settings (``moe`` of a "cdmoe" model): at d = 64, 35,840 weights (shared SwiGLU
3 x 64 x 96, 64 rank-one experts, 4 retrieval heads of r = 32 over 8 + 8 sub-keys) beside
the GELU MLP's 33,088."""
FORMAT = "attention-flows/tiny-lm/1"
# parameters that read the (normalised) tokens, and the axis of the model dimension in each
INPUT_MAPS: dict[str, int] = {
    "heads.W_Q": 1, "heads.W_K": 1, "heads.W_V": 1,              # MHA, GQA, MQA and masks
    "heads.W_DKV": 0, "heads.W_DQ": 0, "heads.W_KR": 0,          # MLA
    "heads.S_q": 0, "heads.S_k": 0, "heads.S_v": 0,              # MFA, MFA-KR
    "W_x": 1, "W_B": 1, "W_C": 1, "W_dt": 0,                     # SSD
}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of :class:`TinyLM`.

    variant: the mixer, an attention variant of ``attention.config.VARIANTS`` or "ssd";
    options: for attention, further ``OperatorConfig`` fields of the variant (groups,
    anchors, window, block, p, p_param, mask_seed, ...; a PrFlash layer l draws its masks
    from ``mask_seed + l``); for SSD, keys of ``SSD_DEFAULTS``;
    feedforward: "mlp" (GELU, width mlp_ratio d) or "cdmoe" with ``moe`` the keys of
    ``CDMOE_DEFAULTS``.
    """

    variant: str
    vocab: int = 64
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    mlp_ratio: int = 4
    positions: str = "learned"
    max_len: int = 64
    options: dict[str, Any] = field(default_factory=dict)
    feedforward: str = "mlp"
    moe: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.variant not in MIXERS:
            raise ValueError(f"variant must be one of {MIXERS}, got {self.variant!r}")
        if self.feedforward not in FEEDFORWARDS:
            raise ValueError(f"feedforward must be one of {FEEDFORWARDS}, got "
                             f"{self.feedforward!r}")
        for name in ("vocab", "d_model", "heads", "layers", "mlp_ratio", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        _known("options", self.options, SSD_DEFAULTS if self.is_ssd else None)
        _known("moe", self.moe, CDMOE_DEFAULTS if self.feedforward == "cdmoe" else {})
        if self.is_ssd:
            self.ssd_settings()
        else:
            for i in range(self.layers):
                self.operator_config(i)  # checks the variant and its options

    @property
    def is_ssd(self) -> bool:
        return self.variant == "ssd"

    @property
    def name(self) -> str:
        """The model's name: the mixer, with "_cdmoe" for the CDMoE feed-forward
        ("dma_cdmoe"); checkpoints are ``NAME.safetensors``."""
        return self.variant + ("_cdmoe" if self.feedforward == "cdmoe" else "")

    def ssd_settings(self) -> dict[str, Any]:
        """State size and head dim of the SSD mixer (``SSD_DEFAULTS`` completed)."""
        settings = {**SSD_DEFAULTS, **self.options}
        head_dim = settings["head_dim"] or self.d_model // self.heads
        if head_dim * self.heads != self.d_model:
            raise ValueError(f"the SSD mixer needs heads x head_dim = d_model, got "
                             f"{self.heads} x {head_dim} != {self.d_model}")
        return {"state": settings["state"], "head_dim": head_dim}

    def moe_settings(self) -> dict[str, Any]:
        """The CDMoE's sizes (``CDMOE_DEFAULTS`` completed)."""
        return {**CDMOE_DEFAULTS, **self.moe}

    def operator_config(self, layer: int = 0) -> OperatorConfig:
        """The ``OperatorConfig`` of block ``layer`` (attention mixers only)."""
        if self.is_ssd:
            raise ValueError("an SSD mixer has no OperatorConfig (SSD is not an attention "
                             "Operator); read its weights with TinyLM.mixers()")
        options = dict(self.options)
        if self.variant == "prflash":
            options["mask_seed"] = int(options.get("mask_seed", 0)) + layer
        return OperatorConfig(self.variant, d_model=self.d_model, heads=self.heads, causal=True,
                              rope=self.positions == "rope", **options)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data = json.loads(text)
        options = {k: tuple(v) if isinstance(v, list) else v
                   for k, v in data.pop("options", {}).items()}
        return cls(**data, options=options)


def _known(what: str, given: dict[str, Any], allowed: dict[str, Any] | None) -> None:
    """Refuse keys of ``given`` that ``allowed`` does not have (None: anything goes)."""
    if allowed is None:
        return
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} key(s) {unknown}; allowed: {sorted(allowed) or 'none'}")


class Block(torch.nn.Module):
    """x + mix(RMSNorm(x)), then x + ffn(RMSNorm(x)) (the module docstring)."""

    def __init__(self, config: ModelConfig, layer: int, seed: int) -> None:
        super().__init__()
        d = config.d_model
        self.norm1 = torch.nn.RMSNorm(d)
        if config.is_ssd:
            ssd = config.ssd_settings()
            self.attn: torch.nn.Module = SSDLayer(d, config.heads, ssd["state"], ssd["head_dim"],
                                                  output=True, seed=[seed, layer],
                                                  log_decay=True)
        else:
            self.attn = AttentionLayer(config.operator_config(layer), seed=[seed, layer])
        self.norm2 = torch.nn.RMSNorm(d)
        if config.feedforward == "cdmoe":
            moe = config.moe_settings()
            self.mlp: torch.nn.Module = CDMoELayer(
                d, moe["hidden"], moe["experts"], moe["heads"], moe["k"], moe["retrieval_dim"],
                seed=[seed, layer, 1])
        else:
            self.mlp = torch.nn.Sequential(
                torch.nn.Linear(d, config.mlp_ratio * d), torch.nn.GELU(),
                torch.nn.Linear(config.mlp_ratio * d, d))

    def mix(self, x: torch.Tensor, step: Any = 0) -> torch.Tensor:
        """The mixer's output for normalised tokens x; ``step`` draws random masks."""
        if isinstance(self.attn, SSDLayer):
            return self.attn(x)
        return self.attn(x, step=step)

    def forward(self, x: torch.Tensor, step: Any = 0) -> torch.Tensor:
        x = x + self.mix(self.norm1(x), step=step)
        return x + self.mlp(self.norm2(x))


class TinyLM(torch.nn.Module):
    """The model of the module docstring, float32, initialised from ``seed`` alone (torch's
    global generator is left as it was)."""

    def __init__(self, config: ModelConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.seed = int(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.embed = torch.nn.Embedding(config.vocab, config.d_model)
            self.pos = (torch.nn.Embedding(config.max_len, config.d_model)
                        if config.positions == "learned" else None)
            self.blocks = torch.nn.ModuleList(
                Block(config, layer, self.seed) for layer in range(config.layers))
            self.norm = torch.nn.RMSNorm(config.d_model)
            self.head = torch.nn.Linear(config.d_model, config.vocab)

    def forward(self, tokens: torch.Tensor, step: Any = 0) -> torch.Tensor:
        """Logits (B, n, vocab) of tokens (B, n) int; ``step`` draws random masks (PrFlash)."""
        x = self.embed(tokens)
        if self.pos is not None:
            n = tokens.shape[-1]
            if n > self.config.max_len:
                raise ValueError(f"{n} tokens exceed max_len = {self.config.max_len}")
            x = x + self.pos.weight[:n]
        for block in self.blocks:
            x = block(x, step=step)
        return self.head(self.norm(x))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """The input of block 0: token embeddings plus learned positions, (B, n, d)."""
        x = self.embed(tokens)
        return x if self.pos is None else x + self.pos.weight[: tokens.shape[-1]]

    def network(self) -> Network:
        """The blocks as an ``attention.transformer.Network`` (float64 numpy weights):
        Pre-RMSNorm mixer (attention or SSD) and feed-forward (GELU MLP or CDMoE)
        sublayers and the final RMSNorm, so that ``dynamics.model_flow(model.network())``
        is this model's flow in depth."""
        def norm(module: torch.nn.RMSNorm) -> RMSNorm:
            eps = module.eps if module.eps is not None else float(torch.finfo(torch.float64).eps)
            return RMSNorm(module.weight.detach().double().numpy().copy(), float(eps))

        def linear(module: torch.nn.Linear) -> tuple[np.ndarray, np.ndarray]:
            return (module.weight.detach().double().numpy().T.copy(),
                    module.bias.detach().double().numpy().copy())

        def feedforward(module: torch.nn.Module) -> DenseMlp | CrossDomainMoE:
            if isinstance(module, CDMoELayer):
                return CrossDomainMoE(**{n: _float64(a) for n, a in module.arrays().items()},
                                      k=module.k, activation=module.activation)
            (w_in, b_in), (w_out, b_out) = linear(module[0]), linear(module[2])
            return DenseMlp(w_in, w_out, b_in, b_out, "gelu")

        blocks = []
        for block, mixer in zip(self.blocks, self.mixers(), strict=True):
            blocks.append(NetworkBlock(
                Residual(mixer, norm(block.norm1), "pre"),
                Residual(feedforward(block.mlp), norm(block.norm2), "pre")))
        return Network(tuple(blocks), norm(self.norm), f"tiny-lm:{self.config.name}")

    def mixers(self, fold_norm: bool = False) -> list[Operator | StateSpaceDuality]:
        """Each block's mixer with float64 numpy weights: an attention
        :class:`~attention.operator.Operator`, or a :class:`~attention.ssd.StateSpaceDuality`
        with its output map (variant "ssd"). ``fold_norm``: the mixer of the tokens'
        directions u = x/|x|, i.e. mix(sqrt(d) g * u) with the block's RMSNorm gain g folded
        into the maps that read the tokens (``INPUT_MAPS``; exact up to RMSNorm's eps)."""
        mixers: list[Operator | StateSpaceDuality] = []
        for layer, block in enumerate(self.blocks):
            if isinstance(block.attn, SSDLayer):
                params = {n: _float64(a) for n, a in block.attn.arrays().items()}
            else:
                params = {name: _float64(getattr(block.attn, safe))
                          for safe, name in block.attn._names.items()}
            if fold_norm:
                gain = np.sqrt(self.config.d_model) * block.norm1.weight.detach().double().numpy()
                for name, axis in INPUT_MAPS.items():
                    if name in params:
                        shape = [1] * params[name].ndim
                        shape[axis] = gain.size
                        params[name] = params[name] * gain.reshape(shape)
            if isinstance(block.attn, SSDLayer):
                mixers.append(StateSpaceDuality(**params, rope=block.attn.rope))
            else:
                op = assemble(self.config.operator_config(layer), params)
                mixers.append(replace(op, name=f"{self.config.name}[{layer}]"))
        return mixers


def _float64(tensor: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy of a parameter."""
    return tensor.detach().to(torch.float64).cpu().numpy().copy()


def save(model: TinyLM, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to a safetensors file; ``metadata`` values that are not strings are
    stored as JSON. Keys ``format``, ``config`` and ``seed`` are the model's own."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    meta.update(format=FORMAT, config=model.config.to_json(), seed=str(model.seed))
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(partial), metadata=meta)
    os.replace(partial, path)  # readers never see a half-written checkpoint
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a checkpoint (strings; JSON where :func:`save` encoded it)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tiny-LM checkpoint (format {meta.get('format')!r})")
    return meta


def load_trained(path: str | Path) -> tuple[TinyLM, ModelConfig]:
    """(model, config) of a checkpoint written by :func:`save`, in eval mode."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    config = ModelConfig.from_json(meta["config"])
    model = TinyLM(config, seed=int(meta["seed"]))
    model.load_state_dict(load_file(str(path)))
    return model.eval(), config


__all__ = ["CDMOE_DEFAULTS", "FEEDFORWARDS", "INPUT_MAPS", "MIXERS", "SSD_DEFAULTS",
           "ModelConfig", "TinyLM", "load_trained", "read_metadata", "save"]
