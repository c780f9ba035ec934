"""V1 - does compressing the KV cache change how fast tokens cluster?

The same n = 32 tokens of S^15 flow under ten causal attention variants with coupled random
weights of one stated ensemble (``attention.variant_flows``: Gaussian query/key maps,
tied positive semidefinite value-output circuits with E[sum_h W_V W_O^h] = I). Panel (a):
median number of delta-clusters over time; (b) clustering time against the KV cache a
decoder keeps per token; (c) distance of each flow to full attention (MHA, same weights).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from attention.variant_flows import VariantFlowsConfig, variant_flows
from paper_repro.registry import FigureReport, FigureRequest, register, save_figure

COLORS = {
    "mha": "#000000", "gqa": "#3658bf", "mqa": "#1f9bd1", "mfa": "#7b3fb5", "mfa_kr": "#c04fc0",
    "ansan": "#d1741f", "prflash-geometric": "#2e8b57", "prflash-harmonic": "#64b464",
    "prflash-window": "#9acd32", "dma": "#c0392b",
}
COMPRESSED = ("gqa", "mqa", "mfa", "mfa_kr")
SPARSIFIED = ("ansan", "prflash-geometric", "prflash-harmonic", "prflash-window", "dma")


def _config(request: FigureRequest) -> VariantFlowsConfig:
    if request.quick:
        return VariantFlowsConfig(members=16, horizon=10.0, seed=request.seed)
    return VariantFlowsConfig(n=64, d=32, heads=8, members=64, horizon=30.0, anchor_every=16,
                              block=8, dma_window=16, seed=request.seed)


def _median_time(ct: np.ndarray) -> float:
    return float(np.nanmedian(ct)) if np.isfinite(ct).any() else float("nan")


@register("V1", "does compressing the KV cache change how fast tokens cluster?")
def figure_v1(request: FigureRequest) -> FigureReport:
    cfg = _config(request)
    result = variant_flows(cfg)
    times, names = result["times"], list(result["variants"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ax = axes[0]
    for v, name in enumerate(names):
        style = "-" if name in ("mha", *COMPRESSED) else "--"
        ax.plot(times, np.median(result["cluster_count"][v], axis=0), style,
                color=COLORS[name], label=name, linewidth=1.3)
    ax.set_yscale("log")
    ax.set_xlabel("$t$ (depth)")
    ax.set_ylabel(f"median number of clusters ($\\delta$ = {cfg.delta:g})")
    ax.set_title("(a) clusters over depth")
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    medians = {}
    kv = result["kv_per_token"]
    for v, name in enumerate(names):
        ct = result["clustering_time"][v]
        med = _median_time(ct)
        medians[name] = med
        lo, hi = np.nanpercentile(ct, [25, 75]) if np.isfinite(ct).any() else (np.nan, np.nan)
        marker = "o" if name in ("mha", *COMPRESSED) else "s"
        same = np.nonzero(kv == kv[v])[0]
        rank = int(np.searchsorted(same, v))
        x = kv[v] * 2 ** (0.07 * (rank - (same.size - 1) / 2))
        ax.errorbar(x, med, yerr=[[med - lo], [hi - med]], fmt=marker, color=COLORS[name],
                    capsize=3)
        right = rank >= same.size / 2
        ax.annotate(name, (x, med), fontsize=7, xytext=(4 if right else -4, 3),
                    textcoords="offset points", ha="left" if right else "right")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("KV cache kept per token (elements, per layer)")
    ax.set_ylabel("clustering time (median, IQR)")
    ax.set_title("(b) o: fewer KV heads    s: fewer visible keys")
    ax = axes[2]
    for v, name in enumerate(names):
        if name == "mha":
            continue
        ax.plot(times, result["distance"][v].mean(axis=0), color=COLORS[name], label=name)
    ax.set_xlabel("$t$ (depth)")
    ax.set_ylabel("mean angle to the MHA flow (rad)")
    ax.set_title("(c) distance to full attention")
    fig.suptitle(
        f"V1 - {cfg.members} draws, n = {cfg.n}, d = {cfg.d}, {cfg.heads} heads, causal, "
        f"{cfg.method} dt = {cfg.dt:g}", fontsize=10,
    )
    fig.tight_layout()
    data = {
        "parameters": result["config"],
        "variants": names,
        "kv_elements": result["kv_elements"],
        "kv_per_token": result["kv_per_token"],
        "clustering_time": result["clustering_time"],
        "median_clustering_time": medians,
    }
    files = save_figure(fig, request, "variant_flows", data)
    plt.close(fig)
    base = medians["mha"]
    ct = result["clustering_time"]
    mha = ct[names.index("mha")]

    def paired(name: str) -> str:
        """In how many draws (same tokens, coupled weights) the variant beat MHA."""
        return f"{name} {int(np.sum(ct[names.index(name)] < mha))}/{mha.size}"

    faster = [paired(n) for n in COMPRESSED if n in medians and medians[n] < base]
    slower = [paired(n) for n in SPARSIFIED if n in medians and medians[n] > base]
    checks = [
        "V1: median clustering time " + ", ".join(f"{n} {t:.2f}" for n, t in medians.items()),
        f"V1: fewer KV heads cluster faster than MHA ({base:.2f}; draws faster than MHA): "
        f"{faster or 'none'}",
        f"V1: fewer visible keys cluster slower than MHA (draws faster than MHA): "
        f"{slower or 'none'}",
    ]
    return FigureReport("V1", files, checks)
