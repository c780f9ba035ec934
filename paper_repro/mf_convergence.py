"""M1 - particles converge to the mean-field PDE on the circle (paper §2.5, Remark 3.3).

SA at beta = 1 from rho_0 = (1 + 0.6 cos theta + 0.3 cos(2 theta + 1)) / (2 pi): the spectral
solution of the continuity equation against n i.i.d. particles. Claims shown: the particle
histograms follow the PDE density; W1(mu_n(t), rho(t)) decays like n^{-1/2} at every t; it
stays below Dobrushin's bound e^{L t} W1(mu_n(0), rho_0) (L derived in
``dynamics.meanfield.dobrushin``), which is loose; and particles started at the quantiles of
rho_0 follow the PDE's characteristics, so n W1(mu_n(t), rho(t)) stays at pi/2, the value for
the quantiles of any smooth positive density, at every t.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from dynamics import CircleSA, simulate
from dynamics.meanfield import CircleDensity, mean_field_gap
from dynamics.meanfield.density import grid
from paper_repro.registry import FigureReport, FigureRequest, register, save_figure

BETA, NORMALIZATION = 1.0, "softmax"
COLORS = ("#3658bf", "#c0392b", "#27ae60", "#8e44ad")


def start_density() -> CircleDensity:
    return CircleDensity.from_function(
        lambda t: (1 + 0.6 * np.cos(t) + 0.3 * np.cos(2 * t + 1)) / (2 * np.pi), 32
    )


@register("M1", "mean field on the circle: particles -> PDE in W1, with Dobrushin's bound")
def figure_m1(request: FigureRequest) -> FigureReport:
    ns = request.pick((100, 300, 900), (100, 400, 1600, 3200), tiny=(50, 800))
    seeds = request.pick(8, 16, tiny=6)
    times = np.linspace(0.0, 3.0, request.pick(7, 7, tiny=4))
    rho0 = start_density()
    gap = mean_field_gap(rho0, BETA, NORMALIZATION, ns=ns, times=times, seeds=seeds,
                         seed=request.seed)
    sol = gap.solution
    quantile = mean_field_gap(rho0, BETA, NORMALIZATION, ns=ns, times=times, seeds=1,
                              quantiles=True, particle_rtol=1e-10)
    n_w1 = np.asarray(ns)[:, None] * quantile.w1[:, 0]  # (ns, times): -> pi/2

    fig, axes = plt.subplots(1, 4, figsize=(18, 4), layout="constrained")
    theta = grid(512) - np.pi  # plotted on [-pi, pi)
    shift = 256  # grid(512) starts at 0: roll by half a turn
    snapshot = (0, times.size // 2, times.size - 1)
    particles = rho0.sample(request.seed + 1, 1, ns[-1])
    states = np.asarray(simulate(CircleSA(BETA), particles, times[list(snapshot)],
                                 method="dopri5", rtol=1e-8).states[0])
    for color, index, state in zip(COLORS, snapshot, states, strict=False):
        axes[0].plot(theta, np.roll(sol.density(index).values(512), shift), color=color,
                     label=f"PDE, t = {times[index]:g}")
        axes[0].hist(np.mod(state + np.pi, 2 * np.pi) - np.pi, bins=60, range=(-np.pi, np.pi),
                     density=True, color=color, alpha=0.25)
    axes[0].set_xlabel(r"$\theta$")
    axes[0].set_ylabel(r"$\rho(t, \theta)$")
    axes[0].set_title(f"SA, $\\beta = {BETA:g}$: PDE vs n = {ns[-1]} particles")
    axes[0].legend(fontsize=8)

    mean = gap.w1.mean(axis=1)
    for color, n, w, bound in zip(COLORS, ns, mean, gap.bound.mean(axis=1), strict=False):
        axes[1].semilogy(times, w, "o-", color=color, label=f"n = {n}")
        axes[1].semilogy(times, bound, "--", color=color, linewidth=0.8)
    axes[1].set_ylim(mean.min() / 3, mean.max() * 30)
    axes[1].set_xlabel("t")
    axes[1].set_ylabel(r"$W_1(\mu_n(t), \rho(t))$")
    axes[1].set_title(f"dashed: $e^{{Lt}} W_1(0)$, L = {gap.rate:.2f}")
    axes[1].legend(fontsize=8)

    for index, color in ((0, COLORS[0]), (-1, COLORS[1])):
        axes[2].loglog(ns, mean[:, index], "o-", color=color,
                       label=f"t = {times[index]:g}, slope {gap.slope(index):.2f}")
    axes[2].loglog(ns, mean[0, 0] * (np.asarray(ns) / ns[0]) ** -0.5, "k:", label=r"$n^{-1/2}$")
    axes[2].set_xlabel("n")
    axes[2].set_ylabel(r"mean $W_1$")
    axes[2].legend(fontsize=8)

    for color, n, row in zip(COLORS, ns, n_w1, strict=False):
        axes[3].plot(times, row - np.pi / 2, "o-", color=color, label=f"n = {n}")
    axes[3].axhline(0, color="k", linewidth=0.5)
    axes[3].set_xlabel("t")
    axes[3].set_ylabel(r"$n\,W_1(\mu_n(t), \rho(t)) - \pi/2$")
    axes[3].set_title("particles at the quantiles of $\\rho_0$ stay at those of $\\rho(t)$",
                      fontsize=9)
    axes[3].legend(fontsize=8)
    fig.suptitle("M1 - particles converge to the mean-field PDE", fontsize=10)

    slopes = [gap.slope(i) for i in range(times.size)]
    below = bool(np.all(gap.w1 <= gap.bound + 1e-12))
    data = {
        "parameters": {"beta": BETA, "normalization": NORMALIZATION, "ns": ns, "seeds": seeds,
                       "modes": sol.modes, "start": "(1 + 0.6 cos t + 0.3 cos(2t + 1))/(2 pi)"},
        "times": times,
        "w1_mean": mean,
        "w1": gap.w1,
        "dobrushin_rate": gap.rate,
        "slopes": slopes,
        "quantile_n_w1": n_w1,
        "mass": sol.mass,
        "min_density": sol.min_density,
    }
    files = save_figure(fig, request, "M1_mean_field_convergence", data)
    plt.close(fig)
    root_n = all(-0.75 < s < -0.25 for s in slopes)
    sharp = float(np.max(np.abs(n_w1[-1] - np.pi / 2)))
    checks = [
        f"M1: W1 ~ n^a with a in [{min(slopes):.2f}, {max(slopes):.2f}] over t (theory -1/2: "
        f"{'ok' if root_n else 'VIOLATED'})",
        f"M1: W1 below Dobrushin's bound e^(Lt) W1(0), L = {gap.rate:.3f} "
        f"({'ok' if below else 'VIOLATED'})",
        f"M1: quantile starts, n = {ns[-1]}: |n W1 - pi/2| <= {sharp:.1e} at every t "
        f"({'ok' if sharp < 1e-3 else 'VIOLATED'})",
        f"M1: PDE mass error {np.abs(sol.mass - 1).max():.1e}, min density "
        f"{sol.min_density.min():.3g} ({'ok' if sol.min_density.min() > 0 else 'VIOLATED'})",
    ]
    return FigureReport("M1", files, checks)
