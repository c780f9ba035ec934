"""F2 - the regime map of the clustering theorems (paper Fig. 2, a schematic).

Horizontal axis: the dimension d (marks 2, 3, n, d*); vertical axis: the inverse
temperature beta (marks 1 and n^2/pi^2). The zones are the theorems of arXiv 2312.10794:

* Thm 4.2 - beta -> 0: one cluster with probability -> 1 (arbitrary Q, K, V = I);
* Thm 4.3 - d = 2 and beta <= 1 (from 2405.18273): one cluster for a.e. start;
* Thm 5.1 - d = 2 and beta >= n^2/pi^2: one cluster for a.e. start;
* between them v4 has no result for d = 2 (since closed: 2507.22857 proves
  synchronisation for all beta >= -0.16);
* Thm 6.1 - d >= 3: clustering as t -> infinity for every beta;
* Thm 6.3 - d >= n: exponential rate (the tokens lie a.s. in a hemisphere, Wendel);
* Thm 6.9 - d >= d*(n, beta): the exact clustering time, gamma_beta(t) of (6.9).

The thresholds are computed by ``dynamics.theory``. The quoted n^2/pi^2 is what
(n - 1) tau*_beta < pi gives; the proof's condition (n - 1) tau*_beta < pi/2 needs about
4 (n - 1)^2/pi^2, four times more. Both fit the theorem's "beta >= C n^2".
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from dynamics import theory
from paper_repro.registry import Check, FigureRequest, register, save_figure

N = 32
GREEN, RED = "#7fc97f", "#f0027f"
# schematic coordinates of the marks
X_MARKS = {"2": 0.0, "3": 1.0, "n": 2.5, "d*": 4.0}
X_END, Y_ONE, Y_LARGE, Y_END = 5.0, 1.0, 3.0, 4.0


def thresholds(n: int = N) -> dict[str, float]:
    """The numbers behind the map for n tokens (see the module docstring)."""
    proof = theory.beta_for_tau_star(math.pi / (2 * (n - 1)), d=2)
    return {
        "n": n,
        "beta_small_d2": 1.0,
        "beta_large_quoted": theory.large_beta_threshold(n),
        "beta_large_proof": float(proof),
        "four_(n-1)^2/pi^2": 4 * (n - 1) ** 2 / math.pi**2,
        "(n-1)tau*_at_quoted": (n - 1) * theory.tau_star(theory.large_beta_threshold(n), d=2),
        "wendel_d=n": theory.wendel_probability(n, n),
        "wendel_d=n/2": theory.wendel_probability(n, n // 2),
        "wendel_d=2": theory.wendel_probability(n, 2),
        "d_star_beta=1": theory.theorem_6_9_dimension(1.0, n),
    }


def _zone(ax, x0, y0, x1, y1, color, label, *, alpha=0.35, hatch=None, fontsize=8, **text):
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=color, alpha=alpha,
                           edgecolor="k" if hatch else "none", hatch=hatch, linewidth=0.0))
    ax.text((x0 + x1) / 2, (y0 + y1) / 2, label, ha="center", va="center", fontsize=fontsize,
            **text)


@register("F2", "regime map of the clustering theorems (schematic, n = 32)")
def draw(ds, request: FigureRequest):
    """Closed form only (``thresholds``): no compute, no store."""
    values = thresholds()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    x2, x3, xn, xs = (X_MARKS[k] for k in ("2", "3", "n", "d*"))
    _zone(ax, x3, 0, X_END, Y_END, GREEN, "", alpha=0.25)
    ax.text((x3 + xn) / 2, 2.0, "Theorem 6.1:\nclustering\nas $t\\to+\\infty$", ha="center",
            va="center", fontsize=8)
    _zone(ax, xn, 0.35, X_END, Y_END, GREEN, "", alpha=0.3)
    ax.text((xn + xs) / 2, 2.0, "Theorem 6.3:\nexponential rate\n($d \\geq n$: Wendel $P=1$)",
            ha="center", va="center", fontsize=8)
    _zone(ax, xs, 0.35, X_END, Y_END, "#2b8cbe", "Theorem 6.9:\nexact time\nof clustering",
          alpha=0.35)
    _zone(ax, x2, 0.35, x3, Y_ONE, GREEN, "T. 4.3", alpha=0.6)
    _zone(ax, x2, Y_LARGE, x3, Y_END, GREEN, "T. 5.1", alpha=0.6)
    _zone(ax, x2, Y_ONE, x3, Y_LARGE, RED, "no result\nwhen $d=2$\n(v4; closed by\n2507.22857)",
          alpha=0.35, fontsize=7)
    _zone(ax, x2, 0.0, X_END, 0.35, "#ffd92f", "Theorem 4.2: $\\beta\\to 0$, arbitrary $Q, K$",
          alpha=0.6)
    ax.set_xlim(x2, X_END)
    ax.set_ylim(0, Y_END)
    ax.set_xticks(list(X_MARKS.values()), ["2", "3", "$n$", "$d^*$"])
    ax.set_yticks([Y_ONE, Y_LARGE], ["1", "$n^2/\\pi^2$"])
    ax.set_xlabel("dimension $d$ (schematic)")
    ax.set_ylabel("$\\beta$   (fast dynamics at the bottom, slow at the top)")
    note = (
        f"n = {N}:  n$^2/\\pi^2$ = {values['beta_large_quoted']:.1f} (quoted); the proof's "
        f"$(n-1)\\tau^*_\\beta < \\pi/2$ needs $\\beta \\geq$ {values['beta_large_proof']:.1f} "
        f"$\\approx 4(n-1)^2/\\pi^2$ = {values['four_(n-1)^2/pi^2']:.1f}\n"
        f"$d^*(n, \\beta=1)$ from (D.9) = {values['d_star_beta=1']:.1e};  Wendel: "
        f"P(hemisphere) = {values['wendel_d=2']:.1e} (d = 2), {values['wendel_d=n/2']:.2f} "
        f"(d = n/2), {values['wendel_d=n']:.0f} (d = n)"
    )
    fig.text(0.01, -0.06, note, fontsize=7.5, ha="left", va="top")
    ax.set_title("F2 - where single-cluster convergence is proved (SA and USA)", fontsize=10)
    data = {"parameters": {"n": N, "schematic": True}, "thresholds": values,
            "x_marks": X_MARKS}
    ratio = values["beta_large_proof"] / values["beta_large_quoted"]
    checks = [
        Check(f"F2: (n-1) tau*_beta at the quoted n^2/pi^2 (n = {N})",
              values["(n-1)tau*_at_quoted"], math.pi, "<",
              f"quoted {values['beta_large_quoted']:.2f}; the proof's (n-1) tau* < pi/2 needs "
              f"beta >= {values['beta_large_proof']:.2f}, {ratio:.2f} times more"),
        Check("F2: Wendel probability of a hemisphere at d = n", values["wendel_d=n"], 1.0, "==",
              f"{values['wendel_d=n/2']:g} at d = n/2, {values['wendel_d=2']:.2e} at d = 2"),
        Check(f"F2: d*(n = {N}, beta = 1) from (D.9)", values["d_star_beta=1"], float(N), ">",
              "the Thm 6.9 band is schematic"),
    ]
    return save_figure(fig, request, "F2_regime_map", data, checks), checks
