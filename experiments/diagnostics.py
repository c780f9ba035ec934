"""Per-head diagnostics against simulation, and the value-spectrum figure of a model.

* ``compare_prediction(operator, x0, t_end=...)`` - flow tokens with one head of a layer
  (``attention.diagnostics.head_operator``) in the setting of the theorem that applies
  to it (``sphere_flow`` for 2312.10794, ``euclidean_flow`` for 2305.05465) and measure how
  far the final token directions are from the predicted limit geometry: the mass of the
  directions in the predicted subspace, the number of direction clusters (connected
  components of {<u_i, u_j> >= 1 - delta}, ``dynamics.observables.cluster_count``) against
  the predicted range, and for the origin prediction (Thm C.5) the shrinkage of the norms.
* ``plot_value_spectra(diagnostics_by_layer, path)`` - heat maps, layers x heads, of the
  real part of V's leading eigenvalue, the dominance ratio |lambda|_(1)/|lambda|_(2) and
  the asymmetry |anti(B)|_F/|B|_F, with each head's regime marked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attention.array_api import to_numpy
from attention.diagnostics import (
    SETTINGS,
    HeadDiagnostics,
    Result,
    diagnose,
    head_operator,
    layer_grid,
)
from dynamics import simulate
from dynamics.fields.operator import euclidean_flow, sphere_flow
from dynamics.observables import cluster_count

REGIME_MARKS = {
    "identity": "I", "gradient-flow": "G", "simple-leading": "S", "paranormal": "P",
    "negative-identity": "N", "one-dimensional": "1", "none": "",
}


@dataclass(frozen=True)
class Comparison:
    """The simulated geometry of one head against its predicted one.

    result:        the theorem whose prediction is tested (its ``setting`` chose the flow)
    final:         (batch, n, d) tokens at t_end;  directions: final / |final|
    subspace_mass: (batch,) mean over tokens of |P_S u_i|^2 for the predicted basis S
                   (1: every direction lies in S); None when no subspace is predicted
    clusters:      (batch,) direction clusters found (threshold ``delta``)
    norm_ratio:    (batch,) max_i |x_i(t_end)| / max_i |x_i(0)|
    """

    diagnostics: HeadDiagnostics
    result: Result
    space: str
    t_end: float
    delta: float
    final: np.ndarray
    directions: np.ndarray
    subspace_mass: np.ndarray | None
    clusters: np.ndarray
    norm_ratio: np.ndarray

    @property
    def predicted_clusters(self) -> tuple[int, int | None]:
        return self.result.clusters

    def agrees(self, mass_tol: float = 1e-2, shrink: float = 0.25) -> np.ndarray:
        """(batch,) bools: clusters within the predicted range, subspace mass >= 1 -
        mass_tol (when a subspace is predicted) and, for the origin, norm_ratio <= shrink.

        Thm C.5 gives no rate, and the approach to 0 is slow: as the attention tends to
        uniform its drift -mean_j x_j only removes the mean, so the spread decays through
        the O(|x|^2) non-uniform part (about t^{-1/2} in simulations [I])."""
        low, high = self.result.clusters
        ok = self.clusters >= low
        if high is not None:
            ok &= self.clusters <= high
        if self.subspace_mass is not None:
            ok &= self.subspace_mass >= 1.0 - mass_tol
        if self.result.geometry == "origin":
            ok = self.norm_ratio <= shrink
        return ok


def _pick_result(diag: HeadDiagnostics, setting: str | None) -> Result:
    result = diag.prediction(setting)
    if result is None:
        where = f" in the {setting} setting" if setting else ""
        raise ValueError(
            f"no theorem applies to head {diag.head}{where} (regime {diag.regime!r}); "
            "nothing to compare"
        )
    return result


def compare_prediction(
    operator: Any,
    x0: Any,
    *,
    t_end: float,
    head: int | None = None,
    setting: str | None = None,
    method: str = "rk4",
    dt: float = 0.01,
    delta: float = 1e-3,
    tol: float = 1e-6,
) -> Comparison:
    """Simulate one head and compare with the prediction of the theorem that applies.

    operator: an ``Operator`` with ``Projections`` heads; head: which query head (required
    when the layer has several: the theorems cover one head); setting: "sphere" or
    "euclidean" (None: the setting of the head's first applicable theorem); x0: tokens
    (batch, n, d) or (n, d), projected onto the sphere for the sphere setting.
    """
    if setting is not None and setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    if not (math.isfinite(t_end) and t_end > 0):
        raise ValueError(f"t_end must be a positive number, got {t_end!r}")
    n_heads = operator.heads.n_heads if hasattr(operator, "heads") else None
    diags = diagnose(operator, tol=tol)
    if head is None:
        if n_heads != 1:
            raise ValueError(f"the layer has {n_heads} heads: pass head= (theorems cover one "
                             "head)")
        head = 0
    if not 0 <= head < len(diags):
        raise ValueError(f"head must lie in [0, {len(diags)}), got {head}")
    diag = diags[head]
    result = _pick_result(diag, setting)
    one = operator if n_heads == 1 else head_operator(operator, head)
    x = np.asarray(to_numpy(x0), dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != diag.d:
        raise ValueError(f"x0 must have shape (batch, n, {diag.d}), got {x.shape}")
    if result.setting == "sphere":
        x = x / np.linalg.norm(x, axis=-1, keepdims=True)
        field = sphere_flow(one)
    else:
        field = euclidean_flow(one)
    traj = simulate(field, x, np.array([0.0, float(t_end)]), method=method, dt=dt)
    final = np.asarray(to_numpy(traj.final), dtype=np.float64)
    norms = np.linalg.norm(final, axis=-1, keepdims=True)
    u = final / np.where(norms > 0, norms, 1.0)
    mass = None
    if result.basis is not None:
        proj = u @ result.basis
        mass = np.mean(np.sum(proj * proj, axis=-1), axis=-1)
    clusters = np.asarray(cluster_count(u, delta))
    ratio = np.max(norms[..., 0], axis=-1) / np.max(np.linalg.norm(x, axis=-1), axis=-1)
    return Comparison(diag, result, result.setting, float(t_end), float(delta), final, u,
                      mass, clusters, ratio)


def plot_value_spectra(
    diagnostics_by_layer: Sequence[Sequence[HeadDiagnostics]],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Heat maps, layers (rows) x heads (columns), of one model; writes ``path`` (format
    from its suffix, e.g. .png or .pdf) and returns it.

    Left: Re lambda_1(V), the largest real part of the eigenvalues of V_h = W_V W_O
    (diverging colours centred at 0: red heads amplify their leading direction, blue
    ones contract). Middle: the dominance ratio |lambda|_(1)/|lambda|_(2) (log colour
    scale; large means one direction takes over, the regime of 2305.05465 Thm 4.1).
    Right: the asymmetry |anti(B)|_F/|B|_F of B_h = W_Q W_K^T/sqrt(d_h) (0: symmetric, as
    the gradient-flow structure of 2312.10794 §3.4 needs). Cells carry the head's regime:
    I identity, G gradient flow, S simple leading eigenvalue, P paranormal, N V = -I,
    1 one-dimensional (blank: none applies).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, TwoSlopeNorm
    from matplotlib.ticker import FormatStrFormatter

    layers = [list(row) for row in diagnostics_by_layer]
    if not layers or not any(layers):
        raise ValueError("no diagnostics to plot: give one list of heads per layer")
    lead = layer_grid(layers, "leading_real")
    ratio = layer_grid(layers, "dominance_ratio")
    asym = layer_grid(layers, "antisymmetric_fraction")
    L, H = lead.shape
    marks = [[REGIME_MARKS.get(d.regime, "?") for d in row] + [""] * (H - len(row))
             for row in layers]

    width = max(3.2, 0.35 * H + 1.8)
    height = max(2.6, 0.3 * L + 1.4)
    fig, axes = plt.subplots(1, 3, figsize=(3 * width, height), constrained_layout=True)

    finite = lead[np.isfinite(lead)]
    span = float(np.max(np.abs(finite))) if finite.size else 1.0
    span = span if span > 0 else 1.0
    r = np.where(np.isfinite(ratio), ratio, np.nan)
    r_ok = r[np.isfinite(r) & (r > 0)]
    lo, hi = (float(r_ok.min()), float(r_ok.max())) if r_ok.size else (1.0, 10.0)
    hi = hi if hi > lo else lo * 1.01 + 1e-12
    panels = [
        (lead, "RdBu_r", TwoSlopeNorm(0.0, -span, span), r"Re $\lambda_1(V)$",
         "leading value eigenvalue (real part)"),
        (r, "viridis", LogNorm(lo, hi), r"$|\lambda|_{(1)}/|\lambda|_{(2)}$",
         "dominance of the leading eigenvalue"),
        (asym, "magma", None, r"$\|\mathrm{anti}(B)\|_F/\|B\|_F$",
         r"asymmetry of $B = W_Q W_K^\top/\sqrt{d_h}$"),
    ]
    for ax, (grid, cmap, norm, clabel, name) in zip(axes, panels, strict=True):
        kwargs = {"vmin": 0.0, "vmax": 1.0} if norm is None else {"norm": norm}
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto",
                       interpolation="nearest", origin="upper", **kwargs)
        bar = fig.colorbar(im, ax=ax, label=clabel, shrink=0.9)
        if isinstance(norm, LogNorm):
            bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            bar.ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(H) if H <= 32 else np.linspace(0, H - 1, 9).astype(int))
        ax.set_yticks(range(L) if L <= 32 else np.linspace(0, L - 1, 9).astype(int))
        if L * H <= 400:
            for i in range(L):
                for j in range(H):
                    if marks[i][j]:
                        ax.text(j, i, marks[i][j], ha="center", va="center", fontsize=7,
                                color="black",
                                bbox={"boxstyle": "round,pad=0.1", "fc": "white",
                                      "ec": "none", "alpha": 0.6})
    fig.suptitle(title or "Value and query-key spectra per layer and head", fontsize=11)
    fig.supxlabel("regime marks: I  V = cI (2312.10794 / 2305.05465 Thm 3.1),  G  gradient "
                  "flow (2312.10794 §3.4),  S  simple leading eigenvalue (2305.05465 Thm 4.1),"
                  "  P  paranormal (Thm 5.1),  N  V = -cI (Thm C.5),  1  d = 1;  blank: none",
                  fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


# -- the command: python -m experiments diagnose --model PATH_OR_NAME ------------------------


def add_arguments(parser: Any) -> None:
    parser.add_argument("--model", required=True, metavar="PATH_OR_NAME",
                        help="a local Hugging Face model (directory or cached name; "
                             "safetensors only, nothing downloaded)")
    parser.add_argument("--out", default="figures", metavar="DIR",
                        help="where to write diagnostics_<model>.png/.pdf/.json")


def model_diagnostics(model: Any) -> list[list[HeadDiagnostics]]:
    """The per-head diagnostics of every attention layer of a Hugging Face model."""
    from attention.importers import network_from_model

    network = network_from_model(model)
    return [diagnose(block.attention.map, layer=k) for k, block in enumerate(network.blocks)]


def summary(layers: Sequence[Sequence[HeadDiagnostics]]) -> dict[str, Any]:
    """JSON-ready numbers per layer and head: regime, effective beta, Re lambda_1(V),
    dominance ratio and asymmetry of B; plus the count of heads per regime."""
    rows = [[{"regime": d.regime, "effective_beta": d.effective_beta,
              "leading_real": float(d.leading_eigenvalue.real),
              "dominance_ratio": d.dominance_ratio,
              "antisymmetric_fraction": d.antisymmetric_fraction} for d in row]
            for row in layers]
    counts: dict[str, int] = {}
    for row in layers:
        for d in row:
            counts[d.regime] = counts.get(d.regime, 0) + 1
    return {"heads": rows, "regime_counts": counts}


def run(args: Any) -> int:
    import json
    import sys

    from attention.importers import load_model

    try:
        model = load_model(args.model)
        layers = model_diagnostics(model)
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    name = Path(str(args.model)).name or str(args.model)
    out = Path(args.out)
    title = f"{name} ({model.config.model_type}): value and query-key spectra per head"
    png = plot_value_spectra(layers, out / f"diagnostics_{name}.png", title=title)
    plot_value_spectra(layers, out / f"diagnostics_{name}.pdf", title=title)
    record = {"model": str(args.model), "model_type": model.config.model_type,
              **summary(layers)}
    (out / f"diagnostics_{name}.json").write_text(json.dumps(record, indent=1, default=float))
    print(f"figure: {png}")
    for regime, count in sorted(record["regime_counts"].items()):
        print(f"  {count:4d} heads: {regime}")
    return 0
