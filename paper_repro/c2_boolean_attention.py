"""C2 - Boolean attention in d = 1 (2305.05465, Thm 2.1; the authors' ``lowrank-attention.py``).

Pure self-attention x_i' = sum_j P_ij V x_j on the line (d = 1) with V > 0 and QK > 0 (here
V = Q = K = 1), P_ij = e^{x_i x_j} / sum_k e^{x_i x_k}, from distinct tokens. Thm 2.1: P(t)
converges to a matrix whose rows are all e_a or e_b except at most one, which is a
probability vector; so rank P <= 3, and for almost every start the rank is 1 or 2. The
"leaders" a and b are the largest and the smallest token: a token x_i > 0 attends to the
largest x_j, a token x_i < 0 to the smallest, since P_ij grows like e^{x_i x_j}.

The tokens are integrated in the rescaled form z = e^{-t} x (9.3); the attention matrix is
that of x = e^t z. The figure shows P(t) as a heat map (Blues) at three times with its
numerical rank in the title, and checks the limit on many random starts.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from attention.reference import attention_weights
from dynamics import PureSelfAttention, RescaledSelfAttention, from_rescaled, uniform_box
from paper_repro.plotting import quick_note
from paper_repro.registry import Check, FigureRequest, dataset, parameters, register, save_figure
from paper_repro.schemes import describe, integrate, time_grid

N, T = 20, 12.0
SNAPSHOTS = (0.0, 4.0, 12.0)
ROW_TOL = 1e-6


def attention_matrix(t: float, z: np.ndarray) -> np.ndarray:
    """P(t) (batch, n, n) for rescaled tokens z (batch, n, 1): softmax of x_i x_j, x = e^t z."""
    x = np.asarray(from_rescaled(t, z, None))
    return np.asarray(attention_weights(x, x, 1.0))


def boolean_structure(p: np.ndarray, tokens: np.ndarray) -> dict[str, object]:
    """How close P (n, n) is to the limit of Thm 2.1, for the tokens (n,) it was computed from.

    leaders: the columns a row concentrates on (max entry > 1 - ROW_TOL); exceptional: the
    rows that are not such a basis vector; the leaders are compared with argmax/argmin;
    rank: numpy's numerical rank (tolerance largest singular value * n * eps).
    """
    peaked = p.max(axis=1) > 1 - ROW_TOL
    leaders = sorted({int(j) for j in np.argmax(p, axis=1)[peaked]})
    return {"leaders": leaders, "exceptional_rows": int((~peaked).sum()),
            "rank": int(np.linalg.matrix_rank(p)),
            "extremes": sorted({int(np.argmax(tokens)), int(np.argmin(tokens))})}


def _run(seed: int, batch: int, scheme: str, times: np.ndarray) -> np.ndarray:
    z0 = uniform_box(seed, batch, N, 1, 1.0)
    field = RescaledSelfAttention(PureSelfAttention(1.0))
    return np.asarray(integrate(field, z0, times, scheme, faithful="rk4").states)


def compute(request: FigureRequest):
    """The drawn start's rescaled tokens z (time, token) and the final z of many starts."""
    z = _run(request.seed, 1, request.scheme, time_grid(T))[0, :, :, 0]
    seeds = request.pick(64, 256, tiny=16)
    finals = _run(request.seed + 1, seeds, request.scheme, np.array(SNAPSHOTS))[:, -1, :, 0]
    return dataset({"z": (("time", "token"), z, {"long_name": "rescaled token z = e^-t x"}),
                    "z_final": (("start", "token"), finals, {"long_name": f"z at t = {T:g}"})},
                   {"time": time_grid(T)}, n=N, d=1, T=T, V=1, QK=1, x0="U[-1, 1]",
                   row_tolerance=ROW_TOL, seeds=seeds,
                   integrator=describe(request.scheme, faithful="rk4"))


@register("C2", "Boolean attention in d = 1: P(t) becomes rows e_a / e_b (2305.05465 Thm 2.1)",
          compute)
def draw(ds, request: FigureRequest):
    z, grid = ds["z"].values[..., None], ds["time"].values
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9))
    shown = {}
    for ax, t in zip(axes, SNAPSHOTS, strict=True):
        k = int(np.searchsorted(grid, t))
        p = attention_matrix(t, z[k][None])[0]
        rank = int(np.linalg.matrix_rank(p))
        image = ax.matshow(p, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"$t = {t:g}$:  rank = {rank}", fontsize=10)
        ax.tick_params(labelsize=7)
        shown[f"t={t:g}"] = {"P": p, "rank": rank}
    fig.colorbar(image, ax=axes, shrink=0.8)
    final = boolean_structure(shown[f"t={T:g}"]["P"], z[-1, :, 0])
    finals = ds["z_final"].values[..., None]
    seeds = len(finals)
    many = [boolean_structure(p, zz[:, 0])
            for p, zz in zip(attention_matrix(T, finals), finals, strict=True)]
    ranks = np.array([m["rank"] for m in many])
    exceptional = np.array([m["exceptional_rows"] for m in many])
    leaders_ok = np.mean([set(m["leaders"]) <= set(m["extremes"]) for m in many])
    quick_note(fig, request, f"limit checked on {seeds} starts (full: 256)")
    fig.suptitle(f"C2 - attention matrix P(t), d = 1, n = {N}, V = Q = K = 1 "
                 f"({describe(request.scheme, faithful='rk4')})", fontsize=10)
    data = {"parameters": parameters(ds), "shown": shown, "shown_limit": final,
            "seeds_rank": ranks, "seeds_exceptional_rows": exceptional}
    counts = {int(r): int((ranks == r).sum()) for r in np.unique(ranks)}
    checks = [
        Check(f"C2: largest rank of P(T) over {seeds} starts", int(ranks.max()), 3, "<=",
              f"Thm 2.1; rank distribution {counts}; drawn start: rank {final['rank']}, "
              f"leaders {final['leaders']} (extremes {final['extremes']})"),
        Check("C2: most rows of P(T) that are not e_a or e_b, per start",
              int(exceptional.max()), 1, "<=",
              f"leaders = largest/smallest token in {leaders_ok:.0%} of starts"),
    ]
    return save_figure(fig, request, "C2_boolean_attention", data, checks), checks
