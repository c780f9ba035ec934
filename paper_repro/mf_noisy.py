"""M4 - the kappa = 2 bifurcation of the noisy Kuramoto model (beta = 0; paper §2.9, Survey §7).

d theta_i = (1/n) sum_j sin(theta_j - theta_i) dt + sqrt(2/kappa) dW_i. Its mean field is the
Fokker-Planck equation d_t rho + d_theta(v rho) = (1/kappa) d_theta^2 rho (diffusion with a
plus sign on the right; paper.md §9 item 8), whose stationary states are von Mises with
concentration kappa r, r solving r = I_1(kappa r) / I_0(kappa r): r = 0 for kappa <= 2 and a
supercritical branch above. Shown: that branch, the stationary r of the spectral
Fokker-Planck solver, and the time-averaged r of n noisy particles (Euler-Maruyama), whose
finite-n floor ~ n^{-1/2} is largest near kappa = 2.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from dynamics.meanfield import (
    critical_kappa,
    kuramoto_order,
    particle_order_parameter,
    pde_order_parameter,
)
from paper_repro.registry import FigureReport, FigureRequest, register, save_figure


@register("M4", "noisy Kuramoto (beta = 0): order parameter r(kappa), bifurcation at kappa = 2")
def figure_m4(request: FigureRequest) -> FigureReport:
    kappas = np.array(request.pick([1.0, 1.5, 3.0, 4.0, 6.0],
                                   [0.5, 1.0, 1.5, 1.8, 2.2, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0],
                                   tiny=[1.0, 3.0, 4.0]))
    # from uniform angles the order parameter needs ~ log(n) / (1/2 - 1/kappa) to grow
    n, horizon = request.pick((800, 60.0), (3000, 300.0), tiny=(500, 40.0))
    branch_kappa = np.linspace(0.5, kappas.max(), 300)
    branch = np.array([kuramoto_order(float(k)) for k in branch_kappa])
    # the PDE relaxes at rate ~ |1/2 - 1/kappa| (the linear rate of mode 1), slowly near 2
    pde_horizons = np.maximum(80.0, 15.0 / np.abs(0.5 - 1.0 / kappas))
    pde = np.array([pde_order_parameter(float(k), horizon=float(T), modes=16)
                    for k, T in zip(kappas, pde_horizons, strict=True)])
    particles = np.array([
        particle_order_parameter(float(k), n=n, horizon=horizon, burn_in=horizon / 2,
                                 seed=request.seed)
        for k in kappas
    ])

    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.plot(branch_kappa, branch, "k-", label=r"$r = I_1(\kappa r)/I_0(\kappa r)$")
    ax.plot(kappas, pde, "s", mfc="none", color="#3658bf", markersize=8,
            label="Fokker-Planck (spectral)")
    ax.plot(kappas, particles, "o", color="#c0392b", label=f"particles, n = {n}")
    ax.axvline(critical_kappa(0.0), color="k", linestyle=":", linewidth=0.8)
    ax.set_xlabel(r"$\kappa$ (noise $\sqrt{2/\kappa}$)")
    ax.set_ylabel("stationary order parameter r")
    ax.set_title(r"noisy Kuramoto, $\beta = 0$: pitchfork at $\kappa = 2$")
    ax.legend(fontsize=8)

    exact = np.array([kuramoto_order(float(k)) for k in kappas])
    data = {
        "parameters": {"beta": 0.0, "n": n, "horizon": horizon, "dt": 0.01,
                       "method": "euler-maruyama", "pde_modes": 16},
        "pde_horizon": pde_horizons,
        "kappa": kappas,
        "self_consistent": exact,
        "pde": pde,
        "particles": particles,
    }
    files = save_figure(fig, request, "M4_noisy_bifurcation", data)
    plt.close(fig)
    pde_error = float(np.max(np.abs(pde - exact)))
    above = kappas > 2.2
    particle_error = float(np.max(np.abs(particles - exact)[above]))
    floor = float(particles[kappas < 2].max())
    checks = [
        f"M4: Fokker-Planck r(kappa) matches the self-consistency equation to {pde_error:.1e} "
        f"({'ok' if pde_error < 1e-4 else 'VIOLATED'})",
        f"M4: particles within {particle_error:.3f} of r(kappa) for kappa > 2.2 "
        f"({'ok' if particle_error < 0.05 else 'VIOLATED'})",
        f"M4: below kappa = 2 the particles' r is the finite-n floor {floor:.3f} "
        f"({'ok' if floor < 4 / np.sqrt(n) else 'VIOLATED'}; < 4/sqrt(n))",
    ]
    return FigureReport("M4", files, checks)
