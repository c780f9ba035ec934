"""M1 - particles converge to the mean-field PDE on the circle (arXiv 2312.10794, §3.1, Remark 3.3).

SA at beta = 1 from rho_0 = (1 + 0.6 cos theta + 0.3 cos(2 theta + 1)) / (2 pi): the spectral
solution of the continuity equation against n i.i.d. particles. Claims shown: the particle
histograms follow the PDE density; W1(mu_n(t), rho(t)) decays like n^{-1/2} at every t; it
stays below Dobrushin's bound e^{L t} W1(mu_n(0), rho_0) (L derived in
``dynamics.meanfield.dobrushin``), which is loose; and particles started at the quantiles of
rho_0 follow the PDE's characteristics, so n W1(mu_n(t), rho(t)) stays at pi/2, the value for
the quantiles of any smooth positive density, at every t.

``mean_field_gap`` is the comparison (particles with ``dynamics.simulate``, CircleSA / CircleUSA
and adaptive DOPRI5; the density with the spectral solver; W1 on the circle): for i.i.d.
starts E W1(mu_n(0), rho_0) ~ c n^{-1/2}, and the gap at a fixed t decays at the same rate,
which is what propagation of chaos predicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from dynamics import CircleSA, simulate
from dynamics.fields.circle import CircleAttention
from dynamics.meanfield import (
    CircleDensity,
    CircleSolution,
    dobrushin_rate,
    solve_circle,
    w1_circle,
)
from dynamics.meanfield.density import grid
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure

BETA, NORMALIZATION = 1.0, "softmax"
COLORS = ("#3658bf", "#c0392b", "#27ae60", "#8e44ad")
SLOPE_TOLERANCE = 0.25  # |log-log slope of W1 in n + 1/2|
QUANTILE_TOLERANCE = 1e-3  # |n W1 - pi/2| for quantile starts


@dataclass(frozen=True)
class MeanFieldGap:
    """times (T,); ns (N,); w1 (N, seeds, T) = W1(mu_n(t), rho(t)); bound (N, seeds, T) =
    e^{L t} W1(mu_n(0), rho_0); rate L; the PDE solution."""

    times: np.ndarray
    ns: np.ndarray
    w1: np.ndarray
    bound: np.ndarray
    rate: float
    solution: CircleSolution

    def slope(self, index: int = -1) -> float:
        """Log-log slope of the seed-mean W1 against n at times[index] (~ -1/2 for i.i.d.)."""
        return log_slope(self.ns, self.w1[:, :, index].mean(axis=1))


def log_slope(ns: Any, values: Any) -> float:
    return float(np.polyfit(np.log(ns), np.log(values), 1)[0])


def mean_field_gap(rho0: CircleDensity, beta: float, normalization: str = "softmax", *,
                   ns: Any = (100, 400, 1600), times: Any = (0.0, 1.0, 2.0), seeds: int = 4,
                   seed: Any = 0, quantiles: bool = False, modes: int | None = None,
                   rtol: float = 1e-8, particle_rtol: float = 1e-6) -> MeanFieldGap:
    """W1 between particles and PDE for each n in ``ns`` and each time (module docstring).

    rtol is the spectral solver's tolerance, particle_rtol the particles' (DOPRI5); both
    errors are far below the W1 being measured (~ n^{-1/2}).
    """
    t, sizes = np.asarray(times, dtype=float), np.asarray(ns)
    solution = solve_circle(rho0, t, beta, normalization, modes=modes, rtol=rtol,
                            atol=rtol * 1e-3)
    densities = [solution.density(i) for i in range(t.size)]
    field = CircleAttention(beta=float(beta), normalization=normalization)
    gen = np.random.default_rng(seed)
    w1 = np.zeros((sizes.size, seeds, t.size))
    for i, n in enumerate(sizes):
        x0 = rho0.sample(gen, seeds, int(n), quantiles=quantiles)
        states = np.asarray(simulate(field, x0, t, method="dopri5", rtol=particle_rtol,
                                     atol=particle_rtol * 1e-2).states)
        for j, density in enumerate(densities):
            w1[i, :, j] = w1_circle(states[:, j], density)
    rate = dobrushin_rate(beta, normalization)
    bound = w1[:, :, :1] * np.exp(rate * (t - t[0]))
    return MeanFieldGap(t, sizes, w1, bound, rate, solution)


def start_density() -> CircleDensity:
    return CircleDensity.from_function(
        lambda t: (1 + 0.6 * np.cos(t) + 0.3 * np.cos(2 * t + 1)) / (2 * np.pi), 32
    )


def compute(request: FigureRequest):
    """W1 (n, seed, time) of i.i.d. and quantile starts, the PDE at three times and the
    angles of n particles there."""
    ns = request.pick((100, 300, 900), (100, 400, 1600, 3200), tiny=(50, 800))
    seeds = request.pick(8, 16, tiny=6)
    times = np.linspace(0.0, 3.0, request.pick(7, 7, tiny=4))
    rho0 = start_density()
    gap = mean_field_gap(rho0, BETA, NORMALIZATION, ns=ns, times=times, seeds=seeds,
                         seed=request.seed)
    sol = gap.solution
    quantile = mean_field_gap(rho0, BETA, NORMALIZATION, ns=ns, times=times, seeds=1,
                              quantiles=True, particle_rtol=1e-10)
    snapshot = [0, times.size // 2, times.size - 1]
    particles = rho0.sample(request.seed + 1, 1, ns[-1])
    states = np.asarray(simulate(CircleSA(BETA), particles, times[snapshot],
                                 method="dopri5", rtol=1e-8).states[0])
    return dataset({
        "w1": (("n", "seed", "time"), gap.w1, {"long_name": "W1(mu_n(t), rho(t))"}),
        "bound": (("n", "seed", "time"), gap.bound, {"long_name": "e^(Lt) W1(mu_n(0), rho_0)"}),
        "quantile_n_w1": (("n", "time"), np.asarray(ns)[:, None] * quantile.w1[:, 0],
                          {"long_name": "n W1, quantile starts"}),
        "density": (("snapshot", "theta"), [sol.density(i).values(512) for i in snapshot],
                    {"long_name": "PDE density rho(t, theta)"}),
        "particles": (("snapshot", "particle"), states, {"units": "rad"}),
        "mass": (("time",), sol.mass), "min_density": (("time",), sol.min_density),
    }, {"n": list(ns), "time": times, "snapshot": snapshot}, beta=BETA,
        normalization=NORMALIZATION, ns=ns, seeds=seeds, modes=sol.modes,
        start="(1 + 0.6 cos t + 0.3 cos(2t + 1))/(2 pi)", dobrushin_rate=gap.rate)


@register("M1", "mean field on the circle: particles -> PDE in W1, with Dobrushin's bound",
          compute)
def draw(ds, request: FigureRequest):
    params = parameters(ds)
    ns, times, rate = ds["n"].values, ds["time"].values, params.pop("dobrushin_rate")
    w1, bound, n_w1 = ds["w1"].values, ds["bound"].values, ds["quantile_n_w1"].values
    mass, min_density = ds["mass"].values, ds["min_density"].values
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
    axes = axes.ravel()
    theta = grid(512) - np.pi  # plotted on [-pi, pi)
    shift = 256  # grid(512) starts at 0: roll by half a turn
    for color, index, rho, state in zip(COLORS, ds["snapshot"].values, ds["density"].values,
                                        ds["particles"].values, strict=False):
        axes[0].plot(theta, np.roll(rho, shift), color=color,
                     label=f"PDE, t = {times[index]:g}")
        axes[0].hist(np.mod(state + np.pi, 2 * np.pi) - np.pi, bins=60, range=(-np.pi, np.pi),
                     density=True, color=color, alpha=0.25)
    axes[0].set_xlabel(r"$\theta$")
    axes[0].set_ylabel(r"$\rho(t, \theta)$")
    axes[0].set_title(f"SA, $\\beta = {BETA:g}$: PDE density vs histogram of n = {ns[-1]} "
                      "particles", fontsize=9)
    axes[0].legend(fontsize=8)

    mean = w1.mean(axis=1)
    top = mean.max() * 30
    dense = np.linspace(times[0], times[-1], 400)
    growth = [float(np.polyfit(times, np.log(w), 1)[0]) for w in mean]  # measured rates
    for color, n, w in zip(COLORS, ns, mean, strict=False):
        axes[1].semilogy(times, w, "o-", color=color, label=f"n = {n}")
        bound_curve = w[0] * np.exp(rate * (dense - times[0]))
        shown = bound_curve <= top  # the bound only where it is inside the plot
        axes[1].semilogy(dense[shown], bound_curve[shown], "--", color=color, linewidth=0.8)
    exit_time = times[0] + np.log(top / mean[:, 0].max()) / rate
    axes[1].set_ylim(mean.min() / 3, top)
    axes[1].set_xlabel("t")
    axes[1].set_ylabel(r"$W_1(\mu_n(t), \rho(t))$")
    axes[1].set_title(f"measured growth rate of $W_1$: {min(growth):.2f} to {max(growth):.2f}\n"
                      f"Dobrushin's bound $e^{{Lt}} W_1(0)$ (dashed), $L$ = {rate:.1f}, "
                      f"leaves the plot at t = {exit_time:.2f}", fontsize=9)
    axes[1].legend(fontsize=8)

    slopes = [log_slope(ns, mean[:, i]) for i in range(times.size)]
    for index, color in ((0, COLORS[0]), (-1, COLORS[1])):
        axes[2].loglog(ns, mean[:, index], "o-", color=color,
                       label=f"t = {times[index]:g}, slope {slopes[index]:.2f}")
    axes[2].loglog(ns, mean[0, 0] * (np.asarray(ns) / ns[0]) ** -0.5, "k:", label=r"$n^{-1/2}$")
    axes[2].set_xlabel("n")
    axes[2].set_ylabel(r"mean $W_1$")
    axes[2].set_title(r"$W_1$ decays like $n^{-1/2}$ at every t", fontsize=9)
    axes[2].legend(fontsize=8)

    for color, n, row in zip(COLORS, ns, n_w1, strict=False):
        axes[3].plot(times, row - np.pi / 2, "o-", color=color, label=f"n = {n}")
    axes[3].axhline(0, color="k", linewidth=0.5)
    axes[3].set_xlabel("t")
    axes[3].set_ylabel(r"$n\,W_1(\mu_n(t), \rho(t)) - \pi/2$")
    axes[3].set_title("particles at the quantiles of $\\rho_0$ stay at those of $\\rho(t)$",
                      fontsize=9)
    axes[3].legend(fontsize=8)
    fig.suptitle("M1 - particles converge to the mean-field PDE on the circle "
                 "(arXiv 2312.10794, Section 3.1 and Remark 3.3)", fontsize=10)

    data = {"parameters": params, "times": times, "w1_mean": mean, "w1": w1,
            "dobrushin_rate": rate, "measured_growth_rates": growth, "slopes": slopes,
            "quantile_n_w1": n_w1, "mass": mass, "min_density": min_density}
    sharp = float(np.max(np.abs(n_w1[-1] - np.pi / 2)))
    checks = [
        Check("M1: max over t of |slope of W1 in n + 1/2|",
              float(np.max(np.abs(np.array(slopes) + 0.5))), SLOPE_TOLERANCE, "<=",
              f"slopes in [{min(slopes):.2f}, {max(slopes):.2f}], theory -1/2"),
        Check("M1: max of W1 - Dobrushin's bound e^(Lt) W1(0)", float(np.max(w1 - bound)),
              1e-12, "<=", f"L = {rate:.3f}"),
        Check(f"M1: quantile starts, n = {ns[-1]}: max |n W1 - pi/2| over t", sharp,
              QUANTILE_TOLERANCE, "<"),
        Check("M1: PDE min density", float(min_density.min()), 0.0, ">",
              f"mass error {np.abs(mass - 1).max():.1e}"),
    ]
    return save_figure(fig, request, "M1_mean_field_convergence", data, checks), checks
