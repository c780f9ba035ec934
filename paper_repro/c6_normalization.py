"""C6 - where LayerNorm sits changes how fast tokens cluster (2510.22026, via the Survey).

Tokens x_i = r_i theta_i in R^d, attention drive A_i(Theta) = sum_j softmax_j(beta <Q theta_i,
K theta_j>) theta_j (V = I), and the placements of the normalisation:

* Post-LN  theta_i' = P^perp A_i                      (SA on the sphere)
* Pre-LN   x_i'     = A_i                             (``dynamics.PreLN``)
* Peri-LN  x_i'     = A_i / |A_i|                     (``dynamics.PeriLN``)
* nGPT     theta_i' = alpha P^perp (A_i / |A_i|) on the sphere: the update
           theta <- normalize(theta + h alpha A/|A|) of the simuformer code read as a flow,
           with its alpha = 0.2 (paper.md section 2.11; its meaning is inferred there), and
           alpha = 1 for comparison (dashed).

Mix-LN and sqrt-scaling also appear in the Survey's figure, but their equations were not
recovered (paper.md section 2.11, [U]); they are left out and the figure says so.

Left: the mean pairwise cosine rho(t) = mean_{i != j} <theta_i, theta_j> for d = 512,
beta = sqrt(d), n = 32 < d, with random Q, K (i.i.d. N(0, 1/d) entries, a fresh pair per
realisation, so beta <Q theta, K theta'> = O(1)) and V = I; the band holds 90% of the
realisations (5%-95% quantiles). The exact weight law of 2510.22026 was not recovered.
Right: the rates from an equiangular start with Q = K = V = I (paper section 11 item 19):
1 - rho ~ e^{-2t} for Post-LN, ~ 1/t^2 for Pre-LN (r_i grows like t), and
e^{-2 alpha t} for nGPT (|A_i| -> 1 at consensus).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import matplotlib.pyplot as plt
import numpy as np

from dynamics import SA, PeriLN, PreLN, Wrapper, equiangular, uniform_sphere
from dynamics.observables import rotation_invariant
from dynamics.space import SPHERE
from paper_repro.plotting import quick_note
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure
from paper_repro.schemes import describe, integrate, time_grid

N, D, T = 32, 512, 10.0
BETA = math.sqrt(D)
ALPHA_NGPT = 0.2
COLORS = {"Post-LN": "#1f77b4", "Pre-LN": "#ff7f0e", "Peri-LN": "#2ca02c", "nGPT": "#d62728",
          "nGPT, alpha = 1": "#d62728"}
# theory of each fitted rate (exponential rate, or log-log slope for Pre-LN), and tolerance
RATE_THEORY = {"Post-LN": (2.0, 0.02), "Pre-LN": (-2.0, 0.05), "nGPT": (2 * ALPHA_NGPT, 0.02),
               "nGPT, alpha = 1": (2.0, 0.02)}
MISSING = ("Mix-LN and sqrt-scaling (arXiv 2510.22026) are not shown: their exact equations "
           "could not be recovered")


@dataclass(frozen=True)
class NGPT(Wrapper):
    """nGPT-style attention on the sphere: theta_i' = alpha P^perp (A_i / |A_i|)."""

    attention: Any = field(default_factory=SA)
    alpha: float = ALPHA_NGPT

    INNER: ClassVar[str] = "attention"

    space = SPHERE

    def drive(self, t, x):
        a = self.attention.drive(t, x)
        return self.alpha * a / np.linalg.norm(a, axis=-1, keepdims=True)

    def __call__(self, t, x):
        return SPHERE.project(x, self.drive(t, x))


def placements(beta: float, **weights: Any) -> dict[str, Any]:
    """The four fields with the same attention weights."""
    return {"Post-LN": SA(beta, **weights), "Pre-LN": PreLN(beta, **weights),
            "Peri-LN": PeriLN(beta, **weights), "nGPT": NGPT(SA(beta, **weights)),
            "nGPT, alpha = 1": NGPT(SA(beta, **weights), alpha=1.0)}


