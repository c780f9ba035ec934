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
from paper_repro.registry import FigureReport, FigureRequest, register, save_figure

BETAS = (2.0, 6.0)
COLORS = ("magenta", "c")


@register("F6", "the Hessian kernel g(tau) for beta = 2, 6 with +-tau*_beta")
def figure_f6(request: FigureRequest) -> FigureReport:
    tau = np.linspace(-math.pi, math.pi, 2001)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.axhline(0.0, color="0.6", linewidth=0.6)
    curves, stars, checks = {}, {}, []
    for beta, color in zip(BETAS, COLORS, strict=True):
        g = np.asarray(theory.hessian_kernel(tau, beta, d=2))
        star = float(theory.tau_star(beta, d=2))
        ax.plot(tau, g, color=color, linewidth=1.5, label=f"$\\beta={beta:g}$")
        for sign in (-1, 1):
            ax.axvline(sign * star, color=color, linestyle="--", linewidth=0.8)
        curves[f"beta={beta:g}"] = g
        stars[f"beta={beta:g}"] = star
        inside, outside = g[np.abs(tau) < star], g[np.abs(tau) > star]
        at_star = float(theory.hessian_kernel(star, beta, d=2))
        signs_ok = bool(np.all(inside > 0) and np.all(outside < 0))
        checks.append(
            f"F6: beta = {beta:g}: tau* = {star:.6f} (beta sin^2 tau* - cos tau* = "
            f"{beta * math.sin(star) ** 2 - math.cos(star):.1e}), g(tau*) = {at_star:.1e}, "
            f"tau* sqrt(beta) = {star * math.sqrt(beta):.4f}; g > 0 inside and < 0 outside: "
            f"{'ok' if signs_ok else 'VIOLATED'}"
        )
    ax.set_xlim(-math.pi, math.pi)
    ax.set_ylim(-3, 7)
    ax.set_xlabel(r"$\tau$")
    ax.set_ylabel(r"$g(\tau) = (\cos\tau - \beta\sin^2\tau)\,e^{\beta\cos\tau}$")
    ax.legend(frameon=False)
    ax.set_title(r"F6 - $g$ changes sign at $\pm\tau^*_\beta$ ($\beta\sin^2\tau = \cos\tau$)",
                 fontsize=10)
    data = {"parameters": {"betas": BETAS, "d": 2}, "tau": tau, "g": curves, "tau_star": stars}
    files = save_figure(fig, request, "F6_hessian_kernel", data)
    plt.close(fig)
    return FigureReport("F6", files, checks)
