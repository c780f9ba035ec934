"""M2 - linear instability of the uniform density on the circle (paper.md §6.5, §11 item 20).

The uniform density is stationary; mode k of a perturbation grows at
sigma_k = k^2 I_k(beta) / (beta I_0(beta)) (SA), fastest at k* ~ sqrt(2 beta). Shown: sigma_k
from theory, measured from the spectral PDE (tiny perturbation), and measured from n uniform
random particles (SA angle ODE, Euler h = 0.01; n = 3000 in the full run as in §11 item 20)
in their linear window; and the particles' mode amplitudes against e^{sigma_k t}. For
beta < 0 the odd modes grow and the even ones decay (sigma_k(-beta) = (-1)^{k+1} sigma_k(beta)).
Slow modes near 2 k* are soon slaved to the square of the dominant mode (rate 2 sigma_{k*}),
so only the fast modes are compared with the linear rates.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from dynamics.meanfield import particle_growth, pde_growth
from dynamics.theory.circle import growth_rates
from paper_repro.registry import FigureReport, FigureRequest, register, save_figure

BETA, NEGATIVE_BETA, KMAX = 9.0, -4.0, 12


@register("M2", "growth rates of Fourier modes of the uniform density (SA, beta = 9 and -4)")
def figure_m2(request: FigureRequest) -> FigureReport:
    n, batch = request.pick((1000, 2), (3000, 4), tiny=(600, 3))
    pde = pde_growth(BETA, "softmax", kmax=KMAX)
    pde_negative = pde_growth(NEGATIVE_BETA, "softmax", kmax=KMAX)
    particles = particle_growth(BETA, "softmax", n=n, kmax=KMAX, horizon=5.0, batch=batch,
                                seed=request.seed, ceiling=0.15)
    ks = pde.modes

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    ax = axes[0]
    ax.plot(ks, pde.predicted, "k-", label=r"theory $k^2 I_k(\beta)/(\beta I_0(\beta))$")
    ax.plot(ks, pde.measured, "s", mfc="none", color="#3658bf", label="PDE (measured)")
    ax.plot(ks, particles.measured, "o", color="#c0392b",
            label=f"particles n = {n} x {batch} (measured)")
    ax.plot(ks, pde_negative.predicted, "-", color="0.6", label=f"theory, beta = {NEGATIVE_BETA:g}")
    ax.plot(ks, pde_negative.measured, "^", mfc="none", color="0.4",
            label=f"PDE, beta = {NEGATIVE_BETA:g}")
    ax.axvline(pde.dominant_predicted, color="k", linestyle=":", linewidth=0.8)
    ax.axhline(0, color="k", linewidth=0.5)
    ax.set_xlabel("mode k")
    ax.set_ylabel(r"growth rate $\sigma_k$")
    ax.set_title(f"SA, beta = {BETA:g}: k* = {pde.dominant_predicted}, "
                 f"sqrt(2 beta) = {np.sqrt(2 * BETA):.2f}")
    ax.legend(fontsize=7)

    ax = axes[1]
    times = particles.times
    for k, color in zip((2, pde.dominant_predicted, 8), ("#27ae60", "#c0392b", "#8e44ad"),
                        strict=True):
        amp = particles.amplitudes[:, k - 1]
        ax.semilogy(times, amp, color=color, label=f"k = {k}")
        ax.semilogy(times, amp[0] * np.exp(growth_rates(BETA, k) * times), "--", color=color,
                    linewidth=0.8)
    ax.axvspan(*particles.window, color="0.9")
    ax.set_xlabel("t")
    ax.set_ylabel(r"$|\frac{1}{n}\sum_j e^{-ik\theta_j}|$ (batch geometric mean)")
    ax.set_title("particles: amplitudes vs $e^{\\sigma_k t}$ (shaded: fit window)")
    ax.legend(fontsize=8)
    fig.suptitle("M2 - linear instability of the uniform density", fontsize=10)

    late = (times >= 2.0) & (times <= 5.0)
    dominant_late = ks[np.argmax(particles.amplitudes[late], axis=1)]
    fast = pde.predicted >= 0.8 * pde.predicted.max()
    particle_error = float(np.max(np.abs(particles.measured - pde.predicted)[fast]))
    pde_error = float(np.max(np.abs(pde.measured - pde.predicted)))
    data = {
        "parameters": {"beta": BETA, "negative_beta": NEGATIVE_BETA, "n": n, "batch": batch,
                       "dt": 0.01, "method": "euler", "kmax": KMAX},
        "modes": ks,
        "theory": pde.predicted,
        "pde_measured": pde.measured,
        "particles_measured": particles.measured,
        "theory_negative_beta": pde_negative.predicted,
        "pde_measured_negative_beta": pde_negative.measured,
        "dominant_predicted": pde.dominant_predicted,
        "dominant_particles_rate": particles.dominant_rate,
        "dominant_particles_t2_to_5": dominant_late,
        "fit_window": particles.window,
        "times": times,
        "amplitudes": particles.amplitudes,
    }
    files = save_figure(fig, request, "M2_mode_growth", data)
    plt.close(fig)
    within = bool(np.all(np.abs(dominant_late - pde.dominant_predicted) <= 1))
    checks = [
        f"M2: PDE rates match sigma_k to {pde_error:.1e} "
        f"({'ok' if pde_error < 1e-4 else 'VIOLATED'})",
        f"M2: particle rates of the fastest modes within {particle_error:.3f} of sigma_k "
        f"({'ok' if particle_error < 0.15 else 'VIOLATED'})",
        f"M2: dominant particle mode over t in [2, 5]: {sorted(set(dominant_late.tolist()))}, "
        f"k* = {pde.dominant_predicted} ({'ok' if within else 'VIOLATED'}, within +-1)",
    ]
    return FigureReport("M2", files, checks)
