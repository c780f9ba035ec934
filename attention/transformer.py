"""A trained transformer's blocks, as plain maps: what a network *is* once its weights are read.

A block of a transformer is two residual sublayers, attention then MLP. Each sublayer is a
map f (an :class:`~attention.operator.Operator` or an MLP) with a normalisation N placed

    Pre-LN  (GPT-2, Llama):  x -> x + f(N(x))
    Post-LN (BERT, ALBERT):  x -> N(x + f(x))

(:class:`Residual`). Both are one explicit Euler step with h = 1 of the field f(N(x))
(Pre-LN) or f(x) with N as the retraction (Post-LN), which is how ``dynamics.model_flow``
turns a :class:`Network` into a flow in depth. The MLPs:

    DenseMlp:  f(x) = act(x W_in + b_in) W_out + b_out                  (BERT, GPT-2, ALBERT)
    GatedMlp:  f(x) = (act(x W_gate) * (x W_up)) W_down                 (SwiGLU: Llama, Qwen2)

with W_in (d, m), W_out (m, d) acting on token rows. Every map runs on numpy, torch and
JAX arrays; ``on(like)`` moves its weights to ``like``'s backend, dtype and device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from attention.activations import activation
from attention.array_api import Array, asarray_like
from attention.norms import LayerNorm, RMSNorm
from attention.operator import Operator

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


Sublayer = Operator | DenseMlp | GatedMlp
Norm = LayerNorm | RMSNorm


@dataclass(frozen=True)
class Residual:
    """One residual sublayer: x + f(N(x)) (``"pre"``) or N(x + f(x)) (``"post"``).

    ``norm`` None is the identity (a sublayer without normalisation)."""

    map: Sublayer
    norm: Norm | None = None
    placement: Placement = "pre"

    def __post_init__(self) -> None:
        if not isinstance(self.map, (Operator, DenseMlp, GatedMlp)):
            raise TypeError("a residual map is an Operator or an MLP, got "
                            f"{type(self.map).__name__}")
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

    ``architecture`` names where the weights came from (``"gpt2"``, ``"bert"``, ...)."""

    blocks: tuple[Block, ...]
    final_norm: Norm | None = None
    architecture: str = "network"

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
        norm = None if self.final_norm is None else self.final_norm.on(like)
        return replace(self, blocks=tuple(b.on(like) for b in self.blocks), final_norm=norm)

    def hidden_states(self, x: Array) -> list[Array]:
        """[x, block_0(x), ..., block_{L-1}(...)]: the input of every block and the last
        output (before ``final_norm``), each (batch, n, d)."""
        states = [x]
        for block in self.blocks:
            states.append(block(states[-1]))
        return states

    def __call__(self, x: Array) -> Array:
        y = self.hidden_states(x)[-1]
        return y if self.final_norm is None else self.final_norm(y)
