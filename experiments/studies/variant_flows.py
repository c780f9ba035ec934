"""``variant-flows``: does compressing the KV cache change how fast tokens cluster?

Every member (seed, n, d, beta) draws n tokens and one set of weights of the tied Gaussian
ensemble (``experiments.studies.variants``); the same tokens then flow on the sphere,
dx_i/dt = P^perp_{x_i} op(x)_i, under each variant listed in ``[variants] names`` (MHA,
GQA, MQA, MFA, MFA-KR, AnSAN, PrFlash at several p(delta), DMA, ...), with the coupled
weights of that draw. The reference is the field's own variant (``[field] variant``,
"mha": full attention). Per member and variant it stores

* ``clustering_time``: the first output time with <x_i, x_j> >= 1 - delta for all pairs
  (NaN: not by the last time, right-censored); its resolution is the output grid;
* ``cluster_count``: the number of delta-clusters (``dynamics.cluster_count``) per time;
* ``distance``: the mean over tokens of the geodesic angle between x_i(t) under the
  variant and under the reference, per time (0 for the reference itself).

The summary gives per grid point and variant the Kaplan-Meier median clustering time
with its interval and censored fraction, the fraction of draws in which the variant
clusters strictly before the reference (the same tokens and weights: a paired
comparison), the median cluster count and mean distance over time, and the cache a
decoder keeps: ``kv_elements`` per retained token and ``kv_per_token`` averaged over the
sequence (AnSAN and DMA retain fewer tokens). The field ``attention-variant`` defined here
(in ``experiments.registry.FIELDS``) serves every study (a phase diagram of MQA flows, say).

The variants come from a *family* (:class:`VariantFamily`, the field's parameters): the
tied Gaussian ensemble here, or the layers of trained models (``[field] kind =
"trained-variant"``, ``experiments.studies.trained_flows``): the same study then asks the
question of trained weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from attention.array_api import to_numpy
from dynamics import cluster_count, clustering_time, simulate
from dynamics.fields.operator import MemberOperators
from experiments.chunks import initial_states
from experiments.fields import FieldEntry, Members
from experiments.schema import ConfigError, InUnitInterval, Positive, StudyConfig, Times, require
from experiments.statistics import summarize_over_seeds
from experiments.studies import StudyKind, Variable
from experiments.studies.common import label, save_figure
from experiments.studies.variants import CACHE_COMPRESSING, Ensemble, parse_variant

STREAM_OPERATORS = 4  # the weights' random stream (experiments.fields uses 0..3)
EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "variant_flows.toml"


# -- the field -------------------------------------------------------------------------------


class VariantFamily(Protocol):
    """What the study asks of a field's parameters: the reference ``variant``, the heads
    and causality (for the title), and per variant name its flow, cache and checks."""

    variant: str
    heads: int
    causal: bool

    def check_variant(self, name: str) -> None:
        """Raise ValueError if the family has no variant ``name``."""

    def flow(self, members: Members, name: str) -> Any:
        """The field flowing the chunk's members under variant ``name``."""

    def kv_elements(self, name: str, n: int, d: int) -> int:
        """Cache scalars per retained token per layer."""

    def retained_fraction(self, name: str, n: int, d: int) -> float:
        """Fraction of the n tokens a decoder keeps."""


@dataclass(frozen=True)
class VariantFieldParams(Ensemble):
    """[field] kind = "attention-variant": the ensemble's sizes (``Ensemble``), the variant
    spec flowed (``variants.parse_variant``) and ``period``, the time
    between two draws of a random (PrFlash) mask: a multiple of a fixed step dt."""

    variant: str = "mha"
    period: Positive = 0.1

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except ValueError as err:
            raise ConfigError(f"field: {err}") from None

    def check_variant(self, name: str) -> None:
        parse_variant(name)

    def flow(self, members: Members, name: str) -> Any:
        return variant_field(self, members, name)


def variant_field(params: VariantFieldParams, members: Members, variant: str | None = None
                  ) -> Any:
    """The flow of ``variant`` (default: the field's) for the members of a chunk. Member b's
    operator has weights keyed by (config seed, seed_b), so every variant and every beta of a
    seed share one draw (and the initial tokens)."""
    return MemberOperators(tuple(
        params.operator(variant or params.variant, members.n, members.d, float(beta),
                        (members.root, STREAM_OPERATORS, int(seed)))
        for seed, beta in zip(members.seeds, members.betas, strict=True)
    ), period=params.period)


