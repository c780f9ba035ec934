"""A trained transformer's blocks, as plain maps: what a network *is* once its weights are read.

A block of a transformer is two residual sublayers, a token mixer then a feed-forward map.
Each sublayer is a map f (an attention :class:`~attention.operator.Operator`, or SSD,
:class:`~attention.ssd.StateSpaceDuality` with its output map; an MLP or a mixture of
experts) with a normalisation N placed

    Pre-LN  (GPT-2, Llama):  x -> x + f(N(x))
    Post-LN (BERT, ALBERT):  x -> N(x + f(x))

(:class:`Residual`). Both are one explicit Euler step with h = 1 of the field f(N(x))
(Pre-LN) or f(x) with N as the retraction (Post-LN), which is how ``dynamics.model_flow``
turns a :class:`Network` into a flow in depth. The MLPs:

    DenseMlp:  f(x) = act(x W_in + b_in) W_out + b_out                  (BERT, GPT-2, ALBERT)
    GatedMlp:  f(x) = (act(x W_gate) * (x W_up)) W_down                 (SwiGLU: Llama, Qwen2)

    RoutedMoE: f(x) = shared(x) + sum_{e in top-k(x)} w_e(x) expert_e(x)  (DeepSeek-V3)
    CrossDomainMoE (attention.moe): the shared SwiGLU plus product-key experts  (CDMoE)

with W_in (d, m), W_out (m, d) acting on token rows. Every map runs on numpy, torch and
JAX arrays; ``on(like)`` moves its weights to ``like``'s backend, dtype and device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from attention.activations import activation
from attention.array_api import Array, asarray_like, namespace
from attention.moe import CrossDomainMoE
from attention.norms import LayerNorm, RMSNorm
from attention.operator import Operator
from attention.ssd import StateSpaceDuality

Placement = Literal["pre", "post"]


def _matrix(name: str, w: Any, rows: int | None = None) -> tuple[int, int]:
    shape = tuple(int(s) for s in np.shape(w))
    if len(shape) != 2:
        raise ValueError(f"{name} must be a matrix, got shape {shape}")
    if rows is not None and shape[0] != rows:
        raise ValueError(f"{name} has {shape[0]} rows, expected {rows}")
    return shape


def _vector(name: str, b: Any, size: int) -> None:
    if b is not None and tuple(np.shape(b)) != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {tuple(np.shape(b))}")


def _move(obj: Any, like: Array, names: tuple[str, ...]) -> Any:
    return replace(obj, **{n: None if getattr(obj, n) is None
                           else asarray_like(getattr(obj, n), like) for n in names})


@dataclass(frozen=True)
class DenseMlp:
    """act(x W_in + b_in) W_out + b_out; W_in (d, m), W_out (m, d), biases optional."""

    W_in: Any
    W_out: Any
    b_in: Any = None
    b_out: Any = None
    activation: str = "gelu"

    def __post_init__(self) -> None:
        d, m = _matrix("W_in", self.W_in)
        _matrix("W_out", self.W_out, rows=m)
        _vector("b_in", self.b_in, m)
        _vector("b_out", self.b_out, int(np.shape(self.W_out)[1]))
        activation(self.activation)
        object.__setattr__(self, "d_in", d)
        object.__setattr__(self, "d_out", int(np.shape(self.W_out)[1]))

    def on(self, like: Array) -> DenseMlp:
        return _move(self, like, ("W_in", "W_out", "b_in", "b_out"))

    def __call__(self, x: Array) -> Array:
        h = x @ self.W_in
        h = activation(self.activation)(h if self.b_in is None else h + self.b_in)
        y = h @ self.W_out
        return y if self.b_out is None else y + self.b_out


@dataclass(frozen=True)
class GatedMlp:
    """(act(x W_gate) * (x W_up)) W_down; W_gate, W_up (d, m), W_down (m, d)."""

    W_gate: Any
    W_up: Any
    W_down: Any
    activation: str = "silu"

    def __post_init__(self) -> None:
        d, m = _matrix("W_gate", self.W_gate)
        if _matrix("W_up", self.W_up, rows=d) != (d, m):
            raise ValueError(f"W_up must have the shape of W_gate, ({d}, {m})")
        _matrix("W_down", self.W_down, rows=m)
        activation(self.activation)
        object.__setattr__(self, "d_in", d)
        object.__setattr__(self, "d_out", int(np.shape(self.W_down)[1]))

    def on(self, like: Array) -> GatedMlp:
        return _move(self, like, ("W_gate", "W_up", "W_down"))

    def __call__(self, x: Array) -> Array:
        return (activation(self.activation)(x @ self.W_gate) * (x @ self.W_up)) @ self.W_down


@dataclass(frozen=True)
class RoutedMoE:
    """DeepSeek-V3's mixture of experts (arXiv 2412.19437 §2.1.2), token by token:

        s_e = sigmoid(<x, g_e>),   chosen by s_e + b_e among the ``topk_group`` best of
        ``groups`` expert groups (a group's score: the sum of its two best s_e + b_e),
        w_e = factor * s_e / sum_{chosen} s_e   (without ``normalize``: factor * s_e),
        f(x) = shared(x) + sum_{e chosen} w_e (act(x G_e) * (x U_e)) D_e

    router (E, d), bias b (E,), experts' W_gate and W_up (E, d, m), W_down (E, m, d), a
    ``GatedMlp`` of shared experts. The experts are evaluated densely (every expert on
    every token, weights 0 off the top k): exact, at E times the cost of the routed path.
    The choice of experts is piecewise constant in x, so f jumps where two scores cross.
    """

    router: Any
    bias: Any
    W_gate: Any
    W_up: Any
    W_down: Any
    shared: GatedMlp
    top_k: int
    groups: int = 1
    topk_group: int = 1
    normalize: bool = True
    factor: float = 1.0
    activation: str = "silu"

    def __post_init__(self) -> None:
        E, d = _matrix("router", self.router)
        _vector("bias", self.bias, E)
        for name in ("W_gate", "W_up", "W_down"):
            if len(np.shape(getattr(self, name))) != 3 or np.shape(getattr(self, name))[0] != E:
                raise ValueError(f"{name} must stack {E} expert matrices")
        if not 1 <= self.top_k <= E or E % self.groups or not 1 <= self.topk_group <= self.groups:
            raise ValueError(f"impossible routing: top_k = {self.top_k}, {self.groups} groups, "
                             f"topk_group = {self.topk_group} for {E} experts")
        if self.top_k > self.topk_group * (E // self.groups):
            raise ValueError("top_k exceeds the experts of the chosen groups")
        activation(self.activation)
        object.__setattr__(self, "d_in", d)
        object.__setattr__(self, "d_out", int(np.shape(self.W_down)[-1]))

    def on(self, like: Array) -> RoutedMoE:
        moved = _move(self, like, ("router", "bias", "W_gate", "W_up", "W_down"))
        return replace(moved, shared=self.shared.on(like))

    def weights(self, x: Array) -> Array:
        """The routing weights w (..., E): zero off each token's chosen experts."""
        xp = namespace(x)
        scores = 1.0 / (1.0 + xp.exp(-(x @ xp.matrix_transpose(self.router))))
        choice = scores + self.bias
        E = choice.shape[-1]
        grouped = xp.reshape(choice, (*choice.shape[:-1], self.groups, E // self.groups))
        top2 = xp.sort(grouped, axis=-1, descending=True)[..., :2]
        group_score = xp.sum(top2, axis=-1)
        kept_groups = xp.argsort(group_score, axis=-1, descending=True)[..., :self.topk_group]
        group_mask = xp.sum(_one_hot(kept_groups, self.groups, x), axis=-2)
        expert_mask = xp.reshape(xp.broadcast_to(group_mask[..., None], grouped.shape),
                                 choice.shape)
        masked = xp.where(expert_mask > 0, choice, xp.full_like(choice, -xp.inf))
        chosen = xp.argsort(masked, axis=-1, descending=True)[..., :self.top_k]
        mask = xp.sum(_one_hot(chosen, E, x), axis=-2)
        w = scores * mask
        if self.normalize:
            w = w / (xp.sum(w, axis=-1, keepdims=True) + 1e-20)
        return w * self.factor

    def __call__(self, x: Array) -> Array:
        xp = namespace(x)
        xe = x[..., None, :, :] if x.ndim >= 2 else x
        h = activation(self.activation)(xe @ self.W_gate) * (xe @ self.W_up)
        experts = h @ self.W_down                                   # (..., E, n, d)
        w = xp.moveaxis(self.weights(x), -1, -2)[..., None]         # (..., E, n, 1)
        return xp.sum(w * experts, axis=-3) + self.shared(x)


def _one_hot(index: Array, size: int, like: Array) -> Array:
    """(..., k) integer indices -> (..., k, size) one-hot in like's dtype."""
    xp = namespace(like)
    arange = xp.arange(size, device=getattr(like, "device", None))
    return xp.astype(index[..., None] == arange, like.dtype)


Sublayer = Operator | StateSpaceDuality | DenseMlp | GatedMlp | RoutedMoE | CrossDomainMoE
SUBLAYERS = (Operator, StateSpaceDuality, DenseMlp, GatedMlp, RoutedMoE, CrossDomainMoE)
Norm = LayerNorm | RMSNorm


@dataclass(frozen=True)
class Residual:
    """One residual sublayer: x + f(N(x)) (``"pre"``) or N(x + f(x)) (``"post"``).

    ``norm`` None is the identity (a sublayer without normalisation)."""

    map: Sublayer
    norm: Norm | None = None
    placement: Placement = "pre"

    def __post_init__(self) -> None:
        if not isinstance(self.map, SUBLAYERS):
            raise TypeError("a residual map is an Operator, a StateSpaceDuality, an MLP or a "
                            f"mixture of experts, got {type(self.map).__name__}")
        if self.placement not in ("pre", "post"):
            raise ValueError(f"placement must be 'pre' or 'post', got {self.placement!r}")
        if self.norm is not None and not isinstance(self.norm, (LayerNorm, RMSNorm)):
            raise TypeError(f"norm must be a LayerNorm or RMSNorm, got {type(self.norm).__name__}")
        if self.map.d_in != self.map.d_out:
            raise ValueError(f"a residual map needs d_in = d_out, got {self.map.d_in} -> "
                             f"{self.map.d_out}")
        if self.norm is not None and self.norm.size not in (None, self.map.d_in):
            raise ValueError(f"the norm acts on {self.norm.size} features, the map on "
                             f"{self.map.d_in}")

    @property
    def d(self) -> int:
        return int(self.map.d_in)

    def on(self, like: Array) -> Residual:
        norm = None if self.norm is None else self.norm.on(like)
        return replace(self, map=self.map.on(like), norm=norm)

    def branch(self, x: Array) -> Array:
        """The residual branch: f(N(x)) for Pre-LN, f(x) for Post-LN; (batch, n, d)."""
        if self.placement == "pre" and self.norm is not None:
            x = self.norm(x)
        return self.map(x)

    def close(self, y: Array) -> Array:
        """What follows the residual sum: N(y) for Post-LN, y for Pre-LN."""
        return self.norm(y) if self.placement == "post" and self.norm is not None else y

    def __call__(self, x: Array) -> Array:
        return self.close(x + self.branch(x))


@dataclass(frozen=True)
class Block:
    """A transformer block: the attention sublayer, then the MLP sublayer."""

    attention: Residual
    mlp: Residual

    def __post_init__(self) -> None:
        if self.attention.d != self.mlp.d:
            raise ValueError(f"attention width {self.attention.d} != MLP width {self.mlp.d}")

    def on(self, like: Array) -> Block:
        return Block(self.attention.on(like), self.mlp.on(like))

    def __call__(self, x: Array) -> Array:
        return self.mlp(self.attention(x))


@dataclass(frozen=True)
class Network:
    """L blocks applied in order, then ``final_norm`` (None: none) on the last state.

    ``architecture`` names where the weights came from (``"gpt2"``, ``"bert"``, ...);
    ``input_norm`` is the normalisation that produced the network's input, when it ends in
    one (BERT's embedding LayerNorm; a Post-LN flow in standardised coordinates reads it)."""

    blocks: tuple[Block, ...]
    final_norm: Norm | None = None
    architecture: str = "network"
    input_norm: Norm | None = None

    def __post_init__(self) -> None:
        blocks = tuple(self.blocks)
        if not blocks or not all(isinstance(b, Block) for b in blocks):
            raise ValueError("a network needs at least one Block")
        if len({b.attention.d for b in blocks}) != 1:
            raise ValueError("every block of a network must have the same width")
        object.__setattr__(self, "blocks", blocks)

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def d(self) -> int:
        return self.blocks[0].attention.d

    @property
    def placement(self) -> str:
        return self.blocks[0].attention.placement

    def on(self, like: Array) -> Network:
        final = None if self.final_norm is None else self.final_norm.on(like)
        first = None if self.input_norm is None else self.input_norm.on(like)
        return replace(self, blocks=tuple(b.on(like) for b in self.blocks), final_norm=final,
                       input_norm=first)

    def with_padding(self, valid: Any) -> Network:
        """This network on a padded batch: ``valid`` (batch, n) booleans mark the real tokens
        (a Hugging Face ``attention_mask``); every attention sublayer hides the padded keys
        (``Operator.with_padding``), so a real token's states are those of the unpadded
        sequence. Padded positions carry states that mean nothing, as in the model."""
        valid = np.asarray(valid)
        if valid.dtype != bool:
            if not np.issubdtype(valid.dtype, np.integer) or not np.isin(valid, (0, 1)).all():
                raise ValueError("an attention mask holds booleans or 0/1 integers (1: a real "
                                 f"token), got {valid.dtype} values")
            valid = valid.astype(bool)
        blocks = []
        for block in self.blocks:
            mixer = block.attention.map
            if not isinstance(mixer, Operator):
                raise TypeError(f"padding hides keys of attention; this network mixes with "
                                f"{type(mixer).__name__}, which has no keys to hide: give it "
                                f"sequences of one length instead")
            blocks.append(replace(block, attention=replace(block.attention,
                                                           map=mixer.with_padding(valid))))
        return replace(self, blocks=tuple(blocks))

    def hidden_states(self, x: Array) -> list[Array]:
        """[x, block_0(x), ..., block_{L-1}(...)]: the input of every block and the last
        output (before ``final_norm``), each (batch, n, d)."""
        net = self.on(x)  # weights on x's backend and dtype
        states = [x]
        for block in net.blocks:
            states.append(block(states[-1]))
        return states

    def __call__(self, x: Array) -> Array:
        y = self.hidden_states(x)[-1]
        return y if self.final_norm is None else self.final_norm.on(x)(y)
