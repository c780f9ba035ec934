"""F1 - histograms of pairwise inner products of a model's hidden states by layer (paper Fig. 1),
beside the same histograms from the model's flow in depth.

The paper feeds one Wikipedia paragraph (wikitext-103, a train line of more than 300
tokens) through the pretrained ALBERT XLarge v2 and plots, at several layers, the density
histogram (Freedman-Diaconis bins) of {<x_i, x_j>}_{i != j} for the hidden states
normalised token by token. Top: the 24-layer model at layers 0, 1, 21, 22, 23, 24; bottom:
the model run for 48 layers (ALBERT shares its layer, so this iterates it; the authors'
notebook also set ``num_attention_heads=1`` there, paper.md erratum 5) at layers 25, 26, 27,
46, 47, 48. The claim: mass accumulates at 1 with depth.

``python -m paper_repro F1 --model PATH_OR_NAME`` does the same for any supported model the
user has locally (``attention.importers``: safetensors only, no remote code, no download),
at six layers spread over its depth. Beside the model's own hidden states, each figure shows
those of ``dynamics.model_flow`` of the same model, integrated by Euler with h = 1 from the
model's first hidden state: the network is that discretised flow, and the check says by how
much the two differ (float64); and those of its continuous-depth limit (RK4, h = 1/8,
``experiments.depth``), with the mean gap between the limit's cosines and the network's
per layer in the JSON (``limit_geometry_gap``). Tokens come from the model's tokenizer on a
wikitext-103 line (or, without the dataset, on this module's ``TEXT``); a model saved
without a tokenizer gets token ids drawn from the seed. Where the model, ``transformers``
or the tokenizer's libraries are missing the figure says so and writes nothing. The
histogram code (``layer_histograms``, ``draw_histograms``) runs on any token sets.
The caption says i != j, the authors' notebook included the diagonal; both are offered.
"""

from __future__ import annotations

import os
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from dynamics import (
    Histogram,
    inner_product_histograms,
    model_flow,
    normalize,
    pairwise_inner_products,
    simulate,
)
from experiments.depth import DT as DEPTH_DT
from experiments.depth import depth_limit, geometry_gap
from paper_repro.registry import (
    FIGURES,
    Check,
    FigureRequest,
    Unavailable,
    dataset,
    make,
    parameters,
    register,
    save_figure,
    store_path,
    write_store,
)

MODEL = "albert-xlarge-v2"
LAYERS_24 = (0, 1, 21, 22, 23, 24)
LAYERS_48 = (25, 26, 27, 46, 47, 48)
MIN_TOKENS = 300
COLOR = "#3658bf"
XLIM = (-0.4, 1.05)
NEAR_ONE = 0.9


def layer_histograms(states: dict[int, np.ndarray], *, include_diagonal: bool = False
                     ) -> dict[int, Histogram]:
    """FD density histogram of <x_i, x_j> per layer; states maps layer -> hidden states (n, d),
    normalised here token by token."""
    out = {}
    for layer, x in states.items():
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"layer {layer}: hidden states must have shape (n >= 2, d), "
                             f"got {x.shape}")
        out[layer] = inner_product_histograms(normalize(x)[None],
                                              include_diagonal=include_diagonal)[0]
    return out


def mass_near_one(states: dict[int, np.ndarray], threshold: float = NEAR_ONE,
                  *, include_diagonal: bool = False) -> dict[int, float]:
    """Fraction of the pairs with <x_i, x_j> > threshold, per layer."""
    return {layer: float(np.mean(np.asarray(pairwise_inner_products(
        normalize(np.asarray(x, dtype=float))[None], include_diagonal=include_diagonal))
        > threshold)) for layer, x in states.items()}