def _check_field(params: VariantFieldParams, config: StudyConfig) -> None:
    try:
        parse_variant(params.variant)
    except ValueError as err:
        raise ConfigError(f"field.variant: {err}") from None
    dt = config.integrator.dt
    if dt > 0:
        ratio = params.period / dt
        require(ratio >= 1 - 1e-9 and abs(ratio - round(ratio)) < 1e-9, "field.period",
                f"must be a multiple of integrator.dt = {dt:g} (each step sees one draw), "
                f"got {params.period:g}")
    for d in config.grid.d:
        require(d % params.heads == 0, "grid.d",
                f"d = {d} is not divisible by field.heads = {params.heads}")


FIELD = FieldEntry(
    "attention-variant", VariantFieldParams, variant_field, "sphere",
    "an attention variant of attention.md §8 (mha, gqa, mqa, mfa, mfa_kr, ansan, dma, "
    "prflash:KIND:PARAM) with weights of the tied Gaussian ensemble, one draw per seed",
    check=_check_field,
)
FIELD_ENTRIES = (FIELD,)


# -- the study ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantsParams:
    """[variants]: the variant specs flowed from the same tokens (they must include the
    field's variant, the reference), the output times (from 0) and the threshold delta."""

    names: tuple[str, ...]
    times: Times
    delta: InUnitInterval = 1e-3

    def __post_init__(self) -> None:
        require(len(self.names) >= 1, "variants.names", "needs at least one variant")
        require(len(set(self.names)) == len(self.names), "variants.names",
                f"has repeated entries {list(self.names)}")


FAMILIES = ("attention-variant", "trained-variant")


def _validate(config: StudyConfig) -> None:
    require(config.field.kind in FAMILIES, "field.kind",
            f"variant-flows flows one of the fields {FAMILIES}, got {config.field.kind!r}")
    for name in config.params.names:
        try:
            config.field.params.check_variant(name)
        except ValueError as err:
            raise ConfigError(f"variants.names: {err}") from None
    reference = config.field.params.variant
    require(reference in config.params.names, "variants.names",
            f"must include the reference field.variant = {reference!r}")
    require(config.initial.kind != "uniform-angles", "initial.kind",
            "variant flows live on the sphere")


def _variables(config: StudyConfig) -> dict[str, Variable]:
    return {
        "clustering_time": Variable(("variant",), "float64", {
            "long_name": "first output time with all <x_i, x_j> >= 1 - delta (NaN: censored)"}),
        "cluster_count": Variable(("variant", "time"), "int32", {
            "long_name": "number of clusters (components of <x_i, x_j> >= 1 - delta)"}),
        "distance": Variable(("variant", "time"), "float64", {
            "long_name": "mean geodesic angle between a token under the variant and under "
                         "the reference"}),
    }


def _coords(config: StudyConfig) -> dict[str, Any]:
    return {"variant": np.array(config.params.names, dtype=object),
            "time": np.asarray(config.params.times, dtype=float)}


