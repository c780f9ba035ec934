"""M3 - synchronisation on the circle over beta, negative values included (arXiv 2507.22857).

Claim (Polyanskiy-Rigollet-Yao): SA and USA on the circle synchronise from almost every start
for beta >= -0.16, and not for beta < -2/3. Shown: the fraction of uniform random starts of n
particles (SA) that end in one point by time T, and the fraction stopped at another
stationary state; beside it the witness of the negative side, the inter-cluster eigenvalue
(1/2 + 3 beta/4) e^{-beta/2} of three balanced clusters, negative (stable) exactly for
beta < -2/3 (``dynamics.meanfield.synchronisation``). Random starts find the three-cluster
basin only well below -2/3: between -2/3 and about -1.5 it is small.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from dynamics.meanfield import SyncConfig, cluster_state_spectrum, synchronisation_map
from paper_repro.registry import FigureReport, FigureRequest, register, save_figure

BETAS = (-4.0, -3.0, -2.5, -2.0, -1.5, -1.0, -0.8, -2 / 3, -0.5, -0.3, -0.16, 0.0, 0.5, 1.0, 2.0)


@register("M3", "synchronisation on the circle versus beta (SA, random starts)")
def figure_m3(request: FigureRequest) -> FigureReport:
    sizes = (8,) if request.quick else (8, 16, 32)
    starts = 32 if request.quick else 128
    results = {
        n: synchronisation_map(SyncConfig(betas=BETAS, n=n, starts=starts, seed=request.seed,
                                          horizon=150.0))
        for n in sizes
    }
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    ax = axes[0]
    for n, result in results.items():
        ax.plot(BETAS, result["synchronised"], "o-", label=f"synchronised, n = {n}")
        ax.plot(BETAS, result["stationary_unsynchronised"], "x--",
                label=f"stopped elsewhere, n = {n}")
    for x, text in ((-2 / 3, "-2/3"), (-0.16, "-0.16")):
        ax.axvline(x, color="k", linestyle=":", linewidth=0.8)
        ax.text(x, 1.03, text, ha="center", fontsize=8)
    ax.set_xlabel(r"$\beta$")
    ax.set_ylabel(f"fraction of {starts} random starts")
    ax.set_ylim(-0.05, 1.1)
    ax.legend(fontsize=7)
    ax.set_title("SA on the circle, T = 150")

    ax = axes[1]
    grid = np.linspace(-3, 1, 400)
    inter = np.array([cluster_state_spectrum(b, 3)[1][0] for b in grid])
    intra = np.array([cluster_state_spectrum(b, 3)[0] for b in grid])
    ax.plot(grid, inter, label="between clusters: $(1/2 + 3\\beta/4)e^{-\\beta/2}$")
    ax.plot(grid, intra, label="inside a cluster")
    ax.axhline(0, color="k", linewidth=0.5)
    ax.axvline(-2 / 3, color="k", linestyle=":", linewidth=0.8)
    ax.set_xlabel(r"$\beta$")
    ax.set_ylabel("Jacobian eigenvalue (per particle)")
    ax.set_title("three balanced clusters: stable iff $\\beta < -2/3$")
    ax.legend(fontsize=8)
    fig.suptitle("M3 - synchronisation threshold on the circle", fontsize=10)

    data = {
        "parameters": {"betas": BETAS, "sizes": sizes, "starts": starts, "horizon": 150.0,
                       "normalization": "softmax", "arc_tol": 1e-3},
        "synchronised": {n: r["synchronised"] for n, r in results.items()},
        "stationary_unsynchronised": {n: r["stationary_unsynchronised"]
                                      for n, r in results.items()},
        "three_cluster_eigenvalue": {"beta": grid, "inter": inter, "intra": intra},
    }
    files = save_figure(fig, request, "M3_synchronisation", data)
    plt.close(fig)
    betas = np.asarray(BETAS)
    upper = all(np.all(r["synchronised"][betas >= -0.16] == 1.0) for r in results.values())
    lower = all(np.any(r["synchronised"][betas < -2 / 3] < 1.0) for r in results.values())
    flip = bool(cluster_state_spectrum(-0.67, 3)[1][0] < 0 < cluster_state_spectrum(-0.66, 3)[1][0])
    checks = [
        f"M3: every start synchronises for beta >= -0.16 ({'ok' if upper else 'VIOLATED'})",
        f"M3: some starts do not synchronise for beta < -2/3 ({'ok' if lower else 'VIOLATED'})",
        f"M3: three balanced clusters change stability at beta = -2/3 "
        f"({'ok' if flip else 'VIOLATED'})",
    ]
    return FigureReport("M3", files, checks)