def draw_histograms(rows: list[tuple[str, dict[int, Histogram]]]):
    """A figure with one row of 6 step histograms per (label, histograms) entry, shared y."""
    top = max(h.density.max() for _, hists in rows for h in hists.values())
    fig, axes = plt.subplots(2 * len(rows), 3, figsize=(9, 3.0 * 2 * len(rows)),
                             squeeze=False)
    for row, (label, hists) in enumerate(rows):
        for k, (layer, h) in enumerate(hists.items()):
            ax = axes[2 * row + k // 3, k % 3]
            ax.stairs(h.density, h.edges, color=COLOR, linewidth=1.5)
            ax.set_xlim(*XLIM)
            ax.set_ylim(0, 1.05 * top)
            ax.set_title(f"{label}: layer {layer}", fontsize=9)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


TEXT = (
    "Transformers read a sentence as a cloud of points. Each layer lets every word look at "
    "every other word, weigh how alike they are, and move towards the ones it resembles "
    "most. Seen from far away, a deep network repeats this gesture many times, so the "
    "points drift together, and after enough layers most of them sit in a few tight "
    "groups. Whether that grouping helps or hurts depends on the task: a summary may want "
    "the words of one topic to agree, while a translation needs each word to keep enough "
    "of itself to be told apart from its neighbours. Measuring how quickly the points "
    "gather, and how many groups survive, is one way to look inside a trained model "
    "without reading its billions of weights one at a time."
)
MIN_VOCABULARY = 100
FLOW_TOL = 1e-8
"""Largest relative difference allowed between the hidden states and the Euler h = 1 flow."""


def _require(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError as error:
        raise Unavailable(f"the Python package {name!r} is not installed") from error


def spread_layers(depth: int) -> tuple[int, ...]:
    """Six layers from 0 to ``depth`` (the paper's for 24 layers)."""
    if depth == 24:
        return LAYERS_24
    return tuple(sorted({round(float(v)) for v in np.linspace(0, depth, 6)}))


def _load(name: str, **overrides: Any) -> Any:
    from attention.importers import load_model

    _require("transformers")
    try:
        return load_model(name, **overrides)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise Unavailable(f"{name} is not available locally as safetensors ({error})") from error


def token_ids(name: str, vocab_size: int, seed: int, max_tokens: int | None = None
              ) -> tuple[Any, dict]:
    """(input ids (1, n), how they were made): the tokenizer on a wikitext-103 line of more
    than MIN_TOKENS tokens, or on TEXT; random ids from the seed without a tokenizer; at
    most ``max_tokens`` (the model's positions)."""
    torch = _require("torch")
    transformers = _require("transformers")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(name), local_files_only=True, trust_remote_code=False)
    except Exception:  # no tokenizer saved, or its library (sentencepiece) missing
        tokenizer = None
    # without vocabulary files a tokenizer class may still load, knowing only its special
    # tokens: such a tokenizer (or one with ids the model lacks) is not used
    if tokenizer is None or not MIN_VOCABULARY <= len(tokenizer) <= vocab_size:
        count = min(MIN_TOKENS + 20, max_tokens or MIN_TOKENS + 20)
        ids = np.random.default_rng(seed).integers(0, vocab_size, count)
        return torch.as_tensor(ids[None]), {"text": f"random token ids (seed {seed})"}
    for text, source in _texts(seed):
        encoded = tokenizer(text, return_tensors="pt", truncation=True)
        ids = encoded["input_ids"][:, :max_tokens]
        if ids.shape[1] > MIN_TOKENS or source == "TEXT":
            return ids, {"text": source}
    raise Unavailable("no text to tokenize")  # pragma: no cover - TEXT always ends the loop


def _texts(seed: int):
    """wikitext-103 train lines in a seeded order when the dataset is cached, then TEXT."""
    try:
        import datasets

        lines = datasets.load_dataset("wikitext", "wikitext-103-v1", split="train")
    except Exception:  # not installed or not cached: the built-in paragraph
        lines = None
    if lines is not None:
        for index in np.random.default_rng(seed).permutation(len(lines))[:100_000]:
            yield lines[int(index)]["text"], f"wikitext-103 train line {int(index)}"
    yield TEXT, "TEXT"


def model_states(model: Any, ids: Any) -> list[np.ndarray]:
    """The model's hidden states (n, d), float64, for the token ids (1, n)."""
    import torch

    with torch.no_grad():
        return [h[0].double().numpy() for h in model(input_ids=ids,
                                                     output_hidden_states=True).hidden_states]


def flow_states(flow: Any, states: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """The flow's states (Euler, h = 1, from the first hidden state; the final norm applied
    at the last layer, as the model does) and their largest difference from ``states``
    relative to the states' size."""
    depth = flow.depth
    values = np.asarray(simulate(flow, states[0][None], times=np.arange(depth + 1),
                                 method="euler", dt=1.0).values[0])
    final = flow.network.final_norm
    if final is not None:
        values[depth] = final(values[depth])
    gap = max(np.abs(values[k] - states[k]).max() / max(1.0, np.abs(states[k]).max())
              for k in range(depth + 1))
    return list(values), float(gap)


def compute(request: FigureRequest):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    name = request.model or MODEL
    model = _load(name)
    config = model.config
    positions = getattr(config, "max_position_embeddings", None) or getattr(
        config, "n_positions", None)
    ids, meta = token_ids(name, config.vocab_size, request.seed, positions)
    layers = spread_layers(config.num_hidden_layers)
    flow = model_flow(model)
    hidden = model_states(model, ids)
    flowed, gap = flow_states(flow, hidden)
    limit = depth_limit(flow, hidden[0][None])
    states = {k: hidden[k] for k in layers}
    flowed = {k: flowed[k] for k in layers}
    rows = [(f"{config.num_hidden_layers} layers", states), ("flow, Euler h = 1", flowed)]
    limit = {k: limit[k][0] for k in layers}
    rows.append((f"depth limit, RK4 h = {DEPTH_DT:g}", limit))
    limit_gap = {k: geometry_gap(limit[k], states[k]) for k in layers}
    if request.model is None:  # the paper's second run: the shared layer iterated 48 times
        model48 = _load(name, num_hidden_layers=48, num_attention_heads=1)
        hidden48 = model_states(model48, ids)
        states48 = {k: hidden48[k] for k in LAYERS_48}
        rows.append(("48 layers (1 head)", states48))
    return rows_dataset(rows, {**meta, "model": str(name), "tokens": int(ids.shape[1]),
                               "model_type": config.model_type, "flow_gap": gap,
                               "limit_geometry_gap": limit_gap,
                               "paper_model": request.model is None})


def rows_dataset(rows: list[tuple[str, dict[int, np.ndarray]]], meta: dict,
                 *, include_diagonal: bool = False):
    """Rows of hidden states (label, {layer: (n, d)}) as F1's Dataset: one variable
    ``states<k>`` (layer<k>, token, feature) per row, its label in ``parameters``."""
    return dataset({f"states{k}": ((f"layer{k}", "token", "feature"),
                                   np.stack(list(states.values())))
                    for k, (_, states) in enumerate(rows)},
                   {f"layer{k}": list(states) for k, (_, states) in enumerate(rows)},
                   labels=[label for label, _ in rows], include_diagonal=include_diagonal,
                   **meta)


def make_figure(request: FigureRequest, rows: list[tuple[str, dict[int, np.ndarray]]],
                meta: dict, *, include_diagonal: bool = False):
    """F1 from rows of hidden states (real or, in tests, synthetic), through its store."""
    ds = rows_dataset(rows, meta, include_diagonal=include_diagonal)
    write_store(ds, store_path(request, "F1"), FIGURES["F1"], request)
    return make("F1", request, replot=True)


@register("F1", "inner-product histograms by layer of ALBERT xlarge-v2 or a local model "
                "(--model), beside its flow in depth", compute)
def draw(ds, request: FigureRequest):
    """Draw, save and check F1 from the stored hidden states."""
    meta = parameters(ds)
    include_diagonal = meta["include_diagonal"]
    states = [{int(k): ds[f"states{r}"].sel({f"layer{r}": k}).values
               for k in ds[f"layer{r}"].values} for r in range(len(meta["labels"]))]
    rows = [(label, layer_histograms(s, include_diagonal=include_diagonal))
            for label, s in zip(meta["labels"], states, strict=True)]
    fig = draw_histograms(rows)
    source = meta.get("model", meta.get("source", MODEL))
    fig.suptitle(f"F1 - <x_i, x_j> of normalised hidden states ({source}; "
                 f"{'with' if include_diagonal else 'without'} i = j)", fontsize=10, y=1.01)
    near = {label: mass_near_one(s, include_diagonal=include_diagonal)
            for label, s in zip(meta["labels"], states, strict=True)}
    data = {"parameters": meta,
            "histograms": {f"{label}: layer {k}": {"density": h.density, "edges": h.edges}
                           for label, hists in rows for k, h in hists.items()},
            "mass_above_0.9": near,
            "limit_geometry_gap": meta.get("limit_geometry_gap")}
    checks = []
    if meta.get("paper_model", True):  # the paper's claim, about the trained ALBERT
        first_row = near[meta["labels"][0]]
        first, last = min(first_row), max(first_row)
        checks.append(Check(
            f"F1: growth of the fraction of pairs with <x_i, x_j> > {NEAR_ONE}, layer "
            f"{first} -> {last}", first_row[last] - first_row[first], 0.0, ">",
            f"{first_row[first]:.3f} -> {first_row[last]:.3f}"))
    if "flow_gap" in meta:
        checks.append(Check("F1: model_flow with Euler h = 1 reproduces the hidden states "
                            "(largest relative difference)", meta["flow_gap"], FLOW_TOL, "<",
                            "float64; the network is its flow discretised with h = 1"))
    stem = "F1_albert" if meta.get("paper_model", True) else f"F1_{meta['model_type']}"
    return save_figure(fig, request, stem, data, checks), checks
