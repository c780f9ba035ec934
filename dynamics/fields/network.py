"""A trained network as a flow in depth: block l acts on t in [t0 + l, t0 + l + 1).

A residual sublayer (``attention.transformer.Residual``) with map f and normalisation N is
one explicit Euler step of length h = 1 of

    Pre-LN:   x_dot = f(N(x))                        (retraction: none)
    Post-LN:  x_dot = f(x),  each step ending in N   (retraction: the model's LayerNorm)

(:class:`ResidualField`), and a block (attention, then MLP) is the Lie-Trotter splitting
of its two sublayers. So for a network of L blocks (:class:`NetworkFlow`, built by
:func:`model_flow`), ``simulate(flow, h0, times=range(L + 1), method="euler", dt=1)``
reproduces the network's hidden states at every block boundary: the network *is* its flow
discretised with h = 1. A smaller step (or RK4) integrates the same fields towards a
continuous-depth limit. Since the fields jump at integer times, integrate that limit one
piece at a time so that no stage reads the next block: ``flow.block(l)`` on [0, 1] (the
splitting refined: the flow of attention + MLP, reached at first order in h) or each of
``flow.sublayers(l)`` on [0, 1] in turn (each sublayer's own flow; RK4 reaches it at
fourth order, a Pre-LN sublayer being a smooth field in R^d).

Post-LN with a trained gain or bias has no such limit in these coordinates: its LayerNorm
N is not idempotent (N(N(y)) != N(y) unless gain = 1 and bias = 0), so the steps
y -> N(y + h f(y)) apply the affine part of N once per step and diverge as h -> 0. A
Post-LN sublayer therefore refuses steps that do not start at a whole time (h = 1 from an
integer start, the network itself) unless its LayerNorm is the plain one. Its limit lives
in *standardised coordinates* (:class:`StandardizedSublayer`): write N = A o S with
S(y) = (y - mean y) / sqrt(var y + eps) and A(u) = gain * u + bias. The state u = S(.) lies
on the sphere {mean u = 0, |u|^2 = d} (up to eps), the sublayer's input is x = A'(u) for
the affine part A' of the norm before it, and the sublayer is

    u -> S(u + F(u)),   F(u) = A'(u) + f(A'(u)) - u,

the authors' scheme (Euler on the drive F, then the retraction S) with h = 1 on that
sphere: the paper's model, with S as the normalisation. Smaller steps of the tangent part
of F converge to a flow on the sphere (RK4 at fourth order, S being the nearest-point
projection); the network's hidden states are A(u).

States live in R^d (``space=EUCLIDEAN``): a Post-LN network keeps them on the image of its
LayerNorm, a Pre-LN one lets their norms grow, as the residual stream does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from attention.array_api import Array, namespace
from attention.norms import LayerNorm
from attention.operator import is_traced
from attention.transformer import Network, Residual
from dynamics.fields.base import Field
from dynamics.fields.splitting import LieTrotter
from dynamics.space import EUCLIDEAN, Euclidean

STEP_TOL = 1e-9


def _check_width(x: Array, d: int, what: str) -> None:
    if x.ndim != 3 or x.shape[-1] != d:
        raise ValueError(f"the {what} takes tokens (batch, n, {d}), got shape {tuple(x.shape)}")


@dataclass(frozen=True)
class ResidualField(Field):
    """One residual sublayer as a field (module docstring): velocity f(N(x)) for Pre-LN,
    f(x) for Post-LN; a step of a Post-LN sublayer ends in N (``retract``)."""

    residual: Residual
    space: Euclidean = field(default=EUCLIDEAN)

    time_dependent: ClassVar[bool] = False
    batch_shared: ClassVar[tuple[str, ...]] = ("residual",)

    def __post_init__(self) -> None:
        if not isinstance(self.residual, Residual):
            raise TypeError("a ResidualField takes an attention.transformer.Residual, got "
                            f"{type(self.residual).__name__}")

    def check(self, x: Array) -> None:
        _check_width(x, self.residual.d, "sublayer")

    def on(self, like: Array) -> ResidualField:
        return replace(self, residual=self.residual.on(like))

    def __call__(self, t: Any, x: Array) -> Array:
        return self.residual.branch(x)

    def retract(self, t: Any, y: Array) -> Array:
        if self.residual.placement == "post" and not _idempotent(self.residual.norm):
            if is_traced(t):
                raise ValueError("a Post-LN sublayer with a trained LayerNorm gain or bias "
                                 "takes whole steps only: integrate it with the package's "
                                 "fixed-step methods, not through diffrax")
            if np.any(np.abs(np.asarray(t, dtype=float) % 1.0 - 0.5) < 0.5 - STEP_TOL):
                raise ValueError(
                    "a Post-LN sublayer with a trained LayerNorm gain or bias is not a "
                    "retraction (it is not idempotent), so steps shorter than one block do not "
                    "converge; integrate it with dt = 1 from whole times (the network itself)"
                )
        return self.residual.close(y)


@dataclass(frozen=True)
class StandardizedSublayer(Field):
    """A Post-LN sublayer in the standardised coordinates of its LayerNorm (module docstring):
    drive F(u) = A'(u) + f(A'(u)) - u, velocity its projection on the tangent space of the
    sphere {mean 0, |u|^2 = d}, retraction S. ``readout`` is the norm before the sublayer
    (None: x = u, for an input that no LayerNorm produced)."""

    residual: Residual
    readout: LayerNorm | None = None
    space: Euclidean = field(default=EUCLIDEAN)

    time_dependent: ClassVar[bool] = False
    batch_shared: ClassVar[tuple[str, ...]] = ("residual", "readout")

    def __post_init__(self) -> None:
        if self.residual.placement != "post" or not isinstance(self.residual.norm, LayerNorm):
            raise ValueError("standardised coordinates are those of a Post-LN sublayer with a "
                             "LayerNorm")
        if self.readout is not None and not isinstance(self.readout, LayerNorm):
            raise TypeError("the readout is the LayerNorm before the sublayer (or None)")

    def check(self, x: Array) -> None:
        ResidualField(self.residual).check(x)

    def on(self, like: Array) -> StandardizedSublayer:
        readout = None if self.readout is None else self.readout.on(like)
        return replace(self, residual=self.residual.on(like), readout=readout)

    def drive(self, t: Any, u: Array) -> Array:
        x = u if self.readout is None else self.readout.affine(u)
        return x + self.residual.map(x) - u

    def __call__(self, t: Any, u: Array) -> Array:
        xp = namespace(u)
        F = self.drive(t, u)
        F = F - xp.mean(F, axis=-1, keepdims=True)
        return F - xp.sum(u * F, axis=-1, keepdims=True) / xp.sum(u * u, axis=-1,
                                                                   keepdims=True) * u

    def retract(self, t: Any, y: Array) -> Array:
        return self.residual.norm.standardize(y)


def _idempotent(norm: Any) -> bool:
    """True when N(N(y)) = N(y) up to eps: a norm without gain (or gain 1) and bias 0."""
    if norm is None:
        return True
    gain, bias = norm.gain, getattr(norm, "bias", None)
    plain_gain = gain is None or bool(np.all(np.asarray(gain) == 1))
    return plain_gain and (bias is None or bool(np.all(np.asarray(bias) == 0)))


@dataclass(frozen=True)
class Depth(Field):
    """Layer fields in sequence: ``layers[l]`` acts on [t0 + l, t0 + l + 1).

    The last layer also serves t = t0 + L (a stage placed at the end of the last block);
    per-member times (batch,) are served member group by member group."""

    layers: tuple[Field, ...]
    t0: float = 0.0
    space: Euclidean = field(default=EUCLIDEAN)

    time_dependent: ClassVar[bool] = True
    batch_shared: ClassVar[tuple[str, ...]] = ("layers",)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers or not all(isinstance(f, Field) for f in layers):
            raise ValueError("Depth needs at least one field (dynamics.Field)")
        object.__setattr__(self, "layers", layers)

    def index(self, t: Any) -> Any:
        """l = floor(t - t0) as an int, or an int array (batch,) for per-member times."""
        if is_traced(t):
            raise ValueError("a network flow jumps between layers at integer times; run it "
                             "with the package's own integrators, not inside a JAX trace")
        s = np.asarray(t, dtype=float) - self.t0
        L = len(self.layers)
        if np.any(s < -STEP_TOL) or np.any(s > L + STEP_TOL):
            raise ValueError(f"time {t} lies outside the network's depth [{self.t0}, "
                             f"{self.t0 + L}]")
        k = np.minimum(np.floor(s + STEP_TOL), L - 1).astype(np.int64)
        return int(k) if k.ndim == 0 else k

    def _per_layer(self, t: Any, x: Array, apply) -> Array:
        k = self.index(t)
        if np.ndim(k) == 0:
            return apply(self.layers[k], t, x)
        xp = namespace(x)
        rows = [apply(self.layers[int(k[b])], t[b], x[b:b + 1]) for b in range(x.shape[0])]
        return xp.concat(rows, axis=0)

    def check(self, x: Array) -> None:
        for layer in self.layers:
            layer.check(x)

    def on(self, like: Array) -> Depth:
        return replace(self, layers=tuple(f.on(like) for f in self.layers))

    def __call__(self, t: Any, x: Array) -> Array:
        return self._per_layer(t, x, lambda f, s, y: f(s, y))

    def drive(self, t: Any, x: Array) -> Array:
        return self._per_layer(t, x, lambda f, s, y: f.drive(s, y))

    def retract(self, t: Any, y: Array) -> Array:
        return self._per_layer(t, y, lambda f, s, z: f.retract(s, z))


@dataclass(frozen=True)
class NetworkFlow(Field):
    """A :class:`~attention.transformer.Network` as a field in depth (module docstring):
    the splitting (attention sublayers in depth, MLP sublayers in depth)."""

    network: Network
    t0: float = 0.0
    space: Euclidean = field(default=EUCLIDEAN)

    time_dependent: ClassVar[bool] = True
    batch_shared: ClassVar[tuple[str, ...]] = ("network",)

    def __post_init__(self) -> None:
        if not isinstance(self.network, Network):
            raise TypeError(f"NetworkFlow takes an attention.transformer.Network, got "
                            f"{type(self.network).__name__}")

    @property
    def depth(self) -> int:
        return self.network.depth

    @cached_property
    def parts(self) -> tuple[Depth, Depth]:  # type: ignore[override]
        """Built once per flow: fixed-step schemes read them at every step."""
        blocks = self.network.blocks
        return (Depth(tuple(ResidualField(b.attention) for b in blocks), self.t0),
                Depth(tuple(ResidualField(b.mlp) for b in blocks), self.t0))

    def block(self, layer: int) -> LieTrotter:
        """Block ``layer`` alone, a time-independent splitting (attention, then MLP)."""
        attention, mlp = self.sublayers(layer)
        return LieTrotter(attention, mlp)

    def sublayers(self, layer: int) -> tuple[ResidualField, ResidualField]:
        """The attention and MLP sublayers of block ``layer`` as time-independent fields."""
        if not 0 <= layer < self.depth:
            raise ValueError(f"layer must lie in [0, {self.depth}), got {layer}")
        b = self.network.blocks[layer]
        return ResidualField(b.attention), ResidualField(b.mlp)

    def standardized(self, layer: int) -> tuple[StandardizedSublayer, StandardizedSublayer]:
        """The two sublayers of Post-LN block ``layer`` in standardised coordinates: the
        attention sublayer reads the previous block's last LayerNorm (block 0: the network's
        ``input_norm``), the MLP sublayer reads the attention sublayer's."""
        if self.network.placement != "post":
            raise ValueError("standardised coordinates are for Post-LN networks; a Pre-LN "
                             "network's sublayers are smooth fields already (sublayers)")
        self.sublayers(layer)  # checks the index
        blocks = self.network.blocks
        before = self.network.input_norm if layer == 0 else blocks[layer - 1].mlp.norm
        block = blocks[layer]
        return (StandardizedSublayer(block.attention, before),
                StandardizedSublayer(block.mlp, block.attention.norm))

    def check(self, x: Array) -> None:
        _check_width(x, self.network.d, "network")

    def on(self, like: Array) -> NetworkFlow:
        return replace(self, network=self.network.on(like))

    def __call__(self, t: Any, x: Array) -> Array:
        first, second = self.parts
        return first(t, x) + second(t, x)

    def retract(self, t: Any, y: Array) -> Array:
        if self.network.placement == "post":
            raise ValueError(
                "a Post-LN network ends each sublayer in its own LayerNorm, which a step of "
                "the summed field cannot apply; integrate it with a fixed-step method "
                "(euler, rk4, ...), which advances the sublayers one after the other"
            )
        return y


def model_flow(model: Any, *, t0: float = 0.0, attention_mask: Any = None) -> NetworkFlow:
    """The flow in depth of a network: an ``attention.transformer.Network`` or a Hugging
    Face model (read by ``attention.importers.network_from_model``).

    attention_mask: for a padded batch, (batch, n) booleans or 0/1 integers (1: a real
    token; the Hugging Face ``attention_mask``, numpy or torch): the flow's attention hides
    the padded keys (``Network.with_padding``), so the states of real tokens are the
    model's hidden states for that mask; the batch flowed must be that batch."""
    if not isinstance(model, Network):
        from attention.importers import network_from_model

        model = network_from_model(model)
    if attention_mask is not None:
        from attention.array_api import to_numpy

        model = model.with_padding(to_numpy(attention_mask))
    return NetworkFlow(model, float(t0))
