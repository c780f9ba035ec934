"""M2 - linear instability of the uniform density on the circle (paper.md §6.5, §11 item 20).

The uniform density is stationary; mode k of a perturbation grows at
sigma_k = k^2 I_k(beta) / (beta I_0(beta)) (SA), fastest at k* ~ sqrt(2 beta). Shown: sigma_k
from theory, measured from the spectral PDE (tiny perturbation), and measured from n uniform
random particles (SA angle ODE, Euler h = 0.01; n = 3000 in the full run as in §11 item 20)
in their linear window; and the particles' mode amplitudes against e^{sigma_k t}. For
beta < 0 the odd modes grow and the even ones decay (sigma_k(-beta) = (-1)^{k+1} sigma_k).
Slow modes near 2 k* are soon slaved to the square of the dominant mode (rate 2 sigma_{k*}),
so only the fast modes are compared with the linear rates.

``particle_growth`` is the particle measurement: n i.i.d. uniform angles have empirical modes
(1/n) sum_j e^{-ik theta_j} of size ~ n^{-1/2}, and the empirical measure is itself a (weak)
solution of the continuity equation, so each mode grows like e^{sigma_k t} while every
amplitude stays small (the linear window). The slope of the batch mean of log|mode k| over
that window estimates sigma_k; the mode with the largest amplitude at the end of the window
is the measured dominant mode.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from dynamics import simulate, uniform_angles
from dynamics.fields.circle import CircleAttention
from dynamics.meanfield import GrowthMeasurement, growth_measurement, mode_numbers, pde_growth
from dynamics.observables import fourier_modes
from dynamics.theory.circle import growth_rates
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure

BETA, NEGATIVE_BETA, KMAX = 9.0, -4.0, 12
PDE_TOLERANCE, PARTICLE_TOLERANCE = 1e-4, 0.15  # |measured - sigma_k|


def linear_window_end(times: np.ndarray, amplitudes: np.ndarray, ceiling: float) -> float:
    """The last output time before the largest amplitude first exceeds ``ceiling``."""
    over = np.nonzero(amplitudes.max(axis=1) > ceiling)[0]
    if over.size == 0:
        return float(times[-1])
    return float(times[max(int(over[0]) - 1, 1)])


def particle_growth(beta: float, normalization: str = "softmax", *, n: int = 3000,
                    kmax: int = 12, horizon: float | None = None, dt: float | None = None,
                    batch: int = 1, seed: Any = 0, ceiling: float = 0.1, method: str = "euler"
                    ) -> GrowthMeasurement:
    """Rates of modes 1..kmax from n uniform random particles (module docstring).

    dt defaults to 0.01 / max(1, max_k |sigma_k|) (the paper.md §11 item 20 step at SA's
    rates; USA's rates grow like e^|beta| and shrink it), horizon to 4 / max_k sigma_k.
    The fit window is [0, t_end], t_end the last output before the batch-mean amplitude of
    some mode exceeds ``ceiling`` (end of the linear regime).
    """
    ks = mode_numbers(kmax)
    fastest = float(np.max(np.abs(growth_rates(beta, ks, normalization))))
    horizon = 4.0 / max(fastest, 1e-3) if horizon is None else horizon
    dt = 0.01 / max(1.0, fastest) if dt is None else dt
    steps = max(round(horizon / dt), 1)
    times = dt * np.arange(0, steps + 1, max(steps // 50, 1))
    traj = simulate(CircleAttention(beta=float(beta), normalization=normalization),
                    uniform_angles(seed, batch, n), times, method=method, dt=dt,
                    observe=lambda theta: np.abs(fourier_modes(theta, ks)))
    amplitudes = np.exp(np.mean(np.log(traj.values), axis=0))  # geometric batch mean, (T, K)
    end = linear_window_end(times, amplitudes, ceiling)
    return growth_measurement(beta, normalization, ks, times, amplitudes, (0.0, end))


def compute(request: FigureRequest):
    """Rates of theory, PDE (beta = 9 and -4) and particles; the particles' amplitudes."""
    n, batch = request.pick((1000, 2), (3000, 4), tiny=(600, 3))
    pde = pde_growth(BETA, "softmax", kmax=KMAX)
    pde_negative = pde_growth(NEGATIVE_BETA, "softmax", kmax=KMAX)
    particles = particle_growth(BETA, "softmax", n=n, kmax=KMAX, horizon=5.0, batch=batch,
                                seed=request.seed, ceiling=0.15)
    return dataset({
        "theory": (("mode",), pde.predicted, {"long_name": "sigma_k"}),
        "pde_measured": (("mode",), pde.measured),
        "particles_measured": (("mode",), particles.measured),
        "theory_negative_beta": (("mode",), pde_negative.predicted),
        "pde_measured_negative_beta": (("mode",), pde_negative.measured),
        "amplitudes": (("time", "mode"), particles.amplitudes,
                       {"long_name": "|(1/n) sum_j e^(-ik theta_j)|, batch geometric mean"}),
    }, {"mode": pde.modes, "time": particles.times}, beta=BETA, negative_beta=NEGATIVE_BETA,
        n=n, batch=batch, dt=0.01, method="euler", kmax=KMAX,
        dominant_predicted=pde.dominant_predicted,
        dominant_particles_rate=particles.dominant_rate, fit_window=particles.window)


@register("M2", "growth rates of Fourier modes of the uniform density (SA, beta = 9 and -4)",
          compute)
def draw(ds, request: FigureRequest):
    params = parameters(ds)
    ks, times, amplitudes = ds["mode"].values, ds["time"].values, ds["amplitudes"].values
    theory, k_star, n, batch = (ds["theory"].values, params["dominant_predicted"], params["n"],
                                params["batch"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    ax = axes[0]
    ax.plot(ks, theory, "k-", label=r"theory $k^2 I_k(\beta)/(\beta I_0(\beta))$")
    ax.plot(ks, ds["pde_measured"].values, "s", mfc="none", color="#3658bf",
            label="PDE (measured)")
    ax.plot(ks, ds["particles_measured"].values, "o", color="#c0392b",
            label=f"particles n = {n} x {batch} (measured)")
    ax.plot(ks, ds["theory_negative_beta"].values, "-", color="0.6",
            label=f"theory, beta = {NEGATIVE_BETA:g}")
    ax.plot(ks, ds["pde_measured_negative_beta"].values, "^", mfc="none", color="0.4",
            label=f"PDE, beta = {NEGATIVE_BETA:g}")
    ax.axvline(k_star, color="k", linestyle=":", linewidth=0.8)
    ax.axhline(0, color="k", linewidth=0.5)
    ax.set_xlabel("mode k")
    ax.set_ylabel(r"growth rate $\sigma_k$")
    ax.set_title(f"SA, beta = {BETA:g}: k* = {k_star}, sqrt(2 beta) = {np.sqrt(2 * BETA):.2f}")
    ax.legend(fontsize=7)

    ax = axes[1]
    for k, color in zip((2, k_star, 8), ("#27ae60", "#c0392b", "#8e44ad"), strict=True):
        amp = amplitudes[:, k - 1]
        ax.semilogy(times, amp, color=color, label=f"k = {k}")
        ax.semilogy(times, amp[0] * np.exp(growth_rates(BETA, k) * times), "--", color=color,
                    linewidth=0.8)
    ax.axvspan(*params["fit_window"], color="0.9")
    ax.set_xlabel("t")
    ax.set_ylabel(r"$|\frac{1}{n}\sum_j e^{-ik\theta_j}|$ (batch geometric mean)")
    ax.set_title("particles: amplitudes vs $e^{\\sigma_k t}$ (shaded: fit window)")
    ax.legend(fontsize=8)
    fig.suptitle("M2 - linear instability of the uniform density", fontsize=10)

    late = (times >= 2.0) & (times <= 5.0)
    dominant_late = ks[np.argmax(amplitudes[late], axis=1)]
    fast = theory >= 0.8 * theory.max()
    particle_error = float(np.max(np.abs(ds["particles_measured"].values - theory)[fast]))
    pde_error = float(np.max(np.abs(ds["pde_measured"].values - theory)))
    data = {"parameters": params,
            **{name: ds[name].values for name in ("theory", "pde_measured", "particles_measured",
                                                  "theory_negative_beta",
                                                  "pde_measured_negative_beta")},
            "modes": ks, "dominant_predicted": k_star,
            "dominant_particles_rate": params["dominant_particles_rate"],
            "dominant_particles_t2_to_5": dominant_late, "fit_window": params["fit_window"],
            "times": times, "amplitudes": amplitudes}
    checks = [
        Check("M2: max |PDE rate - sigma_k|", pde_error, PDE_TOLERANCE, "<"),
        Check("M2: max |particle rate - sigma_k| over the fastest modes", particle_error,
              PARTICLE_TOLERANCE, "<"),
        Check("M2: max |dominant particle mode over t in [2, 5] - k*|",
              int(np.max(np.abs(dominant_late - k_star))), 1, "<=",
              f"modes {sorted(set(dominant_late.tolist()))}, k* = {k_star}"),
    ]
    return save_figure(fig, request, "M2_mode_growth", data, checks), checks
