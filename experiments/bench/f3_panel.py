"""Benchmark ``f3-panel``: F3's d = 1024 panel at full size, ours against the authors' dense scheme.

    python -m experiments bench --suite f3-panel [--betas 0.1 4.5 9] [--steps 10] [--json PATH]

The panel: n = 32, d = 1024, 2048 uniform random starts for each of 90 betas in
[0.1, 9], the authors' step x <- normalize(x + h softmax(beta x x^T) x) with h = 0.1 up
to t = 30 (300 steps), the statistic P recorded every 0.2 (151 checkpoints), float64.

* **baseline** - the authors' loop, written here from scratch in numpy: per beta, draw
  (2048, 32, 1024) Gaussian tokens and normalise them, then step the dense arrays (two
  buffers, in-place updates), counting the clustered pairs from the step's own Gram
  matrix. Its cost per step does not depend on beta or t (dense arithmetic), so it is
  timed for ``--steps`` steps (after a warm-up step) at a few betas and extrapolated to
  90 x (draw + 300 steps).
* **ours** - the ``phase-diagram`` study of F3 (the full-size CPU grid of
  ``paper_repro.f3_phase_diagrams``, written out in ``panel_config``; faithful scheme,
  d = 1024 only): ``experiments.runner.compute_chunk`` of whole work chunks, each a full
  300-step run of 32 seeds x 5 betas on the Gram matrix alone (with Q = K = V = I the
  scheme closes on G = X X^T, ``dynamics.gram_space``: two 32 x 32 products per step
  whatever d is, and the statistic is read off G); chunks at the low, middle and high end
  of the beta range are timed (after one untimed chunk) and the mean extrapolated to the
  panel's 1152 chunks.

Both run on one core (``--threads``, default 1, is fixed before numpy loads: its BLAS reads
it once) and are timed in process CPU seconds (``time.process_time``), which other jobs on a
shared machine disturb far less than wall-clock time. The result prints as Markdown and,
with ``--json``, as a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from experiments.chunks import Layout
from experiments.config import parse_config
from experiments.runner import compute_chunk

N, D, DELTA, BATCH, H, T = 32, 1024, 1e-3, 2048, 0.1, 30.0
BETAS = tuple(float(b) for b in np.round(np.linspace(0.1, 9.0, 90), 12))
RECORD_EVERY = 2  # steps between checkpoints (t every 0.2)
SEED_CHUNK, BETA_CHUNK = 32, 5  # a work chunk of the F3 study on the CPU: 32 seeds x 5 betas


def panel_config(seed: int = 0):
    """The F3 study's d = 1024 panel: full size, authors' scheme, float64 on the CPU."""
    times = np.round(np.arange(round(T / (RECORD_EVERY * H)) + 1) * RECORD_EVERY * H, 10)
    return parse_config({
        "study": "phase-diagram", "seed": seed, "field": {"kind": "sa"},
        "grid": {"n": [N], "d": [D], "beta": list(BETAS), "beta_chunk": BETA_CHUNK},
        "seeds": {"count": BATCH, "chunk": SEED_CHUNK},
        "integrator": {"method": "authors", "dt": H},
        "compute": {"backend": "numpy", "dtype": "float64"},
        "phase": {"delta": DELTA, "times": [float(t) for t in times]},
    })


# -- the authors' dense loop, from scratch ----------------------------------------------------


def draw_tokens(gen: np.random.Generator, batch: int = BATCH, n: int = N, d: int = D) -> np.ndarray:
    """normalize(randn(batch, n, d)), as the authors' code draws its starts."""
    x = gen.standard_normal((batch, n, d))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x


