"""F3 - the six phase diagrams of paper Fig. 3 (SA, Q = K = V = I, n = 32, d = 2 ... 1024).

Each panel is P(t, beta) = P(<x_i(t), x_j(t)> >= 1 - delta), delta = 1e-3, estimated
over uniform random starts and all pairs, on t in [0, 30] and beta in [0.1, 9]. Theory
(Thm 6.9, section 6.3): as d -> infinity the boundary of the red (clustered) region
tends to Gamma_{infinity,delta} = {(t, beta): gamma_beta(t) = 1 - delta}, gamma_beta the
solution of the equiangular ODE (6.9) - here computed exactly for n = 32 (the authors'
``curve.ipynb`` used n = 128, and its curve was pasted onto the figure by hand:
paper.md erratum 2). For d = 2 and 8 a light band of probabilities strictly between 0
and 1 survives at large beta and t: metastable clusters (F4 zooms into d = 2).

Both schemes are always computed (``paper_repro.phase_studies``), each as one stored
study over the six dimensions: ``faithful`` (the authors' x <- normalize(x + h A x),
h = 0.1) and ``exact`` (Dormand-Prince, rtol 1e-9). The heat maps show ``--scheme``;
the bottom row compares the simulated high-d boundaries (where P falls through 1/2) with two
exact curves: Gamma_{infinity,delta} from (6.9), which the exact flow tracks, and the
same boundary for the authors' scheme (its exact equiangular map,
``f8_equiangular.authors_boundary_beta``), which the faithful runs track. The gap
between the two curves is the bias of the authors' scheme: it clusters later, so its
boundary lies lower (at t = 30: beta = 6.78 against 6.91).

Checks printed (``check_claims``): for each scheme, the mean offset of the simulated
boundary from its curve at d = 128, 512, 1024 shrinks with d (about 25/d in the quick
run: +0.16, +0.05, +0.02) and at d = 1024 the boundary stays within one beta-grid step
of the curve; the simulated bias (exact minus faithful boundary) against the gap between
the curves (+0.19 both, averaged over t); the boundaries at t = 30 beside the paper's;
and the metastable band (the share of t >= 20, beta >= 4 where 0 < P < 1), which shrinks
from 1 at d = 2 to ~0 at d = 1024.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from dynamics import theory
from paper_repro.f8_equiangular import PAPER_BOUNDARY_T30, authors_boundary_beta
from paper_repro.phase_studies import (
    BETA_RANGE,
    DELTA,
    SCHEME_LABELS,
    N,
    PhaseGrid,
    beta_grid,
    grid_spacing,
    half_boundary,
    phase_config,
    rounded,
    run_phase,
    store_path,
)
from paper_repro.plotting import phase_panel, quick_note
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure

DIMS = (2, 8, 32, 128, 512, 1024)
HIGH_D = (128, 512, 1024)
SCHEMES = ("faithful", "exact")
OVERLAY_N = 128  # the n of the authors' curve.ipynb
AGREE_STEPS = 1.0  # a simulated boundary "tracks" a curve within this many beta-grid steps


def f3_grid(request: FigureRequest) -> PhaseGrid:
    """Quick: 32 seeds, beta step 0.25 (4 and 9 on the grid, for F4's boxes); full: the
    paper's 2048 seeds, 90 betas in [0.1, 9], a checkpoint every 0.2 (151; the
    paper's 200 are not on the step grid). On the CPU a work chunk is 32 seeds x 5 betas:
    its (160, 32, 32) arrays stay in cache (measured 16 us per run and step, against 27 for
    chunks of 128 x 10)."""
    big = request.device == "cuda"
    return request.pick(
        quick=PhaseGrid(32, 32, beta_grid(0.25, 9.0, 36), 12, 0.5),
        full=PhaseGrid(2048, 2048 if big else 32, beta_grid(*BETA_RANGE, 90), 30 if big else 5,
                       0.2),
        tiny=PhaseGrid(2, 2, beta_grid(1.0, 9.0, 9), 0, 1.0),
    )


def f3_study(request: FigureRequest, scheme: str):
    """The stored F3 study of one scheme (all six dimensions), run or reused."""
    config = phase_config(request, field={"kind": "sa"}, dims=DIMS, grid=f3_grid(request),
                          scheme=scheme)
    return run_phase(request, f"F3-{scheme}", config)


def authors_boundary(times: np.ndarray, n: int = N, delta: float = DELTA) -> np.ndarray:
    """The authors' scheme's Gamma_{infinity,delta} as beta(t) (NaN where no beta in
    [0.1, 12] puts its 1 - delta crossing at t)."""
    out = np.full(len(times), np.nan)
    for k, t in enumerate(times):
        if t <= 0:
            continue
        try:
            out[k] = authors_boundary_beta(float(t), n, delta)
        except ValueError:  # no sign change: t outside the curve's range
            pass
    return out


def compare(simulated: np.ndarray, curve: np.ndarray, betas: np.ndarray) -> dict[str, float]:
    """Max and mean |simulated - curve| and mean (simulated - curve) where both are defined
    and the curve lies inside the beta window; ``count`` such times."""
    inside = np.isfinite(simulated) & np.isfinite(curve) & (curve >= betas[0]) & (
        curve <= betas[-1])
    if not inside.any():
        return {"count": 0, "max_abs": float("nan"), "mean_abs": float("nan"),
                "mean": float("nan")}
    diff = simulated[inside] - curve[inside]
    return {"count": int(inside.sum()), "max_abs": float(np.max(np.abs(diff))),
            "mean_abs": float(np.mean(np.abs(diff))), "mean": float(np.mean(diff))}


def metastable_share(probability: np.ndarray, betas: np.ndarray, times: np.ndarray) -> float:
    """Share of the (t >= 20, beta >= 4) corner where 0.05 < P < 0.95 (the light band)."""
    corner = probability[np.ix_(betas >= 4.0, times >= 20.0)]
    return float(np.mean((corner > 0.05) & (corner < 0.95)))


CURVES = ("(6.9), n = 32", "authors' scheme, n = 32",
          f"(6.9), n = {OVERLAY_N} (the authors' overlay)")


class Panels:
    """Everything F3 draws and checks, read from its Dataset: P per scheme (d, beta, time),
    the simulated boundaries per scheme and d, and the exact curves beta(t) by name (the
    first two also as ``exact_curve`` and ``authors_curve``)."""

    def __init__(self, ds):
        self.times, self.betas = ds["time"].values, ds["beta"].values
        self.probability = {s: ds["probability"].sel(scheme=s).values for s in SCHEMES}
        self.half = {s: dict(zip(DIMS, ds["boundary_half"].sel(scheme=s).values, strict=True))
                     for s in SCHEMES}
        self.curves = dict(zip(CURVES, ds["gamma_inf"].values, strict=True))
        self.exact_curve, self.authors_curve = self.curves[CURVES[0]], self.curves[CURVES[1]]


def compute(request: FigureRequest):
    """Run (or reuse) both stored studies; P, the simulated boundaries and the exact curves."""
    studies = {scheme: f3_study(request, scheme) for scheme in SCHEMES}
    times, betas = studies["exact"]["time"].values, studies["exact"]["beta"].values
    prob = np.stack([studies[s]["probability"].values[0] for s in SCHEMES])
    half = [[half_boundary(p, betas) for p in prob[k]] for k in range(len(SCHEMES))]
    curves = [studies["exact"]["boundary_beta"].values[0], authors_boundary(times),
              theory.phase_boundary_betas(times, OVERLAY_N, DELTA)]
    return dataset({
        "probability": (("scheme", "d", "beta", "time"), prob,
                        {"long_name": "P(<x_i, x_j> >= 1 - delta)"}),
        "boundary_half": (("scheme", "d", "time"), half, {"long_name": "beta where P = 1/2"}),
        "gamma_inf": (("curve", "time"), curves, {"long_name": "Gamma_inf,delta as beta(t)"}),
    }, {"scheme": list(SCHEMES), "d": list(DIMS), "beta": betas, "time": times,
        "curve": list(CURVES)}, n=N, delta=DELTA, dims=DIMS, seeds=f3_grid(request).seeds,
        h=0.1, schemes=SCHEME_LABELS, grid=f3_grid(request).describe(),
        stores={s: store_path(request, f"F3-{s}").name for s in SCHEMES})


def _heat_maps(fig, layout, panels: Panels, shown: str) -> None:
    axes = []
    for j, d in enumerate(DIMS):
        ax = fig.add_subplot(layout[j // 3, j % 3])
        axes.append(ax)
        mesh = phase_panel(ax, panels.times, panels.betas, panels.probability[shown][j],
                           title=f"({'abcdef'[j]}) $d = {d}$")
        ax.plot(panels.times, panels.exact_curve, "k", linewidth=1.3)
        if shown == "faithful":
            ax.plot(panels.times, panels.authors_curve, "k--", linewidth=0.9)
    fig.colorbar(mesh, ax=axes, shrink=0.8, pad=0.02, location="right",
                 label=r"$P(\langle x_i, x_j\rangle \geq 1 - \delta)$")


MARKERS = {128: "^", 512: "s", 1024: "o"}


def _boundaries(ax, panels: Panels) -> None:
    t = panels.times
    for scheme, color in (("exact", "#1b9e77"), ("faithful", "#d95f02")):
        for d in HIGH_D:
            ax.plot(t, panels.half[scheme][d], MARKERS[d], color=color, markersize=3.2,
                    markerfacecolor="none", label=f"{scheme}, $d = {d}$")
    ax.plot(t, panels.exact_curve, "k", linewidth=1.4,
            label=r"$\Gamma_{\infty,\delta}$ (6.9), $n = 32$")
    ax.plot(t, panels.authors_curve, "k--", linewidth=1.1, label="authors' scheme, exact map")
    ax.plot(t, panels.curves[CURVES[2]], ":", color="0.5", linewidth=1.1,
            label=f"(6.9) with $n = {OVERLAY_N}$ (the authors' overlay)")
    ax.set_xlim(t[0], t[-1])
    ax.set_ylim(panels.betas[0], panels.betas[-1])
    ax.set_xlabel("$t$", fontsize=8)
    ax.set_ylabel(r"$\beta$ where $P = 1/2$", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(frameon=False, fontsize=6.5, ncol=3, loc="upper left")
    ax.set_title("simulated boundaries at high $d$ against the exact curves", fontsize=9)


def _bias(ax, panels: Panels) -> None:
    t = panels.times
    for d in HIGH_D:
        ax.plot(t, panels.half["exact"][d] - panels.half["faithful"][d], MARKERS[d],
                color="0.3", markersize=3.2, markerfacecolor="none", label=f"$d = {d}$")
    ax.plot(t, panels.exact_curve - panels.authors_curve, "k", linewidth=1.2,
            label="(6.9) - authors' map")
    ax.axhline(0.0, color="0.7", linewidth=0.6)
    ax.set_xlim(t[0], t[-1])
    ax.set_xlabel("$t$", fontsize=8)
    ax.set_ylabel(r"$\beta_{exact} - \beta_{faithful}$", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(frameon=False, fontsize=6.5)
    ax.set_title("bias of the authors' scheme", fontsize=9)


def check_claims(panels: Panels, shown: str) -> tuple[list[Check], dict]:
    """The checks and their numbers: each scheme's high-d boundary against its exact curve
    (within a beta-grid step at d = 1024, mean offset shrinking with d), the bias between
    the schemes, the values at t = 30, the metastable band."""
    step = grid_spacing(panels.betas)
    reference = {"exact": panels.exact_curve, "faithful": panels.authors_curve}
    checks, agreement, verdicts = [], {}, {}
    for scheme in SCHEMES:
        name = "(6.9)" if scheme == "exact" else "the authors' scheme's exact map"
        stats = {d: compare(panels.half[scheme][d], reference[scheme], panels.betas)
                 for d in HIGH_D}
        agreement[scheme] = {f"d={d}": v for d, v in stats.items()}
        offsets = [abs(stats[d]["mean"]) for d in HIGH_D]
        last = stats[HIGH_D[-1]]
        verdicts[scheme] = bool(last["max_abs"] <= AGREE_STEPS * step
                                and offsets[-1] <= offsets[0])
        note = ("mean offsets " + ", ".join(f"{stats[d]['mean']:+.3f}" for d in HIGH_D)
                + f" at d = {', '.join(map(str, HIGH_D))}")
        checks += [
            Check(f"F3 {scheme}: max |boundary - {name}| at d = {HIGH_D[-1]}",
                  last["max_abs"], AGREE_STEPS * step, "<=", f"beta step {step:.3g}; {note}"),
            Check(f"F3 {scheme}: |mean offset| at d = {HIGH_D[-1]} minus at d = {HIGH_D[0]}",
                  offsets[-1] - offsets[0], 0.0, "<=", "the offset shrinks with d"),
        ]
    shift = {d: compare(panels.half["exact"][d], panels.half["faithful"][d], panels.betas)
             for d in HIGH_D}
    expected = float(np.nanmean(panels.exact_curve - panels.authors_curve))
    at_end = {**{name: float(curve[-1]) for name, curve in panels.curves.items()},
              **{f"simulated d = {HIGH_D[-1]}, {s}": float(panels.half[s][HIGH_D[-1]][-1])
                 for s in SCHEMES},
              **{f"paper, {k}": v for k, v in PAPER_BOUNDARY_T30.items()}}
    checks.append(Check(
        "F3: bias of the authors' scheme, mean over t of beta(6.9) - beta(authors' map)",
        expected, 0.0, ">", "simulated (exact minus faithful boundary): " + ", ".join(
            f"d = {d}: {shift[d]['mean']:+.3f}" for d in HIGH_D)
        + f"; at t = {panels.times[-1]:g}: " + "; ".join(
            f"{k} {v:.2f}" for k, v in at_end.items())))
    band = {d: metastable_share(panels.probability[shown][j], panels.betas, panels.times)
            for j, d in enumerate(DIMS)}
    numbers = {"agreement": agreement, "converges": verdicts,
               "bias": {"simulated": {f"d={d}": shift[d] for d in HIGH_D},
                        "exact curves": expected},
               "boundary_at_T": at_end, "metastable_share": {f"d={d}": v for d, v in band.items()}}
    return checks, numbers


@register("F3", "phase diagrams P(<x_i, x_j> >= 1 - delta), n = 32, d = 2 ... 1024, both schemes",
          compute)
def draw(ds, request: FigureRequest):
    panels = Panels(ds)
    params = parameters(ds)
    shown = request.scheme
    fig = plt.figure(figsize=(13, 10.5))
    layout = fig.add_gridspec(3, 3, height_ratios=(1, 1, 1.05), hspace=0.42, wspace=0.22)
    _heat_maps(fig, layout, panels, shown)
    _boundaries(fig.add_subplot(layout[2, :2]), panels)
    _bias(fig.add_subplot(layout[2, 2]), panels)
    fig.suptitle(f"F3 - SA phase diagrams, $n = {N}$, $\\delta = 10^{{-3}}$; heat maps: "
                 f"{SCHEME_LABELS[shown]}; black: $\\Gamma_{{\\infty,\\delta}}$ from (6.9)"
                 + (", dashed: authors' scheme" if shown == "faithful" else ""), fontsize=10)
    quick_note(fig, request, f"{params['grid']} (full: 2048 seeds, 90 betas, t every 0.2)")
    checks, numbers = check_claims(panels, shown)
    data = {
        "parameters": {"n": N, "delta": DELTA, "dims": DIMS, "betas": panels.betas,
                       "times": panels.times, "seeds": params["seeds"], "h": 0.1,
                       "shown_scheme": shown, "schemes": SCHEME_LABELS,
                       "stores": params["stores"]},
        "probability": {s: {f"d={d}": rounded(panels.probability[s][j], 4)
                            for j, d in enumerate(DIMS)} for s in SCHEMES},
        "boundary_half": {s: {f"d={d}": rounded(panels.half[s][d]) for d in DIMS}
                          for s in SCHEMES},
        "gamma_inf": {k: rounded(v) for k, v in panels.curves.items()},
        **numbers,
    }
    return save_figure(fig, request, "F3_phase_diagrams", data, checks), checks