@rotation_invariant
def mean_cosine(x: np.ndarray) -> np.ndarray:
    """rho = mean over i != j of <x_i/|x_i|, x_j/|x_j|>, shape (batch,)."""
    theta = x / np.linalg.norm(x, axis=-1, keepdims=True)
    n = theta.shape[-2]
    g = theta @ np.swapaxes(theta, -1, -2)
    return (g.sum(axis=(-2, -1)) - np.trace(g, axis1=-2, axis2=-1)) / (n * (n - 1))


@rotation_invariant
def mean_gap(x: np.ndarray) -> np.ndarray:
    """1 - rho computed as mean |theta_i - theta_j|^2 / 2 (accurate near consensus), (batch,)."""
    theta = x / np.linalg.norm(x, axis=-1, keepdims=True)
    n = theta.shape[-2]
    diff = theta[..., :, None, :] - theta[..., None, :, :]
    return (diff**2).sum(axis=(-3, -2, -1)) / (2 * n * (n - 1))


def random_bilinear(seed: int, batch: int, d: int) -> np.ndarray:
    """QK = Q^T K (batch, d, d) with Q, K i.i.d. N(0, 1/d) entries."""
    gen = np.random.default_rng(seed)
    out = np.empty((batch, d, d))
    for b in range(batch):
        q, k = gen.standard_normal((2, d, d)) / math.sqrt(d)
        out[b] = q.T @ k
    return out


def cosine_curves(request: FigureRequest, batch: int, times: np.ndarray) -> dict[str, np.ndarray]:
    """rho(t) per placement, (batch, T) each, for random Q, K and uniform starts."""
    x0 = uniform_sphere(request.seed, batch, N, D)
    qk = random_bilinear(request.seed + 1, batch, D)
    out = {}
    for name, fld in placements(BETA, QK=qk).items():
        run = integrate(fld, x0, times, request.scheme, observe=mean_cosine)
        out[name] = np.asarray(run.values)
    return out


def rate_curves(times: np.ndarray, n: int = 8, beta: float = 1.0) -> dict[str, np.ndarray]:
    """1 - rho(t) per placement from an equiangular start (rho0 = 0.5), Q = K = V = I, exact."""
    x0 = equiangular(0, 1, n, n, 0.5)
    return {name: np.asarray(integrate(fld, x0, times, "exact", observe=mean_gap).values)[0]
            for name, fld in placements(beta).items()}


def fitted_rates(times: np.ndarray, gaps: dict[str, np.ndarray]) -> dict[str, float]:
    """Post-LN and nGPT: exponential rate -d log(1 - rho)/dt (on t in [2, 6], nGPT with
    alpha = 0.2 on [15, 40]); Pre-LN and Peri-LN: log-log slope d log(1 - rho)/d log t on
    t in [100, 200]."""
    windows = {"Post-LN": (2, 6), "nGPT, alpha = 1": (2, 6), "nGPT": (15, 40)}
    out = {}
    for name, gap in gaps.items():
        if name in windows:
            low, high = windows[name]
            mask = (times >= low) & (times <= high)
            out[name] = -float(np.polyfit(times[mask], np.log(gap[mask]), 1)[0])
        else:
            mask = times >= 100
            out[name] = float(np.polyfit(np.log(times[mask]), np.log(gap[mask]), 1)[0])
    return out


def compute(request: FigureRequest):
    """rho(t) per placement and realisation; 1 - rho(t) from the equiangular start."""
    batch = request.pick(32, 128, tiny=4)
    times = time_grid(T)
    curves = cosine_curves(request, batch, times)
    long_times = np.concatenate([time_grid(10.0, 0.25), np.linspace(11.0, 200.0, 190)])
    gaps = rate_curves(long_times)
    return dataset({
        "rho": (("placement", "realisation", "time"), list(curves.values()),
                {"long_name": "mean pairwise cosine"}),
        "gap": (("placement", "long_time"), list(gaps.values()),
                {"long_name": "1 - rho, equiangular start"}),
    }, {"placement": list(curves), "time": times, "long_time": long_times}, n=N, d=D,
        beta=BETA, T=T, batch=batch, weights="Q, K iid N(0, 1/d), V = I", ngpt_alpha=ALPHA_NGPT,
        integrator=describe(request.scheme), not_shown=MISSING)


