"""V1 - does compressing the KV cache change how fast tokens cluster?

Runs the ``variant-flows`` study (``experiments.studies.variant_flows``) on its example
config, ``experiments/configs/variant_flows.toml`` (quick: as it is, the README figure;
full: 64 tokens of S^31, 8 heads, 128 draws; tiny: the test size), into a temporary store,
and draws the study's figure from it: the same tokens flowed under ten causal variants
with coupled weights of the tied Gaussian ensemble. Panel (a): median number of
delta-clusters over time; (b) clustering time against the KV cache a decoder keeps per
token; (c) distance of each flow to full attention (MHA, same weights and tokens).
"""

from __future__ import annotations

import json
import tempfile
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from paper_repro.registry import Check, FigureRequest, register, save_figure


def study_config(request: FigureRequest) -> Any:
    """The example config, resized for the request (its seed shifted by request.seed)."""
    from experiments.config import parse_config
    from experiments.studies.variant_flows import EXAMPLE

    data = tomllib.loads(EXAMPLE.read_text())
    data["seed"] += request.seed
    if request.tiny:
        data["grid"].update(n=[12], d=[8])
        data["field"].update(heads=2, anchor_every=4, block=2, dma_window=4)
        data["seeds"].update(count=4, chunk=4)
        data["variants"]["times"] = {"start": 0.0, "stop": 4.0, "num": 41}
    elif not request.quick:
        data["grid"].update(n=[64], d=[32])
        data["field"].update(heads=8, anchor_every=16, block=8, dma_window=16)
        data["seeds"].update(count=128, chunk=16)
        data["variants"]["times"] = {"start": 0.0, "stop": 20.0, "num": 201}
    return parse_config(data)


def _same_limit_check(ds: Any, config: Any) -> Check:
    """Masks that keep the diagonal (AnSAN, PrFlash, DMA) leave token 0 alone with itself,
    so it moves as under the reference; once both flows are delta-clustered every token is
    within arccos(1 - delta) of that same x_0 in both, so the mean angle between the flows
    is at most 2 arccos(1 - delta)."""
    names = list(config.params.names)
    reference = names.index(config.field.params.variant)
    ct = ds["clustering_time"].values[:, 0, 0, 0]
    end = ds["distance"].values[:, 0, 0, 0, :, -1]
    worst, pairs = 0.0, 0
    for v, name in enumerate(names):
        if name.split(":")[0] not in ("ansan", "dma", "prflash"):
            continue
        both = np.isfinite(ct[:, v]) & np.isfinite(ct[:, reference])
        pairs += int(both.sum())
        worst = max(worst, float(end[both, v].max(initial=0.0)))
    return Check("V1: masks keeping the diagonal: max final angle to the reference's flow",
                 worst, float(2 * np.arccos(1 - config.params.delta)), "<=",
                 f"bound 2 arccos(1 - delta), over {pairs} clustered pairs of flows")


def run_with_summary(config: Any) -> Any:
    """A study run into a temporary store, loaded, with its summary merged in."""
    from experiments.registry import STUDY_KINDS
    from experiments.runner import run_study
    from experiments.store import open_dataset

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "study.zarr"
        run_study(config, store, quiet=True, log=lambda line: None)
        ds = open_dataset(store).load()
    summary = STUDY_KINDS[config.study].summarize(ds, config)
    return ds.drop_vars([v for v in summary.data_vars if v in ds]).merge(summary)


def compute(request: FigureRequest):
    """The study, run into a temporary store, with its summary merged in."""
    return run_with_summary(study_config(request))


@register("V1", "does compressing the KV cache change how fast tokens cluster?", compute)
def draw(ds, request: FigureRequest):
    from experiments.config import config_from_dict
    from experiments.studies.variant_flows import draw

    config = config_from_dict(json.loads(ds.attrs["config_json"]))
    fig = draw(ds, config)
    names = list(config.params.names)
    reference = config.field.params.variant
    at = (0, 0, 0)
    median = ds["clustering_time_median"].values[at]
    faster = ds["faster_than_reference"].values[at]
    data = {
        "parameters": config.to_dict(),
        "variants": names,
        "kv_elements": ds["kv_elements"].values[0, 0],
        "kv_per_token": ds["kv_per_token"].values[0, 0],
        "clustering_time": ds["clustering_time"].values[:, 0, 0, 0],
        "median_clustering_time": dict(zip(names, median, strict=True)),
        "faster_than_reference": dict(zip(names, faster, strict=True)),
        "final_distance": dict(zip(names, ds["distance_mean"].values[at][:, -1], strict=True)),
        "final_distance_per_draw": ds["distance"].values[:, 0, 0, 0, :, -1],
    }
    seeds = config.seeds.count
    check = _same_limit_check(ds, config)
    checks = [replace(check, note=f"{check.note}; median clustering time " + ", ".join(
        f"{n} {t:.2f}" for n, t in zip(names, median, strict=True)) + "; draws clustering "
        f"before {reference}: " + ", ".join(f"{n} {round(f * seeds)}/{seeds}" for n, f in
                                            zip(names, faster, strict=True) if n != reference))]
    return save_figure(fig, request, "variant_flows", data, checks), checks
