"""The ``trained-variant`` field: the mixing layers of trained models as flows.

``python -m experiments train-variants`` trains one tiny causal model per attention variant
(and the SSD mixer, and DMA with the CDMoE feed-forward) on MQAR (``experiments.training``)
and writes ``<dir>/<name>.safetensors``. This field flows tokens on the unit sphere under
one block's trained mixer of such a model,

    dx_i/dt = P^perp_{x_i} op(x)_i,

with op the layer as the model applies it to the directions of its tokens: the block's
RMSNorm gain and the sqrt(d) radius folded into the maps that read the tokens
(``TinyLM.mixers(fold_norm=True)``), so that a token of the sphere is what the layer
sees after its normalisation. For attention, op is the layer's ``Operator``
(``dynamics.OperatorField``) and the grid's beta multiplies its trained score scale; for
SSD, op is the trained SSD with its output map (``dynamics.SSDField``: a causal kernel
<C_i, B_j> times a decay, not normalised over the keys) and beta multiplies the kernel
(C -> beta C), beta = 1 being the layer as trained. Masks come with the layer: AnSAN's
anchors, DMA's top-w, PrFlash's blocks (drawn per member, resampled every ``period``).
A decoder keeps, per layer, ``kv_elements`` scalars for each retained token; SSD keeps one
state of H N p scalars whatever the length, counted as one retained token of that size.
With ``[field] kind = "trained-variant"`` the ``variant-flows`` study asks its question of
trained weights (config: ``experiments/configs/trained_flows.toml``; figure V2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from attention import accounting
from attention.ssd import StateSpaceDuality
from dynamics.fields.operator import MemberOperators, OperatorField
from dynamics.fields.ssd import SSDField
from experiments.fields import FieldEntry, Members
from experiments.schema import ConfigError, Positive, StudyConfig, require

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINTS = "experiments/trained"
"""The checkpoints committed with the package (``python -m experiments train-variants``)."""


def checkpoint_dir(checkpoints: str) -> Path:
    """A checkpoint directory: absolute, relative to the working directory, or to the
    repository (the committed ``experiments/trained``)."""
    path = Path(checkpoints)
    if path.is_absolute() or path.exists():
        return path
    return ROOT / path


@lru_cache(maxsize=64)
def _trained(checkpoints: str, variant: str) -> tuple[Any, Any]:
    from experiments.training.model import load_trained

    path = checkpoint_dir(checkpoints) / f"{variant}.safetensors"
    if not path.exists():
        raise ValueError(f"no trained {variant!r} model at {path}; train it with "
                         f"`python -m experiments train-variants --out {checkpoints}`")
    model, config = load_trained(path)
    return model.mixers(fold_norm=True), config


@dataclass(frozen=True)
class TrainedFieldParams:
    """[field] kind = "trained-variant": ``checkpoints`` (directory of ``VARIANT.safetensors``),
    the reference ``variant``, the block ``layer`` whose attention flows, and ``period``
    between two draws of a random (PrFlash) mask, a multiple of a fixed step dt."""

    checkpoints: str = DEFAULT_CHECKPOINTS
    variant: str = "mha"
    layer: int = 0
    period: Positive = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.layer, int) or self.layer < 0:
            raise ConfigError(f"field.layer must be an integer >= 0, got {self.layer!r}")

    # -- the VariantFamily protocol (experiments.studies.variant_flows) ----------------------
    def mixer(self, name: str) -> Any:
        """The trained mixer of model ``name``: an attention ``Operator`` or a
        ``StateSpaceDuality`` (float64 numpy weights, the RMSNorm gain folded in)."""
        mixers = _trained(self.checkpoints, name)[0]
        if self.layer >= len(mixers):
            raise ValueError(f"the {name} model has {len(mixers)} blocks; field.layer = "
                             f"{self.layer} does not exist")
        return mixers[self.layer]

    def model_config(self, name: str) -> Any:
        return _trained(self.checkpoints, name)[1]

    @property
    def heads(self) -> int:
        return self.model_config(self.variant).heads

    @property
    def causal(self) -> bool:
        return True  # the trained models are causal language models

    def check_variant(self, name: str) -> None:
        self.mixer(name)

    def flow(self, members: Members, name: str) -> Any:
        op = self.mixer(name)
        betas = np.asarray(members.betas, dtype=float)
        if isinstance(op, StateSpaceDuality):
            if not np.all(betas == betas[0]):
                raise ValueError("an SSD layer flows every member of a chunk with one kernel: "
                                 "give the members of a chunk one beta")
            return SSDField(replace(op, W_C=op.W_C * float(betas[0])))
        scale = float(op.effective_scale)
        if np.all(betas == betas[0]):
            return OperatorField(replace(op, scale=scale * float(betas[0])), period=self.period)
        return MemberOperators(tuple(replace(op, scale=scale * float(b)) for b in betas),
                               period=self.period)

    def kv_elements(self, name: str, n: int, d: int) -> int:
        """Cache scalars per retained token; SSD: its state, H N p."""
        op = self.mixer(name)
        if isinstance(op, StateSpaceDuality):
            return op.state_elements
        return accounting.kv_elements(self.model_config(name).operator_config(self.layer))

    def retained_fraction(self, name: str, n: int, d: int) -> float:
        """AnSAN: its anchors and the open segment after the last one; DMA: its top-w keys;
        SSD: one state for the whole sequence (1/n); every token otherwise."""
        if isinstance(self.mixer(name), StateSpaceDuality):
            return 1.0 / n
        oc = self.model_config(name).operator_config(self.layer)
        if oc.variant == "ansan":
            anchors = [a for a in oc.anchors if a < n - 1]
            open_segment = n - 1 - anchors[-1] if anchors else n
            return (len(anchors) + open_segment) / n
        if oc.variant == "dma" and oc.window is not None:
            return min(oc.window, n) / n
        return 1.0


def _check_field(params: TrainedFieldParams, config: StudyConfig) -> None:
    try:
        width = params.model_config(params.variant).d_model
        positions = params.model_config(params.variant).max_len
    except ValueError as err:
        raise ConfigError(f"field.checkpoints: {err}") from None
    for d in config.grid.d:
        require(d == width, "grid.d", f"the trained layers act on d = {width}, got {d}")
    for n in config.grid.n:
        require(n <= positions, "grid.n", f"the trained models know {positions} positions, "
                                          f"got n = {n}")
    dt = config.integrator.dt
    if dt > 0:
        ratio = params.period / dt
        require(ratio >= 1 - 1e-9 and abs(ratio - round(ratio)) < 1e-9, "field.period",
                f"must be a multiple of integrator.dt = {dt:g}, got {params.period:g}")


FIELD = FieldEntry(
    "trained-variant", TrainedFieldParams, lambda params, members: params.flow(
        members, params.variant), "sphere",
    "one block's attention layer of a model trained on MQAR (python -m experiments "
    "train-variants), on the unit sphere",
    check=_check_field,
)
FIELD_ENTRIES = (FIELD,)

__all__ = ["DEFAULT_CHECKPOINTS", "FIELD", "FIELD_ENTRIES", "TrainedFieldParams",
           "checkpoint_dir"]