@register("C6", "normalisation placements: Post/Pre/Peri-LN and nGPT (d = 512, beta = sqrt d)",
          compute)
def draw(ds, request: FigureRequest):
    batch, times, long_times = ds.sizes["realisation"], ds["time"].values, ds["long_time"].values
    names = [str(name) for name in ds["placement"].values]
    curves = dict(zip(names, ds["rho"].values, strict=True))
    gaps = dict(zip(names, ds["gap"].values, strict=True))
    rates = fitted_rates(long_times, gaps)
    fig, (ax, ax_rate) = plt.subplots(1, 2, figsize=(11, 4.2))
    summary = {}
    for name, rho in curves.items():
        mean = rho.mean(axis=0)
        low, high = np.quantile(rho, [0.05, 0.95], axis=0)
        style = "--" if "alpha" in name else "-"
        ax.plot(times, mean, style, color=COLORS[name], linewidth=1.4, label=name)
        ax.fill_between(times, low, high, color=COLORS[name], alpha=0.2, linewidth=0)
        summary[name] = {"mean": mean, "q05": low, "q95": high}
    ax.text(0.02, 0.02, MISSING, transform=ax.transAxes, fontsize=7, color="0.35")
    ax.set_xlabel("$t$")
    ax.set_ylabel(r"$\rho(t)$ = mean cosine similarity")
    ax.set_title(f"random $Q, K$, $V = I$, $d = {D}$, $n = {N}$, $\\beta = \\sqrt{{d}}$ "
                 "(band: 90% of runs)", fontsize=9)
    ax.legend(frameon=False, fontsize=8, loc="center right")
    for name, gap in gaps.items():
        ax_rate.loglog(long_times[1:], gap[1:], "--" if "alpha" in name else "-",
                       color=COLORS[name], linewidth=1.4, label=name)
    ax_rate.loglog(long_times[1:], 0.1 / long_times[1:] ** 2, "k:", linewidth=0.8,
                   label="$t^{-2}$")
    ax_rate.set_ylim(1e-14, 1)
    ax_rate.set_xlabel("$t$")
    ax_rate.set_ylabel(r"$1 - \rho(t)$")
    ax_rate.set_title("rates: equiangular start, $Q = K = V = I$, $n = 8$, $\\beta = 1$ (exact)",
                      fontsize=9)
    ax_rate.legend(frameon=False, fontsize=8)
    fig.suptitle(f"C6 - normalisation placements ({describe(request.scheme)})", fontsize=10)
    quick_note(fig, request, f"{batch} realisations (full: 128)")
    data = {"parameters": parameters(ds), "times": times, "rho": summary,
            "rates": {"times": long_times, "gap": gaps, "fitted": rates}}
    at = {t: int(np.searchsorted(times, t)) for t in (1.0, 2.0, 5.0, 10.0)}
    table = "; ".join(f"{name} " + "/".join(f"{s['mean'][k]:.3f}" for k in at.values())
                      for name, s in summary.items())
    order_1 = sorted(summary, key=lambda name: -summary[name]["mean"][at[1.0]])
    notes = {"Post-LN": f"rho at t = 1/2/5/10: {table}",
             "Pre-LN": f"order at t = 1, fastest first: {', '.join(order_1)} (Survey: nGPT and "
                       "Peri-LN, then Post-LN, then Pre-LN)",
             "nGPT": f"Peri-LN log-log slope {rates['Peri-LN']:.3f}"}
    checks = [Check(f"C6: {name}: |fitted rate - theory {theory:g}|",
                    abs(rates[name] - theory), tolerance, "<=", notes.get(name, ""))
              for name, (theory, tolerance) in RATE_THEORY.items()]
    return save_figure(fig, request, "C6_normalization", data, checks), checks
