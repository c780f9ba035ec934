"""F6 - the Hessian kernel g(tau) and its sign change at tau*_beta (paper Fig. 6, App. B).

On the circle the Hessian of the energy E_beta (7.4) has off-diagonal entries
(1/n^2) g(theta_i - theta_j) with

    g(tau) = (cos tau - beta sin^2 tau) e^{beta cos tau}.

g > 0 for |tau| < tau*_beta and g < 0 for tau*_beta < |tau| <= pi, where tau*_beta solves
beta sin^2 tau = cos tau (so tau* sqrt(beta) -> 1). The proof of Thm 5.1 needs all n tokens
of a critical point to fit within (n - 1) tau*_beta < pi/2. The figure draws g for
beta = 2 and 6 on [-pi, pi] with the lines +-tau*_beta; no simulation, no seed.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from dynamics import theory
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure

BETAS = (2.0, 6.0)
COLORS = ("magenta", "c")
ROOT_TOLERANCE = 1e-12  # |beta sin^2 tau* - cos tau*|


def compute(request: FigureRequest):
    tau = np.linspace(-math.pi, math.pi, 2001)
    return dataset({
        "g": (("beta", "tau"), [theory.hessian_kernel(tau, b, d=2) for b in BETAS],
              {"long_name": "Hessian kernel g(tau)"}),
        "tau_star": (("beta",), [float(theory.tau_star(b, d=2)) for b in BETAS],
                     {"long_name": "sign change tau*_beta", "units": "rad"}),
    }, {"beta": list(BETAS), "tau": ("tau", tau, {"units": "rad"})}, betas=BETAS, d=2)


@register("F6", "the Hessian kernel g(tau) for beta = 2, 6 with +-tau*_beta", compute)
def draw(ds, request: FigureRequest):
    tau = ds["tau"].values
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.axhline(0.0, color="0.6", linewidth=0.6)
    curves, stars, checks = {}, {}, []
    for k, (beta, color) in enumerate(zip(BETAS, COLORS, strict=True)):
        g, star = ds["g"].values[k], float(ds["tau_star"].values[k])
        ax.plot(tau, g, color=color, linewidth=1.5, label=f"$\\beta={beta:g}$")
        for sign in (-1, 1):
            ax.axvline(sign * star, color=color, linestyle="--", linewidth=0.8)
        curves[f"beta={beta:g}"], stars[f"beta={beta:g}"] = g, star
        wrong = np.sum(g[np.abs(tau) < star] <= 0) + np.sum(g[np.abs(tau) > star] >= 0)
        at_star = float(theory.hessian_kernel(star, beta, d=2))
        checks += [
            Check(f"F6 beta={beta:g}: grid points where g has the wrong sign", int(wrong), 0,
                  "==", "g > 0 inside (-tau*, tau*), < 0 outside"),
            Check(f"F6 beta={beta:g}: |beta sin^2 tau* - cos tau*|",
                  abs(beta * math.sin(star) ** 2 - math.cos(star)), ROOT_TOLERANCE, "<=",
                  f"tau* = {star:.6f}, g(tau*) = {at_star:.1e}, "
                  f"tau* sqrt(beta) = {star * math.sqrt(beta):.4f}"),
        ]
    ax.set_xlim(-math.pi, math.pi)
    ax.set_ylim(-3, 7)
    ax.set_xlabel(r"$\tau$")
    ax.set_ylabel(r"$g(\tau) = (\cos\tau - \beta\sin^2\tau)\,e^{\beta\cos\tau}$")
    ax.legend(frameon=False)
    ax.set_title(r"F6 - $g$ changes sign at $\pm\tau^*_\beta$ ($\beta\sin^2\tau = \cos\tau$)",
                 fontsize=10)
    data = {"parameters": parameters(ds), "tau": tau, "g": curves, "tau_star": stars}
    return save_figure(fig, request, "F6_hessian_kernel", data, checks), checks
