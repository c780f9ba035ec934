"""F1 - histograms of pairwise inner products of ALBERT's hidden states (paper Fig. 1).

The paper feeds one Wikipedia paragraph (wikitext-103, a train line of more than 300
tokens) through the pretrained ALBERT XLarge v2 and plots, at several layers, the density
histogram (Freedman-Diaconis bins) of {<x_i, x_j>}_{i != j} for the hidden states
normalised token by token. Top: the 24-layer model at layers 0, 1, 21, 22, 23, 24; bottom:
the model run for 48 layers (ALBERT shares its layer, so this iterates it; the authors'
notebook also set ``num_attention_heads=1`` there, paper.md erratum 5) at layers 25, 26, 27,
46, 47, 48. The claim: mass accumulates at 1 with depth.

This needs ``transformers``, ``datasets`` and ``sentencepiece`` with the model and data
already in the local Hugging Face cache (no download is attempted). Where they are missing
the figure says so and writes nothing. The histogram code (``layer_histograms``,
``draw_histograms``) runs on any token sets; the tests feed it synthetic tokens.
The caption says i != j, the authors' notebook included the diagonal; both are offered.
"""

from __future__ import annotations

import os
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from dynamics import Histogram, inner_product_histograms, normalize, pairwise_inner_products
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


def _require(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError as error:
        raise Unavailable(f"the Python package {name!r} is not installed") from error


def hidden_states(seed: int) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict]:
    """Hidden states (n, 2048) of the 24- and 48-layer runs at the figure's layers, from the
    local cache only; raises Unavailable when anything is missing."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    transformers = _require("transformers")
    datasets = _require("datasets")
    _require("sentencepiece")
    torch = _require("torch")
    try:
        tokenizer = transformers.AlbertTokenizer.from_pretrained(MODEL, local_files_only=True)
        model24 = transformers.AlbertModel.from_pretrained(MODEL, local_files_only=True)
        config = transformers.AlbertConfig.from_pretrained(
            MODEL, num_hidden_layers=48, num_attention_heads=1, local_files_only=True)
        model48 = transformers.AlbertModel.from_pretrained(MODEL, config=config,
                                                           local_files_only=True)
        lines = datasets.load_dataset("wikitext", "wikitext-103-v1", split="train")
    except Exception as error:  # the hub raises OSError / ValueError / ConnectionError
        raise Unavailable(f"{MODEL} or wikitext-103 is not in the local cache ({error})") from error
    gen = np.random.default_rng(seed)
    for index in gen.permutation(len(lines))[:100_000]:
        text = lines[int(index)]["text"]
        encoded = tokenizer(text, return_tensors="pt", truncation=True)
        if encoded["input_ids"].shape[1] > MIN_TOKENS:
            break
    else:
        raise Unavailable(f"no wikitext-103 line with more than {MIN_TOKENS} tokens found")
    with torch.no_grad():
        out24 = model24(**encoded, output_hidden_states=True).hidden_states
        out48 = model48(**encoded, output_hidden_states=True).hidden_states
    meta = {"line": int(index), "tokens": int(encoded["input_ids"].shape[1])}
    return ({k: out24[k][0].double().numpy() for k in LAYERS_24},
            {k: out48[k][0].double().numpy() for k in LAYERS_48}, meta)


def states_dataset(states24: dict[int, np.ndarray], states48: dict[int, np.ndarray],
                   meta: dict, *, include_diagonal: bool = False):
    """The hidden states (layer, token, feature) of both runs as F1's Dataset."""
    return dataset({f"states{depth}": ((f"layer{depth}", "token", "feature"),
                                       np.stack(list(s.values())))
                    for depth, s in ((24, states24), (48, states48))},
                   {"layer24": list(states24), "layer48": list(states48)}, model=MODEL,
                   layers_24=LAYERS_24, layers_48=LAYERS_48, include_diagonal=include_diagonal,
                   **meta)


def make_figure(request: FigureRequest, states24: dict[int, np.ndarray],
                states48: dict[int, np.ndarray], meta: dict, *, include_diagonal: bool = False):
    """F1 from hidden states (real or, in tests, synthetic), through its store."""
    ds = states_dataset(states24, states48, meta, include_diagonal=include_diagonal)
    write_store(ds, store_path(request, "F1"), FIGURES["F1"], request)
    return make("F1", request, replot=True)


def compute(request: FigureRequest):
    return states_dataset(*hidden_states(request.seed))


@register("F1", "ALBERT xlarge-v2 inner-product histograms (needs the model locally)", compute)
def draw(ds, request: FigureRequest):
    """Draw, save and check F1 from the stored hidden states."""
    meta = parameters(ds)
    include_diagonal = meta["include_diagonal"]
    states = {n: {int(k): ds[f"states{n}"].sel({f"layer{n}": k}).values
                  for k in ds[f"layer{n}"].values} for n in (24, 48)}
    rows = [(f"{n} layers", layer_histograms(states[n], include_diagonal=include_diagonal))
            for n in (24, 48)]
    fig = draw_histograms(rows)
    fig.suptitle(f"F1 - <x_i, x_j> of normalised hidden states ({meta.get('source', MODEL)}; "
                 f"{'with' if include_diagonal else 'without'} i = j)", fontsize=10, y=1.01)
    near = {layer: fraction for n in (24, 48) for layer, fraction
            in mass_near_one(states[n], include_diagonal=include_diagonal).items()}
    data = {"parameters": meta,
            "histograms": {f"{label}: layer {k}": {"density": h.density, "edges": h.edges}
                           for label, hists in rows for k, h in hists.items()},
            "mass_above_0.9": near}
    first, last = min(near), max(near)
    checks = [Check(f"F1: growth of the fraction of pairs with <x_i, x_j> > {NEAR_ONE}, layer "
                    f"{first} -> {last}", near[last] - near[first], 0.0, ">",
                    f"{near[first]:.3f} -> {near[last]:.3f}")]
    return save_figure(fig, request, "F1_albert", data, checks), checks
