"""M3 - synchronisation on the circle over beta, negative values included (arXiv 2507.22857).

Claim (Polyanskiy-Rigollet-Yao): SA and USA on the circle synchronise from almost every start
for beta >= -0.16, and not for beta < -2/3. The numbers come from the ``synchronisation``
study of the experiments layer (``experiments/configs/synchronisation.toml``; the full
figure runs that config as it is, the quick and tiny ones a smaller grid), stored next to
the figure and resumed when it is there. Shown: the fraction of uniform random starts of n
particles (SA) proven to end in one point (diameter < pi/2 at time T, the cone collapse of
Lemma 6.4), with its Clopper-Pearson interval, and the fraction stopped at another
stationary state; beside it the witness of the negative side,
the inter-cluster eigenvalue (1/2 + 3 beta/4) e^{-beta/2} of three balanced clusters,
negative (stable) exactly for beta < -2/3 (``dynamics.meanfield.synchronisation``). Random
starts find the non-synchronised basins only well below -2/3: between -2/3 and about -1 they
are small.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from dynamics.meanfield import cluster_state_spectrum
from dynamics.meanfield.synchronisation import FAILING_BETA, SYNCHRONISING_BETA
from paper_repro.registry import Check, FigureRequest, register, save_figure

CONFIG = Path(__file__).resolve().parent.parent / "experiments" / "configs" / "synchronisation.toml"
TINY_BETAS = (-3.0, -1.0, -0.16, 0.0, 1.0)


def study_config(request: FigureRequest):
    """The study's config for this request: the TOML file (full), fewer n and seeds (quick),
    or a five-beta grid (tiny). The request's seed is added to the file's root seed."""
    from experiments.config import load_config

    config = load_config(CONFIG, expect="synchronisation")
    config = replace(config, seed=config.seed + request.seed)
    if request.size == "quick":
        config = replace(config, grid=replace(config.grid, n=(8, 16)),
                         seeds=replace(config.seeds, count=32, chunk=32))
    elif request.size == "tiny":
        config = replace(config, grid=replace(config.grid, n=(8,), beta=TINY_BETAS),
                         seeds=replace(config.seeds, count=16, chunk=16),
                         params=replace(config.params, horizon=100.0))
    return config


def compute(request: FigureRequest):
    """The study's Dataset (run, or resumed from its store next to the figure) with the
    three-cluster spectrum against beta."""
    from experiments.runner import run_study
    from experiments.store import open_dataset

    config = study_config(request)
    store = request.out / f"M3_synchronisation_{request.size}_seed{config.seed}.zarr"
    run_study(config, store, quiet=True, log=lambda line: None,
              command=f"python -m paper_repro M3 ({request.size})")
    grid = np.linspace(-3, 1, 400)
    spectra = [cluster_state_spectrum(float(b), 3) for b in grid]
    ds = open_dataset(store).load().assign(
        inter=("spectrum_beta", [s[1][0] for s in spectra], {"long_name": "between clusters"}),
        intra=("spectrum_beta", [s[0] for s in spectra], {"long_name": "inside a cluster"}))
    return ds.assign_coords(spectrum_beta=grid).assign_attrs(store=store.name)


@register("M3", "synchronisation on the circle versus beta (SA, random starts; a study)", compute)
def draw(ds, request: FigureRequest):
    from experiments.config import config_from_dict
    from experiments.studies.synchronisation import draw_fractions

    config = config_from_dict(json.loads(ds.attrs["config_json"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    draw_fractions(axes[0], ds, config)
    for x, text in ((FAILING_BETA, "-2/3"), (SYNCHRONISING_BETA, "-0.16")):
        axes[0].axvline(x, color="k", linestyle=":", linewidth=0.8)
        axes[0].text(x, 0.5, f"β = {text} ", ha="right", va="center", rotation=90, fontsize=8)
    axes[0].set_title(f"SA on the circle, T = {config.params.horizon:g}", fontsize=9)

    ax = axes[1]
    grid, inter, intra = ds["spectrum_beta"].values, ds["inter"].values, ds["intra"].values
    ax.plot(grid, inter, label="between clusters: $(1/2 + 3\\beta/4)e^{-\\beta/2}$")
    ax.plot(grid, intra, label="inside a cluster")
    ax.axhline(0, color="k", linewidth=0.5)
    ax.axvline(FAILING_BETA, color="k", linestyle=":", linewidth=0.8)
    ax.set_xlabel(r"$\beta$")
    ax.set_ylabel("Jacobian eigenvalue (per particle)")
    ax.set_title("three balanced clusters: stable iff $\\beta < -2/3$")
    ax.legend(fontsize=8)
    fig.suptitle("M3 - synchronisation threshold on the circle", fontsize=10)

    betas = np.asarray(config.grid.beta, dtype=float)
    sizes = tuple(config.grid.n)
    fractions = {name: {n: ds[f"{name}_fraction"].values[i, 0] for i, n in enumerate(sizes)}
                 for name in ("synchronising", "synchronised", "converging", "stopped",
                              "undecided")}
    data = {
        "parameters": {"betas": betas, "sizes": sizes, "starts": config.seeds.count,
                       "horizon": config.params.horizon, "field": config.field.kind,
                       "tolerance": config.params.tolerance, "store": ds.attrs["store"],
                       "config_toml": config.to_toml()},
        **fractions,
        "synchronising_interval": {n: [ds["synchronising_low"].values[i, 0],
                                       ds["synchronising_high"].values[i, 0]]
                                   for i, n in enumerate(sizes)},
        "three_cluster_eigenvalue": {"beta": grid, "inter": inter, "intra": intra},
    }
    sync = np.stack([fractions["synchronising"][n] for n in sizes])
    flip = bool(cluster_state_spectrum(-0.67, 3)[1][0] < 0 < cluster_state_spectrum(-0.66, 3)[1][0])
    checks = [
        Check("M3: smallest synchronising fraction for beta >= -0.16",
              float(sync[:, betas >= SYNCHRONISING_BETA].min()), 1.0, "=="),
        Check("M3: per n, smallest synchronising fraction for beta < -2/3 (max over n)",
              float(sync[:, betas < FAILING_BETA].min(axis=1).max()), 1.0, "<",
              "some starts do not synchronise"),
        Check("M3: three balanced clusters change stability at beta = -2/3", flip, True, "=="),
        Check("M3: largest undecided fraction at T (neither synchronising nor stopped)",
              max(float(np.max(f)) for f in fractions["undecided"].values()), 0.0, "<="),
    ]
    return save_figure(fig, request, "M3_synchronisation", data, checks), checks