def dense_step(x: np.ndarray, beta: float, h: float = H,
               out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One authors' step on dense tokens (batch, n, d); returns (new x, Gram of the old x).

    Written as a careful numpy user would: the (batch, n, n) softmax in place, the
    (batch, n, d) update into ``out`` (a second buffer, so a loop allocates nothing large)
    and the row norms by einsum without a squared copy.
    """
    gram = x @ np.swapaxes(x, -1, -2)
    weights = beta * gram
    weights -= weights.max(axis=-1, keepdims=True)
    np.exp(weights, out=weights)
    weights /= weights.sum(axis=-1, keepdims=True)
    y = np.matmul(weights, x, out=out)
    y *= h
    y += x
    y /= np.sqrt(np.einsum("...i,...i->...", y, y))[..., None]
    return y, gram


def clustered_fraction(gram: np.ndarray, delta: float = DELTA) -> float:
    """The F3 statistic of one batch: mean over members and pairs i != j."""
    n = gram.shape[-1]
    return float(((gram >= 1 - delta).sum(axis=(-2, -1)) - n).mean() / (n * (n - 1)))


def time_baseline(betas: list[float], steps: int, seed: int = 0) -> dict:
    """Seconds of one draw and of one step (mean over ``steps`` steps per beta)."""
    gen = np.random.default_rng(seed)
    per_step, draws = [], []
    for beta in betas:
        start = time.process_time()
        x = draw_tokens(gen)
        draws.append(time.process_time() - start)
        spare = np.empty_like(x)
        spare, _ = dense_step(x, beta, out=spare)  # warm-up
        x, spare = spare, x
        start = time.process_time()
        for k in range(steps):
            spare, gram = dense_step(x, beta, out=spare)
            x, spare = spare, x
            if k % RECORD_EVERY == 0:
                clustered_fraction(gram)
        per_step.append((time.process_time() - start) / steps)
    draw, step = float(np.mean(draws)), float(np.mean(per_step))
    total_steps = round(T / H)
    return {"betas": betas, "steps_timed": steps, "draw_s": draws, "step_s": per_step,
            "panel_s": len(BETAS) * (draw + total_steps * step),
            "panel_steps_only_s": len(BETAS) * total_steps * step}


# -- ours: whole chunks of the F3 study ---------------------------------------------------------


def time_ours(beta_blocks: list[int]) -> dict:
    """Seconds of ``compute_chunk`` for the first seed block and the given beta blocks."""
    config = panel_config()
    layout = Layout.of(config)
    compute_chunk(config, layout.count - 1)  # warm-up: lazy imports, first allocations
    seconds, betas = [], []
    for block in beta_blocks:
        index = int(np.ravel_multi_index((0, 0, 0, block), layout.shape))
        chunk = layout.chunk(index)
        betas.append([float(b) for b in np.asarray(config.grid.beta)[chunk.betas]])
        start = time.process_time()
        compute_chunk(config, index)
        seconds.append(time.process_time() - start)
    return {"chunks": layout.count, "members_per_chunk": SEED_CHUNK * BETA_CHUNK,
            "betas": betas, "chunk_s": seconds,
            "panel_s": layout.count * float(np.mean(seconds))}


def report(baseline: dict, ours: dict) -> str:
    ratio = baseline["panel_s"] / ours["panel_s"]
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    return "\n".join([
        f"CPU seconds of one process; F3 d = {D} panel (n = {N}, batch {BATCH} x "
        f"{len(BETAS)} betas, 300 steps, h = {H}, float64), "
        f"{platform.processor() or platform.machine()}, OMP_NUM_THREADS={threads}",
        "",
        "| | measured | extrapolated to the panel |",
        "|---|---|---|",
        f"| authors' dense loop (numpy) | {np.mean(baseline['step_s']):.3f} s/step "
        f"(betas {', '.join(f'{b:g}' for b in baseline['betas'])}, {baseline['steps_timed']} "
        f"steps each), draw {np.mean(baseline['draw_s']):.2f} s/beta | "
        f"{baseline['panel_s']:.0f} s ({baseline['panel_s'] / 3600:.2f} h) |",
        f"| ours: F3 study, Gram-space scheme | {np.mean(ours['chunk_s']):.2f} s/chunk of "
        f"{ours['members_per_chunk']} runs x 300 steps ({len(ours['chunk_s'])} chunks) | "
        f"{ours['panel_s']:.0f} s ({ours['panel_s'] / 60:.1f} min) for {ours['chunks']} "
        "chunks |",
        f"| speed-up | | **{ratio:.1f}x** |",
    ])


def run(args: argparse.Namespace) -> int:
    """Time both (threads already fixed by the command line); print the table; 0."""
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: OMP_NUM_THREADS is not 1; BLAS may use several cores", file=sys.stderr)
    ours = time_ours(args.blocks)
    baseline = time_baseline(args.betas, args.steps)
    text = report(baseline, ours)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"baseline": baseline, "ours": ours,
                                               "speedup": baseline["panel_s"] / ours["panel_s"],
                                               "markdown": text}, indent=1))
    return 0
