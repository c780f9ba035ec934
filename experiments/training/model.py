"""A tiny causal language model from the package's attention layers, and its checkpoints.

    token embedding (+ learned positions, if positions = "learned")
    -> L blocks  x <- x + attn(RMSNorm(x));  x <- x + MLP(RMSNorm(x))
    -> RMSNorm -> linear head (logits over the vocabulary)

``attn`` is :class:`attention.layer.AttentionLayer` of any variant (causal, with RoPE when
positions = "rope"; MLA always brings its decoupled RoPE). RMSNorm puts the tokens on a
sphere: RMSNorm(x) = g * x / sqrt(mean(x^2) + eps) ~ sqrt(d) g * x/|x|, so each block's
attention acts on points of the unit sphere through :meth:`TinyLM.operators` with
``fold_norm=True`` (the gain sqrt(d) g folded into the maps that read the tokens).

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

from attention.config import OperatorConfig, assemble
from attention.layer import AttentionLayer
from attention.norms import RMSNorm
from attention.operator import Operator
from attention.transformer import Block as NetworkBlock
from attention.transformer import DenseMlp, Network, Residual

POSITIONS = ("rope", "learned")
FORMAT = "attention-flows/tiny-lm/1"
# parameters that read the (normalised) tokens, and the axis of the model dimension in each
INPUT_MAPS: dict[str, int] = {
    "heads.W_Q": 1, "heads.W_K": 1, "heads.W_V": 1,              # MHA, GQA, MQA and masks
    "heads.W_DKV": 0, "heads.W_DQ": 0, "heads.W_KR": 0,          # MLA
    "heads.S_q": 0, "heads.S_k": 0, "heads.S_v": 0,              # MFA, MFA-KR
}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of :class:`TinyLM`. ``options``: further ``OperatorConfig`` fields of the
    variant (groups, anchors, window, block, p, p_param, mask_seed, ...); a PrFlash layer l
    draws its masks from ``mask_seed + l``."""

    variant: str
    vocab: int = 64
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    mlp_ratio: int = 4
    positions: str = "learned"
    max_len: int = 64
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        for name in ("vocab", "d_model", "heads", "layers", "mlp_ratio", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for i in range(self.layers):
            self.operator_config(i)  # checks the variant and its options

    def operator_config(self, layer: int = 0) -> OperatorConfig:
        """The ``OperatorConfig`` of block ``layer``."""
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


class Block(torch.nn.Module):
    """x + attn(RMSNorm(x)), then x + MLP(RMSNorm(x))."""

    def __init__(self, config: ModelConfig, layer: int, seed: int) -> None:
        super().__init__()
        d = config.d_model
        self.norm1 = torch.nn.RMSNorm(d)
        self.attn = AttentionLayer(config.operator_config(layer), seed=[seed, layer])
        self.norm2 = torch.nn.RMSNorm(d)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, config.mlp_ratio * d), torch.nn.GELU(),
                                       torch.nn.Linear(config.mlp_ratio * d, d))

    def forward(self, x: torch.Tensor, step: Any = 0) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), step=step)
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
        Pre-RMSNorm attention and GELU MLP sublayers and the final RMSNorm, so that
        ``dynamics.model_flow(model.network())`` is this model's flow in depth."""
        def norm(module: torch.nn.RMSNorm) -> RMSNorm:
            eps = module.eps if module.eps is not None else float(torch.finfo(torch.float64).eps)
            return RMSNorm(module.weight.detach().double().numpy().copy(), float(eps))

        def linear(module: torch.nn.Linear) -> tuple[np.ndarray, np.ndarray]:
            return (module.weight.detach().double().numpy().T.copy(),
                    module.bias.detach().double().numpy().copy())

        blocks = []
        for block, op in zip(self.blocks, self.operators(), strict=True):
            (w_in, b_in), (w_out, b_out) = linear(block.mlp[0]), linear(block.mlp[2])
            blocks.append(NetworkBlock(
                Residual(op, norm(block.norm1), "pre"),
                Residual(DenseMlp(w_in, w_out, b_in, b_out, "gelu"), norm(block.norm2), "pre")))
        return Network(tuple(blocks), norm(self.norm), f"tiny-lm:{self.config.variant}")

    def operators(self, fold_norm: bool = False) -> list[Operator]:
        """Each block's attention as an :class:`~attention.operator.Operator` with float64
        numpy weights. ``fold_norm``: the operator of the tokens' directions u = x/|x|, i.e.
        attn(sqrt(d) g * u) with the block's RMSNorm gain g folded into the input maps
        (exact up to RMSNorm's eps)."""
        ops = []
        for layer, block in enumerate(self.blocks):
            params = {name: getattr(block.attn, safe).detach().to(torch.float64).numpy().copy()
                      for safe, name in block.attn._names.items()}
            if fold_norm:
                gain = np.sqrt(self.config.d_model) * block.norm1.weight.detach().double().numpy()
                for name, axis in INPUT_MAPS.items():
                    if name in params:
                        shape = [1] * params[name].ndim
                        shape[axis] = gain.size
                        params[name] = params[name] * gain.reshape(shape)
            op = assemble(self.config.operator_config(layer), params)
            ops.append(replace(op, name=f"{self.config.variant}[{layer}]"))
        return ops


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


__all__ = ["INPUT_MAPS", "ModelConfig", "TinyLM", "load_trained", "read_metadata", "save"]