def geodesic_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean over tokens of the angle between x_i and y_i: (..., n, d) -> (...)."""
    chord = np.linalg.norm(x - y, axis=-1)
    return (2 * np.arcsin(np.clip(chord / 2, 0.0, 1.0))).mean(axis=-1)


def _compute(config: StudyConfig, members: Members) -> dict[str, np.ndarray]:
    p, params = config.params, config.field.params
    times = np.asarray(p.times, dtype=float)
    x0 = initial_states(config, members)
    kwargs = config.integrator.simulate_kwargs()
    batch, T, V = members.batch, times.size, len(p.names)
    out = {"clustering_time": np.full((batch, V), np.nan),
           "cluster_count": np.zeros((batch, V, T), dtype=np.int32),
           "distance": np.zeros((batch, V, T))}
    paths: dict[str, np.ndarray] = {}
    for name in (params.variant, *p.names):
        if name in paths:
            continue
        traj = simulate(params.flow(members, name), x0, times, **kwargs)
        paths[name] = to_numpy(traj.values)
    reference = paths[params.variant]
    for v, name in enumerate(p.names):
        states = paths[name]
        n, d = states.shape[-2:]
        out["cluster_count"][:, v] = cluster_count(states.reshape(-1, n, d),
                                                   p.delta).reshape(batch, T)
        out["clustering_time"][:, v] = clustering_time(times, states, p.delta)
        out["distance"][:, v] = geodesic_distance(states, reference)
    return out


def _summarize(ds: Any, config: StudyConfig) -> Any:
    import xarray as xr

    grid, p, params = config.grid, config.params, config.field.params
    names = list(p.names)
    horizon = float(p.times[-1])
    ct = ds["clustering_time"].values  # (seed, n, d, beta, variant)
    stats = summarize_over_seeds(ct, horizon)
    ref = ct[..., names.index(params.variant)][..., None]
    filled, ref_filled = np.where(np.isnan(ct), np.inf, ct), np.where(np.isnan(ref), np.inf, ref)
    faster = (filled < ref_filled).mean(axis=0)
    kv = np.array([[[params.kv_elements(v, n, d) for v in names] for d in grid.d]
                   for n in grid.n], dtype=np.int64)
    kept = np.array([[[params.retained_fraction(v, n, d) for v in names] for d in grid.d]
                     for n in grid.n])
    dims = ("n", "d", "beta", "variant")
    out = xr.Dataset({
        **{name: (dims, stats[..., k]) for k, name in enumerate((
            "clustering_time_median", "clustering_time_low", "clustering_time_high",
            "censored_fraction"))},
        "faster_than_reference": (dims, faster),
        "cluster_count_median": ds["cluster_count"].astype(np.float64).median("seed"),
        "distance_mean": ds["distance"].mean("seed"),
        "kv_elements": (("n", "d", "variant"), kv),
        "kv_per_token": (("n", "d", "variant"), kv * kept),
    })
    out["clustering_time_median"].attrs["long_name"] = (
        f"Kaplan-Meier median clustering time (horizon {horizon:g})")
    out["faster_than_reference"].attrs["long_name"] = (
        f"fraction of draws clustering strictly before {params.variant}")
    out["kv_elements"].attrs["long_name"] = "cache scalars per retained token per layer"
    out["kv_per_token"].attrs["long_name"] = "cache scalars per token of the sequence per layer"
    return out


# -- the figure -------------------------------------------------------------------------------


COLOR_INDEX = {"gqa": 0, "mqa": 2, "mla": 4, "mfa": 3, "mfa_kr": 5, "ansan": 6, "dma": 8,
               "ssd": 7, "dma_cdmoe": 9}
"""tab10 colours of the variants, the same in every figure; PrFlash takes 1, 7, 9 in turn
(the trained SSD and DMA + CDMoE models, 7 and 9, appear only beside one PrFlash)."""
CONSTANT_STATE = ("ssd",)
"""Mixers that keep a constant state instead of a per-token cache (diamonds in panel b)."""


def _style(name: str, names: list[str]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    base = name.split(":")[0]
    if name == "mha":
        color = "#000000"
    elif base == "prflash":
        ordinal = [n for n in names if n.startswith("prflash")].index(name)
        color = plt.get_cmap("tab10")((1, 7, 9)[ordinal % 3])
    else:
        color = plt.get_cmap("tab10")(COLOR_INDEX.get(base, 9))
    compressing = base in (*CACHE_COMPRESSING, "mha")
    return {"color": color, "linestyle": "-" if compressing else "--",
            "marker": "D" if base in CONSTANT_STATE else "o" if compressing else "s"}


VARIANT_LABELS = {"mha": "MHA", "gqa": "GQA", "mqa": "MQA", "mla": "MLA", "mfa": "MFA",
                  "mfa_kr": "MFA-KR", "ansan": "AnSAN", "dma": "DMA", "ssd": "SSD"}
BLOCK_LABELS = {"geometric": "p = {}^distance", "harmonic": "p = min(1, {}/(distance+1))",
                "window": "window of {} blocks"}


def variant_label(name: str) -> str:
    """A variant's name in words for legends: "prflash:geometric:0.5" -> "PrFlash, p =
    0.5^distance"; the other names in their usual capitals (unknown names unchanged)."""
    base, _, rest = name.partition(":")
    if base == "prflash" and rest:
        kind, _, param = rest.partition(":")
        return f"PrFlash, {BLOCK_LABELS.get(kind, kind + ' {}').format(param)}"
    return VARIANT_LABELS.get(name, name)


