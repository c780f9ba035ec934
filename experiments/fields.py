"""The fields a study can simulate, by name: ``[field] kind = "sa"`` in a config.

A registry entry turns the config's ``[field]`` table (parsed into the entry's ``params``
dataclass) into a ``dynamics`` field for one work chunk:

    build(params, Members) -> field          (Members: the chunk's batch, see below)

Every member of a chunk is one (seed, beta) pair at one grid point (n, d); beta varies
along the batch (the fields take beta of shape (batch,)). Random weights are drawn from
generators keyed by (config seed, seed, beta index), so a member's field does not depend
on which chunk it ran in. An entry also says on which space its states live ("sphere"
or "angles") and which exact theory applies: ``equiangular`` names the normalisation of
the equiangular ODE (6.9)/(6.10) when the field is SA/USA with Q = K = V = I, else None.

Defined here (``FIELD_ENTRIES``): ``sa``, ``usa`` (optionally causal), ``random`` (the
random weight ensembles of Fig. 5, ``dynamics.ensembles``), ``circle-sa`` and ``circle-usa``
(angles, d = 2); ``attention-variant`` is defined beside its study
(``experiments.studies.variant_flows``). The table of all of them, by name, is
``experiments.registry.FIELDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import numpy as np

from attention.array_api import from_numpy
from dynamics import CircleAttention, SelfAttention, authors_weights, figure5_weights
from experiments.registry import FIELDS
from experiments.schema import Check, ConfigError, StudyConfig

# Tags of the random streams: one per purpose, so no two draws share numbers.
STREAM_INITIAL, STREAM_WEIGHTS_MEMBER, STREAM_WEIGHTS_BETA, STREAM_WEIGHTS_RUN = 0, 1, 2, 3


@dataclass(frozen=True)
class Members:
    """The batch of one work chunk: member b is (seeds[b], betas[b]) at grid point (n, d).

    beta_index[b] is the index of betas[b] in the config's beta grid; root is the config seed.
    """

    root: int
    n: int
    d: int
    seeds: np.ndarray
    betas: np.ndarray
    beta_index: np.ndarray
    backend: str
    dtype: str
    device: str

    @property
    def batch(self) -> int:
        return int(self.seeds.size)

    def subset(self, index: np.ndarray) -> Members:
        """The members at positions ``index`` (a batch of the survivors of a chunk)."""
        return replace(self, seeds=self.seeds[index], betas=self.betas[index],
                       beta_index=self.beta_index[index])

    def generator(self, *key: int) -> np.random.Generator:
        """numpy Generator seeded by (root, *key)."""
        return np.random.default_rng([self.root, *[int(k) for k in key]])

    def array(self, a: np.ndarray) -> Any:
        """A numpy array on this chunk's backend, dtype and device."""
        return from_numpy(a, self.backend, self.dtype, self.device if self.backend == "torch"
                          else None)


@dataclass(frozen=True)
class FieldEntry:
    name: str
    params: type
    build: Callable[[Any, Members], Any]
    space: Literal["sphere", "angles"]
    help: str
    equiangular: Callable[[Any], str | None] = lambda params: None
    check: Callable[[Any, StudyConfig], None] = lambda params, config: None


def build_field(config: StudyConfig, members: Members) -> Any:
    """The field of the config for the members of one chunk."""
    return FIELDS[config.field.kind].build(config.field.params, members)


def equiangular_normalization(config: StudyConfig) -> str | None:
    """"softmax"/"usa" when the equiangular theory (Thm 6.8, Gamma_infinity) applies, else None."""
    return FIELDS[config.field.kind].equiangular(config.field.params)


# -- SA and USA with Q = K = V = I -----------------------------------------------------------


@dataclass(frozen=True)
class AttentionParams:
    """causal: token i attends to j <= i (CSA, 2411.04990)."""

    causal: bool = False


def _attention(field: type, normalization: str) -> Callable[[AttentionParams, Members], Any]:
    """Builds ``field`` (SelfAttention, or CircleAttention on angles) with each member's beta."""
    def build(params: AttentionParams, members: Members) -> Any:
        return field(beta=members.betas.astype(float), normalization=normalization,
                     causal=params.causal)

    return build


# -- random weights (Fig. 5) -------------------------------------------------------------------


Flag = Annotated[int, Check(lambda v: v in (0, 1, 2, 3), "must be 0, 1, 2 or 3, got {}")]


@dataclass(frozen=True)
class RandomParams:
    """Random (QK, V) from ``dynamics.ensembles``.

    panel: a Fig. 5 panel "a".."d" (``figure5_weights``), or "flags" to use the authors'
    ``random_kq``/``random_v`` flags (``authors_weights``). draw: a fresh draw per member
    (the code's --noanneal 0), one per beta (1) or one for the whole run (2).
    """

    panel: Literal["a", "b", "c", "d", "flags"] = "a"
    random_kq: Flag = 0
    random_v: Flag = 0
    value_from: Literal["code", "caption"] = "code"
    draw: Literal["member", "beta", "run"] = "member"
    normalization: Literal["softmax", "usa"] = "softmax"


def _draw_weights(params: RandomParams, gen: np.random.Generator, d: int):
    if params.panel == "flags":
        return authors_weights(gen, d, random_kq=params.random_kq, random_v=params.random_v,
                               value_from=params.value_from)
    return figure5_weights(params.panel, gen, d, value_from=params.value_from)


def _random(params: RandomParams, members: Members) -> Any:
    d = members.d
    draws: dict[tuple[int, ...], Any] = {}
    qk, v = [], []
    for seed, index in zip(members.seeds, members.beta_index, strict=True):
        key = {"member": (STREAM_WEIGHTS_MEMBER, int(seed), int(index)),
               "beta": (STREAM_WEIGHTS_BETA, int(index)),
               "run": (STREAM_WEIGHTS_RUN,)}[params.draw]
        if key not in draws:
            draws[key] = _draw_weights(params, members.generator(*key), d)
        w = draws[key]
        qk.append(np.eye(d) if w.QK is None else np.asarray(w.QK))
        v.append(np.eye(d) if w.V is None else np.asarray(w.V))
    return SelfAttention(beta=members.betas.astype(float), QK=np.stack(qk), V=np.stack(v),
                         normalization=params.normalization)


def _check_random(params: RandomParams, config: StudyConfig) -> None:
    if params.panel != "flags" and (params.random_kq or params.random_v):
        raise ConfigError("field.random_kq: the flags apply with panel = 'flags' only")


# -- the table -----------------------------------------------------------------------------------

FIELD_ENTRIES: tuple[FieldEntry, ...] = (
    FieldEntry("sa", AttentionParams, _attention(SelfAttention, "softmax"), "sphere",
               "self-attention (2.6) with Q = K = V = I, softmax normalisation",
               equiangular=lambda p: None if p.causal else "softmax"),
    FieldEntry("usa", AttentionParams, _attention(SelfAttention, "usa"), "sphere",
               "unnormalised self-attention (2.6): Z_i replaced by n",
               equiangular=lambda p: None if p.causal else "usa"),
    FieldEntry("random", RandomParams, _random, "sphere", "SA with random weights: the Fig. 5 "
               "ensembles or the authors' --randomKQ/--randomV flags", check=_check_random),
    FieldEntry("circle-sa", AttentionParams, _attention(CircleAttention, "softmax"), "angles",
               "SA on the circle in angle form (7.1), d = 2"),
    FieldEntry("circle-usa", AttentionParams, _attention(CircleAttention, "usa"), "angles",
               "USA on the circle in angle form (7.1), d = 2"),
)
