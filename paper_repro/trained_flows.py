"""V2 - after training, does compressing the KV cache still change how fast tokens cluster?

Runs the ``variant-flows`` study with the ``trained-variant`` field
(``experiments/configs/trained_flows.toml``): the same tokens flowed under the mixing
layers of eleven tiny causal models trained on MQAR with one architecture, data and budget
(``python -m experiments train-variants``; the checkpoints committed in
``experiments/trained``): the nine attention variants, SSD with RoPE, and DMA trained with
the CDMoE feed-forward; for the first and the second block; and beside them the
random-ensemble answer of V1 at the same size (n = 32 tokens of S^63, 4 heads, the same
variants where the ensemble has them: no MLA; PrFlash with the trained models' blocks of 16
and p(delta) = min(1, 3/(delta + 1)); DMA's top-16 in the "linear" form). Each row is V1's
three panels: clusters over depth, clustering time against the cache kept per token, and
the distance to the MHA flow of the same tokens.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import numpy as np

from paper_repro.registry import Check, FigureRequest, register, save_figure
from paper_repro.variant_flows import run_with_summary

ROWS = ("layer0", "layer1", "random")
HEADINGS = {"layer0": "trained models, block 0 mixer",
            "layer1": "trained models, block 1 mixer",
            "random": "random tied Gaussian ensemble (V1) at the same size"}


def _resize(data: dict, request: FigureRequest) -> dict:
    data["seed"] += request.seed
    if request.tiny:
        data["grid"].update(n=[12])
        data["seeds"].update(count=4, chunk=4)
        data["variants"]["times"] = {"start": 0.0, "stop": 3.0, "num": 31}
    elif not request.quick:
        data["seeds"].update(count=128, chunk=32)
        data["variants"]["times"] = {"start": 0.0, "stop": 20.0, "num": 201}
    return data


def study_configs(request: FigureRequest) -> dict[str, Any]:
    """The three studies of the figure (module docstring), sized for the request."""
    from experiments.config import parse_config
    from experiments.studies.variant_flows import EXAMPLE

    trained = tomllib.loads((EXAMPLE.parent / "trained_flows.toml").read_text())
    configs = {}
    for layer in (0, 1):
        data = _resize(json.loads(json.dumps(trained)), request)
        data["field"]["layer"] = layer
        configs[f"layer{layer}"] = parse_config(data)
    random = _resize(tomllib.loads(EXAMPLE.read_text()), request)
    random["grid"].update(d=trained["grid"]["d"])
    if not request.tiny:
        random["grid"].update(n=trained["grid"]["n"])
    random["field"].update(heads=4, gqa_groups=2, block=16, dma_window=16, dma_form="linear")
    random["variants"]["names"] = ["mha", "gqa", "mqa", "mfa", "mfa_kr", "ansan",
                                   "prflash:harmonic:3", "dma"]
    random["variants"]["times"] = trained["variants"]["times"] if not (
        request.tiny or not request.quick) else random["variants"]["times"]
    configs["random"] = parse_config(random)
    return configs


def _prefixed(ds: Any, row: str) -> Any:
    """Every variable and dimension of one study renamed ``<row>_<name>``."""
    names = {name: f"{row}_{name}" for name in (*ds.variables, *ds.dims)}
    out = ds.rename(names)
    out.attrs = {}
    return out


def _row(ds: Any, row: str) -> Any:
    """One study back from the merged Dataset."""
    prefix = f"{row}_"
    keep = [name for name in ds.variables if str(name).startswith(prefix)]
    part = ds[keep]
    part = part.rename({name: str(name)[len(prefix):] for name in (*part.variables, *part.dims)})
    part.attrs = {"config_json": ds.attrs[f"{prefix}config_json"]}
    return part


def compute(request: FigureRequest):
    import xarray as xr

    configs = study_configs(request)
    parts = []
    attrs = {}
    for row, config in configs.items():
        parts.append(_prefixed(run_with_summary(config), row))
        attrs[f"{row}_config_json"] = config.to_json()
    ds = xr.merge(parts, compat="no_conflicts")
    ds.attrs = attrs
    return ds


def _answer(row: Any, config: Any) -> dict[str, Any]:
    names = list(config.params.names)
    reference = names.index(config.field.params.variant)
    median = row["clustering_time_median"].values[0, 0, 0]
    faster = row["faster_than_reference"].values[0, 0, 0]
    final = row["distance_mean"].values[0, 0, 0, :, -1]
    return {"median_clustering_time": dict(zip(names, median, strict=True)),
            "faster_than_reference": dict(zip(names, faster, strict=True)),
            "final_distance": dict(zip(names, final, strict=True)),
            "kv_per_token": dict(zip(names, row["kv_per_token"].values[0, 0], strict=True)),
            "reference": names[reference]}


def _consistency_check(part: Any, config: Any, row: str) -> Check:
    """Two observables, one fact: at a draw's clustering time (all pairs within 1 - delta)
    its tokens form one delta-cluster (cluster_count = 1), for every draw and variant."""
    times = np.asarray(config.params.times)
    ct = part["clustering_time"].values[:, 0, 0, 0]          # (seed, variant)
    counts = part["cluster_count"].values[:, 0, 0, 0]        # (seed, variant, time)
    seeds, variants = ct.shape
    worst, clustered = 0, 0
    for s in range(seeds):
        for v in range(variants):
            if np.isfinite(ct[s, v]):
                clustered += 1
                k = int(np.argmin(np.abs(times - ct[s, v])))
                worst = max(worst, int(counts[s, v, k]))
    names = list(config.params.names)
    note = f"{clustered} clustered flows of {seeds * variants}; clustered by the horizon: " + \
        ", ".join(f"{n} {int(np.isfinite(ct[:, v]).sum())}/{seeds}" for v, n in
                  enumerate(names))
    return Check(f"V2 {row}: clusters at the clustering time (max over draws)", worst if
                 clustered else 1, 1, "<=", note)


@register("V2", "after training, does compressing the KV cache still change how fast tokens "
                "cluster?", compute)
def draw(ds, request: FigureRequest):
    import matplotlib.pyplot as plt

    from experiments.config import config_from_dict
    from experiments.studies.variant_flows import draw as draw_row

    fig, axes = plt.subplots(len(ROWS), 3, figsize=(14, 4.3 * len(ROWS)))
    answers, checks = {}, []
    for r, row in enumerate(ROWS):
        part = _row(ds, row)
        config = config_from_dict(json.loads(part.attrs["config_json"]))
        draw_row(part, config, axes=axes[r], heading=HEADINGS[row])
        answers[row] = _answer(part, config)
        checks.append(_consistency_check(part, config, row))
    fig.suptitle("V2 - trained mixing layers as flows beside the random ensemble "
                 "(n = 32 tokens of the unit sphere, d = 64, causal)", fontsize=11)
    fig.tight_layout()
    data = {"answers": answers}
    return save_figure(fig, request, "trained_flows", data, checks), checks