def draw(ds: Any, config: StudyConfig, point: tuple[int, int, int] = (0, 0, 0),
         axes: Any = None, heading: str | None = None):
    """The three-panel figure at grid point (n, d, beta indices): clusters over time,
    clustering time against the cache kept per token, distance to the reference. Into
    ``axes`` (three matplotlib axes, a row of a larger figure) when given, with
    ``heading`` as the row's title."""
    import matplotlib.pyplot as plt

    grid, p, params = config.grid, config.params, config.field.params
    i, j, k = point
    names = list(p.names)
    times = np.asarray(p.times)
    own = axes is None
    if own:
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    else:
        fig = axes[0].figure
    kv = ds["kv_per_token"].values[i, j]
    for v, name in enumerate(names):
        style = _style(name, names)
        axes[0].plot(times, ds["cluster_count_median"].values[i, j, k, v],
                     linestyle=style["linestyle"], color=style["color"],
                     label=variant_label(name), lw=1.3)
        med = ds["clustering_time_median"].values[i, j, k, v]
        lo = ds["clustering_time_low"].values[i, j, k, v]
        hi = ds["clustering_time_high"].values[i, j, k, v]
        same = np.nonzero(kv == kv[v])[0]
        rank = int(np.searchsorted(same, v))
        x = kv[v] * 2 ** (0.08 * (rank - (same.size - 1) / 2))
        if np.isfinite(med):
            hi = hi if np.isfinite(hi) else times[-1]
            axes[1].errorbar(x, med, yerr=[[med - lo], [hi - med]], fmt=style["marker"],
                             color=style["color"], capsize=3)
            right = rank >= same.size / 2
            axes[1].annotate(variant_label(name), (x, med), fontsize=7,
                             xytext=(4 if right else -4, 3), textcoords="offset points",
                             ha="left" if right else "right")
        if name != params.variant:
            axes[2].plot(times, ds["distance_mean"].values[i, j, k, v], color=style["color"],
                         linestyle=style["linestyle"], label=variant_label(name))
    axes[0].set_yscale("log")
    axes[0].set(xlabel="$t$ (depth)", ylabel=f"median number of clusters ($\\delta$ = {p.delta:g})",
                title="(a) clusters over depth")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].set_xscale("log", base=2)
    axes[1].set(xlabel="KV cache kept per token (scalars per layer)",
                ylabel="clustering time (KM median, 95% CI)",
                title="(b) o: smaller KV heads   s: fewer kept keys"
                      + ("   D: constant state" if set(names) & set(CONSTANT_STATE) else ""))
    reference = variant_label(params.variant)
    axes[2].set(xlabel="$t$ (depth)", ylabel=f"mean angle to the {reference} flow (rad)",
                title=f"(c) distance to {reference}")
    title = (f"variant flows: {config.seeds.count} draws, n = {grid.n[i]}, d = {grid.d[j]}, "
             f"β = {grid.beta[k]:g}, {params.heads} heads, "
             f"{'causal' if params.causal else 'bidirectional'} ({label(config)})")
    if own:
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
    else:
        axes[0].annotate(heading or title, (0, 1.18), xycoords="axes fraction", fontsize=10,
                         fontweight="bold")
    return fig


def _plot(ds: Any, config: StudyConfig, out_dir: Path) -> list[Path]:
    """``variant_flows`` for the first grid point, then one figure per further point (6 at
    most), named by its n, d and beta."""
    grid = config.grid
    points = [(i, j, k) for i in range(len(grid.n)) for j in range(len(grid.d))
              for k in range(len(grid.beta))]
    paths: list[Path] = []
    for number, (i, j, k) in enumerate(points[:6]):
        stem = "variant_flows" if number == 0 else \
            f"variant_flows_n{grid.n[i]}_d{grid.d[j]}_beta{grid.beta[k]:g}"
        paths += save_figure(draw(ds, config, (i, j, k)), out_dir, stem)
    return paths


KIND = StudyKind("variants", VariantsParams,
                 variables=_variables, compute=_compute, summarize=_summarize, plot=_plot,
                 coords=_coords, validate=_validate)

__all__ = ["EXAMPLE", "FAMILIES", "FIELD", "FIELD_ENTRIES", "KIND", "VariantFamily",
           "VariantFieldParams", "VariantsParams", "draw", "geodesic_distance", "variant_field"]
