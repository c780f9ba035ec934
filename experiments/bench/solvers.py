"""``python -m experiments bench --suite solvers``: clustering times of many seeds, the package
against the ODE solvers a researcher would otherwise pick.

The workload of a clustering-time study: S seeds of n tokens drawn uniformly on S^{d-1}
(or angles on the circle), each integrated with an embedded Runge-Kutta 5(4) pair (Dopri5)
at rtol / atol from t = 0 until every pair of tokens is within 1 - delta
(min_{i != j} <x_i, x_j> >= 1 - delta, on the circle min cos(theta_i - theta_j) >= 1 - delta)
or the horizon; the answer is the clustering time of every seed (NaN if it did not cluster).
Contenders, each written the way its users write it:

* ``engine``        - ``dynamics.simulate(SA(beta), x0, [0, T], stop_when_clustered=delta)``
                      on the whole batch: the compiled engine (``dynamics.compiled``);
* ``native``        - the same call with ``engine="native"``: the package's numpy reference
                      (batched, lockstep), for scale only - no ratio is taken against it;
* ``diffrax-vmap``  - diffrax ``Dopri5`` + ``PIDController`` with an ``Event`` located by
                      optimistix Newton, ``jax.jit(jax.vmap(solve))`` over the batch
                      (float64); its first call (trace + compile + run) is reported apart;
* ``diffrax-loop``  - the same solve jit-compiled for one seed, called in a Python loop;
* ``torchode``      - torchode ``Dopri5`` + ``IntegralController``, batched with per-seed step
                      sizes. It has no events: it runs in segments of ``SEGMENT`` time units
                      with outputs every ``SEGMENT / SEGMENT_POINTS``, and a seed's time is
                      where the linear interpolation of the gap between outputs crosses 0;
* ``scipy``         - ``scipy.integrate.solve_ivp(method="RK45")`` with a terminal event,
                      one seed per call;
* ``torchdiffeq``   - ``torchdiffeq.odeint_event`` (dopri5) one seed per call, the event
                      max(gap, t - T) so that it also ends at the horizon;
* ``authors``       - the authors' scheme x <- normalize(x + h softmax(beta x x^T) x),
                      h = 0.1, batched in numpy; the first step at which the seed clustered.
                      Its times are off by O(h): reported with their error, not checked.

All vector fields are the same ODE: the tangent part of softmax(beta <x_i, x_j>)_j x_j (no
retraction in the general solvers: the flow keeps |x_i| = 1 up to the tolerance).

Before anything is timed, every checked contender's clustering times are compared with the
engine's on the seeds it ran: the censoring must be the same and the times agree within
``AGREEMENT`` = 1e-3 relative (|t - t_engine| <= 1e-3 max(1, t_engine)); otherwise the run
stops (exit 1). Then ``--repeats`` rounds are timed,
the contenders interleaved round by round (a load change hits all alike). Loop contenders
(one seed per call) run the first ``--loop-seeds`` seeds; batched ones all S seeds; the rates
are seeds per second. Ratios are the engine's rate over each contender's (median rounds).
Reported beside them: each contender's first call (compilation included), accepted steps
per seed, the load average before and after, and the fraction of the machine's limit: the
right-hand sides the engine evaluated, each at least n(n-1)/2 exponentials (the symmetric
weights) and 4 n^2 d flops, at the exp and GEMM rates measured here on one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

AGREEMENT = 1e-3
SEGMENT, SEGMENT_POINTS = 2.0, 200
AUTHORS_H = 0.1


@dataclass(frozen=True)
class Problem:
    """``seeds`` seeds of ``n`` tokens on S^{d-1} ("sa") or on the circle ("circle", d = 2)."""

    field: str
    n: int
    d: int
    seeds: int
    beta: float = 1.0
    delta: float = 1e-3
    horizon: float = 100.0
    rtol: float = 1e-6
    atol: float = 1e-9

    @property
    def label(self) -> str:
        where = "circle" if self.field == "circle" else f"d={self.d}"
        return f"{self.field} n={self.n} {where} beta={self.beta:g}"

    def initial(self, seed: int) -> np.ndarray:
        """(seeds, n, d) uniform on the sphere, or (seeds, n) uniform angles."""
        rng = np.random.default_rng(seed)
        if self.field == "circle":
            return rng.uniform(-np.pi, np.pi, (self.seeds, self.n))
        x = rng.standard_normal((self.seeds, self.n, self.d))
        return x / np.linalg.norm(x, axis=-1, keepdims=True)


PROBLEMS = (Problem("sa", 32, 3, 1024), Problem("sa", 128, 16, 256),
            Problem("circle", 64, 2, 256))
QUICK = (Problem("sa", 32, 3, 64), Problem("sa", 128, 16, 16), Problem("circle", 64, 2, 64))


@dataclass(frozen=True)
class Contender:
    """``prepare(problem)`` returns ``solve(x0) -> (times (S,), accepted steps (S,) or None)``."""

    name: str
    batched: bool
    checked: bool
    prepare: Callable[[Problem], Callable[[np.ndarray], tuple[np.ndarray, Any]]]
    needs: str | None = None  # the module that must import


# -- the package ----------------------------------------------------------------------------


def _package(engine: str):
    def prepare(p: Problem):
        from dynamics import SA, CircleSA, simulate

        field = CircleSA(p.beta) if p.field == "circle" else SA(p.beta)

        def solve(x0: np.ndarray):
            traj = simulate(field, x0, [0.0, p.horizon], method="dopri5", rtol=p.rtol,
                            atol=p.atol, stop_when_clustered=p.delta, engine=engine)
            return np.asarray(traj.cluster_time), np.asarray(traj.accepted_steps)

        return solve

    return prepare


# -- JAX / diffrax ----------------------------------------------------------------------------


def _jax_problem(p: Problem):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    off_diagonal = ~jnp.eye(p.n, dtype=bool)

    if p.field == "circle":
        def field(t, theta, args):
            diff = theta[None, :] - theta[:, None]  # theta_j - theta_i
            w = jax.nn.softmax(p.beta * jnp.cos(diff), axis=-1)
            return jnp.sum(w * jnp.sin(diff), axis=-1)

        def gap(theta):
            c = jnp.cos(theta[None, :] - theta[:, None])
            return jnp.min(jnp.where(off_diagonal, c, 1.0)) - (1.0 - p.delta)
    else:
        def field(t, x, args):
            v = jax.nn.softmax(p.beta * x @ x.T, axis=-1) @ x
            return v - jnp.sum(v * x, axis=-1, keepdims=True) * x

        def gap(x):
            return jnp.min(jnp.where(off_diagonal, x @ x.T, 1.0)) - (1.0 - p.delta)

    return field, gap


def _diffrax_solver(p: Problem):
    import diffrax
    import jax.numpy as jnp
    import optimistix

    field, gap = _jax_problem(p)
    event = diffrax.Event(lambda t, y, args, **kw: gap(y),
                          root_finder=optimistix.Newton(rtol=1e-10, atol=1e-10))

    def solve(x0):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Dopri5(), 0.0, p.horizon, None, x0,
            stepsize_controller=diffrax.PIDController(rtol=p.rtol, atol=p.atol),
            event=event, max_steps=100_000, saveat=diffrax.SaveAt(t1=True))
        hit = sol.event_mask
        return jnp.where(hit, sol.ts[-1], jnp.nan), sol.stats["num_accepted_steps"]

    return solve


def _diffrax_vmap(p: Problem):
    import jax

    run = jax.jit(jax.vmap(_diffrax_solver(p)))

    def solve(x0):
        times, steps = run(x0)
        return np.asarray(times), np.asarray(steps)

    return solve


def _diffrax_loop(p: Problem):
    import jax

    run = jax.jit(_diffrax_solver(p))

    def solve(x0):
        out = [run(x) for x in x0]
        return (np.array([float(t) for t, _ in out]), np.array([int(s) for _, s in out]))

    return solve


# -- numpy / scipy ----------------------------------------------------------------------------


def _numpy_problem(p: Problem):
    """(velocity(flat state) -> flat velocity, gap(flat state)) of one seed."""
    off = ~np.eye(p.n, dtype=bool)
    if p.field == "circle":
        def velocity(t, theta):
            diff = theta[None, :] - theta[:, None]
            s = p.beta * np.cos(diff)
            w = np.exp(s - s.max(axis=-1, keepdims=True))
            return (w * np.sin(diff)).sum(-1) / w.sum(-1)

        def gap(theta):
            return np.cos(theta[None, :] - theta[:, None])[off].min() - (1.0 - p.delta)
    else:
        def velocity(t, flat):
            x = flat.reshape(p.n, p.d)
            s = p.beta * x @ x.T
            w = np.exp(s - s.max(axis=-1, keepdims=True))
            v = (w / w.sum(-1, keepdims=True)) @ x
            return (v - np.sum(v * x, -1, keepdims=True) * x).ravel()

        def gap(flat):
            x = flat.reshape(p.n, p.d)
            return (x @ x.T)[off].min() - (1.0 - p.delta)
    return velocity, gap


def _scipy(p: Problem):
    from scipy.integrate import solve_ivp

    velocity, gap = _numpy_problem(p)

    def event(t, y):
        return gap(y)

    event.terminal, event.direction = True, 1.0

    def solve(x0):
        times, steps = [], []
        for x in x0:
            sol = solve_ivp(velocity, (0.0, p.horizon), x.ravel(), method="RK45", rtol=p.rtol,
                            atol=p.atol, events=event)
            hit = sol.t_events[0]
            times.append(hit[0] if len(hit) else np.nan)
            steps.append(len(sol.t) - 1)
        return np.array(times), np.array(steps)

    return solve


def _authors(p: Problem):
    h, count = AUTHORS_H, round(p.horizon / AUTHORS_H)

    def solve(x0):
        x = np.array(x0, dtype=np.float64)
        times = np.full(len(x), np.nan)
        off = ~np.eye(p.n, dtype=bool)
        for k in range(1, count + 1):
            if p.field == "circle":
                diff = x[:, None, :] - x[:, :, None]
                w = np.exp(p.beta * np.cos(diff))
                x = x + h * (w * np.sin(diff)).sum(-1) / w.sum(-1)
                g = np.cos(x[:, None, :] - x[:, :, None])
            else:
                w = np.exp(p.beta * x @ x.transpose(0, 2, 1))
                x = x + h * (w / w.sum(-1, keepdims=True)) @ x
                x /= np.linalg.norm(x, axis=-1, keepdims=True)
                g = x @ x.transpose(0, 2, 1)
            clustered = g[:, off].min(-1) >= 1.0 - p.delta
            times[np.isnan(times) & clustered] = k * h
            if not np.isnan(times).any():
                break
        return times, None

    return solve


# -- torch ------------------------------------------------------------------------------------


def _torch_problem(p: Problem):
    """(velocity(t, y (B, n*d)) -> (B, n*d), gap(y (..., n*d)) -> (...)) in torch."""
    import torch

    off = ~torch.eye(p.n, dtype=torch.bool)

    if p.field == "circle":
        def velocity(t, theta):
            diff = theta[..., None, :] - theta[..., :, None]
            w = torch.softmax(p.beta * torch.cos(diff), dim=-1)
            return (w * torch.sin(diff)).sum(-1)

        def gap(theta):
            c = torch.cos(theta[..., None, :] - theta[..., :, None])
            return torch.where(off, c, 1.0).amin((-2, -1)) - (1.0 - p.delta)
    else:
        def velocity(t, flat):
            x = flat.reshape(*flat.shape[:-1], p.n, p.d)
            v = torch.softmax(p.beta * x @ x.transpose(-1, -2), dim=-1) @ x
            return (v - (v * x).sum(-1, keepdim=True) * x).reshape(flat.shape)

        def gap(flat):
            x = flat.reshape(*flat.shape[:-1], p.n, p.d)
            g = x @ x.transpose(-1, -2)
            return torch.where(off, g, 1.0).amin((-2, -1)) - (1.0 - p.delta)
    return velocity, gap


def _torchode(p: Problem):
    import torch
    import torchode

    velocity, gap = _torch_problem(p)
    term = torchode.ODETerm(velocity)
    solver = torchode.AutoDiffAdjoint(
        torchode.Dopri5(term=term), torchode.IntegralController(atol=p.atol, rtol=p.rtol,
                                                                term=term))
    grid = torch.linspace(0.0, SEGMENT, SEGMENT_POINTS + 1, dtype=torch.float64)

    def solve(x0):
        y = torch.from_numpy(np.ascontiguousarray(x0.reshape(len(x0), -1)))
        times = np.full(len(x0), np.nan)
        steps = np.zeros(len(x0), dtype=np.int64)
        active = np.arange(len(x0))
        start = 0.0
        while len(active) and start < p.horizon - 1e-12:
            t_eval = (start + grid[: _points(start, p.horizon) + 1]).expand(len(active), -1)
            sol = solver.solve(torchode.InitialValueProblem(y0=y, t_eval=t_eval))
            steps[active] += sol.stats["n_accepted"].numpy()
            g = gap(sol.ys).numpy()  # (active, points)
            crossed = g >= 0.0
            hit = crossed.any(axis=1)
            first = crossed.argmax(axis=1)
            for row in np.flatnonzero(hit):
                j = first[row]
                ts = t_eval[row].numpy()
                if j == 0:
                    times[active[row]] = ts[0]
                else:  # linear interpolation of the gap between the two outputs
                    g0, g1 = g[row, j - 1], g[row, j]
                    times[active[row]] = ts[j - 1] + (ts[j] - ts[j - 1]) * g0 / (g0 - g1)
            y = sol.ys[~torch.from_numpy(hit), -1]
            active = active[~hit]
            start = float(t_eval[0, -1])
        return times, steps

    return solve


def _points(start: float, horizon: float) -> int:
    """Outputs in the segment from ``start`` (the last segment stops at the horizon)."""
    return min(SEGMENT_POINTS, round((horizon - start) / SEGMENT * SEGMENT_POINTS))


def _torchdiffeq(p: Problem):
    import torch
    from torchdiffeq import odeint_event

    velocity, gap = _torch_problem(p)
    horizon = torch.tensor(p.horizon, dtype=torch.float64)

    def event(t, y):
        return torch.maximum(gap(y), t - horizon)

    def solve(x0):
        times = []
        for x in x0:
            y0 = torch.from_numpy(np.ascontiguousarray(x.ravel()))
            t, _ = odeint_event(velocity, y0, torch.tensor(0.0, dtype=torch.float64),
                                event_fn=event, method="dopri5", rtol=p.rtol, atol=p.atol)
            t = float(t)
            times.append(t if t < p.horizon - 1e-9 else np.nan)
        return np.array(times), None

    return solve


CONTENDERS = (
    Contender("engine", True, True, _package("compiled")),
    Contender("native", True, True, _package("native")),
    Contender("diffrax-vmap", True, True, _diffrax_vmap, needs="diffrax"),
    Contender("diffrax-loop", False, True, _diffrax_loop, needs="diffrax"),
    Contender("torchode", True, True, _torchode, needs="torchode"),
    Contender("scipy", False, True, _scipy),
    Contender("torchdiffeq", False, True, _torchdiffeq, needs="torchdiffeq"),
    Contender("authors", True, False, _authors),
)
DEFAULT_PATHS = tuple(c.name for c in CONTENDERS)


def contender(name: str) -> Contender:
    """The contender called ``name``."""
    for c in CONTENDERS:
        if c.name == name:
            return c
    raise ValueError(f"no contender {name!r}; there are {DEFAULT_PATHS}")


# -- the machine's limit ----------------------------------------------------------------------


def machine_rates() -> dict[str, float]:
    """exp/s (numpy, 2^20 float64 entries) and GEMM GFLOP/s (numpy, 512 x 512), best of 5,
    on the threads fixed by the command line."""
    rng = np.random.default_rng(0)
    e = rng.uniform(-2.0, 0.0, 1 << 20)
    a, b = rng.standard_normal((2, 512, 512))

    def best(fn) -> float:
        fn()
        spans = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            spans.append(time.perf_counter() - start)
        return min(spans)

    return {"exp_per_s": e.size / best(lambda: np.exp(e)),
            "gemm_gflops": 2 * 512**3 / best(lambda: a @ b) / 1e9}


def limit_seconds(p: Problem, accepted_steps: np.ndarray, rates: dict[str, float]) -> float:
    """Lower bound on the engine's time: its right-hand sides (6 per Dopri5 step, FSAL; the
    rejected ones not counted), each n(n-1)/2 exponentials and 4 n^2 d flops."""
    evaluations = 6.0 * float(np.sum(accepted_steps))
    per_rhs = (p.n * (p.n - 1) / 2 / rates["exp_per_s"]
               + 4 * p.n * p.n * p.d / (rates["gemm_gflops"] * 1e9))
    return evaluations * per_rhs


# -- running ----------------------------------------------------------------------------------


class Disagreement(AssertionError):
    """A contender's clustering times differ from the engine's: nothing timed would mean much."""


def compare(name: str, times: np.ndarray, reference: np.ndarray) -> float:
    """Max |t - t_engine| over the seeds; raises ``Disagreement`` unless the censoring is
    the same and every |t - t_engine| <= AGREEMENT max(1, t_engine)."""
    censored, ref_censored = np.isnan(times), np.isnan(reference)
    if not np.array_equal(censored, ref_censored):
        rows = np.flatnonzero(censored != ref_censored)
        raise Disagreement(f"{name}: censored seeds differ from the engine's at {rows[:5]}")
    if censored.all():
        return 0.0
    t, ref = times[~censored], reference[~censored]
    excess = np.abs(t - ref) / np.maximum(1.0, np.abs(ref))
    if excess.max() > AGREEMENT:
        worst = int(np.argmax(excess))
        raise Disagreement(f"{name}: clustering time {t[worst]:.6g} against the engine's "
                           f"{ref[worst]:.6g}: relative difference {excess[worst]:.2g} > "
                           f"{AGREEMENT}")
    return float(np.max(np.abs(t - ref)))


def run_problem(p: Problem, names: tuple[str, ...], repeats: int, loop_seeds: int, seed: int,
                log: Callable[[str], None]) -> dict[str, Any]:
    """Check, then time every contender in ``names`` on problem ``p``; the results."""
    x0 = p.initial(seed)
    available = [c for c in CONTENDERS if c.name in names and _importable(c.needs)]
    missing = [c.name for c in CONTENDERS if c.name in names and not _importable(c.needs)]
    inputs = {c.name: x0 if c.batched else x0[:loop_seeds] for c in available}
    solvers, first, outputs, steps = {}, {}, {}, {}
    for c in available:  # first call: compile where there is a compiler, and the check
        start = time.perf_counter()
        solvers[c.name] = c.prepare(p)
        outputs[c.name], steps[c.name] = solvers[c.name](inputs[c.name])
        first[c.name] = time.perf_counter() - start
        log(f"  {c.name:>13}: first call {first[c.name]:8.2f} s ({len(inputs[c.name])} seeds)")
    reference = outputs["engine"]
    errors = {}
    for c in available:
        ref = reference[: len(outputs[c.name])]
        if c.checked:
            errors[c.name] = compare(c.name, outputs[c.name], ref)
        else:
            both = ~np.isnan(outputs[c.name]) & ~np.isnan(ref)
            errors[c.name] = float(np.max(np.abs(outputs[c.name][both] - ref[both]),
                                          initial=0.0))
    samples: dict[str, list[float]] = {c.name: [] for c in available}
    for r in range(repeats):  # interleaved rounds
        for c in available:
            time.sleep(0.1)
            start = time.perf_counter()
            solvers[c.name](inputs[c.name])
            samples[c.name].append(time.perf_counter() - start)
        log(f"  round {r + 1}/{repeats}: " + ", ".join(
            f"{k} {v[-1]:.2f} s" for k, v in samples.items()))
    rate = {k: len(inputs[k]) / statistics.median(v) for k, v in samples.items()}
    compile_rate = {k: len(inputs[k]) / first[k] for k in first}
    rates = machine_rates()
    limit = limit_seconds(p, steps["engine"], rates)
    engine_s = statistics.median(samples["engine"])
    return {
        "problem": asdict(p) | {"label": p.label},
        "missing": missing,
        "contenders": {
            k: {"seeds": len(inputs[k]), "median_s": statistics.median(samples[k]),
                "times_s": samples[k], "first_call_s": first[k], "seeds_per_s": rate[k],
                "engine_ratio": rate["engine"] / rate[k],
                "engine_ratio_first_call": compile_rate["engine"] / compile_rate[k],
                "max_time_difference": errors[k],
                "mean_accepted_steps": (None if steps[k] is None
                                        else float(np.mean(steps[k])))}
            for k in rate},
        "median_clustering_time": float(np.nanmedian(reference)) if not np.isnan(
            reference).all() else math.nan,
        "censored": int(np.isnan(reference).sum()),
        "limit_s": limit, "fraction_of_limit": limit / engine_s, "rates": rates,
    }


def _importable(module: str | None) -> bool:
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def render(results: list[dict[str, Any]]) -> str:
    """A markdown table: one row per (problem, contender)."""
    lines = ["| problem | contender | seeds | seeds/s | engine x | engine x (first calls) "
             "| first call s | steps/seed | max abs diff |",
             "|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for name, c in res["contenders"].items():
            steps = "" if c["mean_accepted_steps"] is None else f"{c['mean_accepted_steps']:.0f}"
            lines.append(
                f"| {res['problem']['label']} | {name} | {c['seeds']} | {c['seeds_per_s']:.1f} "
                f"| {c['engine_ratio']:.2f} | {c['engine_ratio_first_call']:.2f} "
                f"| {c['first_call_s']:.2f} | {steps} | {c['max_time_difference']:.1e} |")
    for res in results:
        lines.append(f"\n{res['problem']['label']}: engine at {100 * res['fraction_of_limit']:.1f}"
                     f" % of the machine's limit ({res['limit_s']:.3g} s of exponentials and "
                     f"flops; {res['rates']['exp_per_s']:.3g} exp/s, "
                     f"{res['rates']['gemm_gflops']:.1f} GFLOP/s); median clustering time "
                     f"{res['median_clustering_time']:.2f}, {res['censored']} censored")
        if res["missing"]:
            lines.append(f"not installed, not run: {', '.join(res['missing'])}")
    return "\n".join(lines)


def problems_of(args: argparse.Namespace) -> tuple[Problem, ...]:
    """The quick or full problems, restricted by --n / --d / --beta / --seeds if given."""
    chosen = QUICK if args.quick else PROBLEMS
    if args.n:
        chosen = tuple(p for p in chosen if p.n in args.n)
    if args.d:
        chosen = tuple(p for p in chosen if p.d in args.d)
    if not chosen:
        raise ValueError("no problem of the suite matches --n/--d "
                         f"({[p.label for p in (QUICK if args.quick else PROBLEMS)]})")
    out = []
    for p in chosen:
        changes = {"beta": args.beta}
        if args.solver_seeds:
            changes["seeds"] = args.solver_seeds
        out.append(Problem(**(asdict(p) | changes)))
    return tuple(out)


def run(args: argparse.Namespace) -> int:
    """Run the suite (threads fixed by the command line); 0 when every check passed."""
    import numba

    numba.set_num_threads(args.threads)
    try:
        problems = problems_of(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    names = tuple(args.paths or DEFAULT_PATHS)
    unknown = set(names) - set(DEFAULT_PATHS)
    if unknown or "engine" not in names:
        print(f"error: --paths takes {DEFAULT_PATHS} and must include 'engine'",
              file=sys.stderr)
        return 2
    repeats = args.repeats or (2 if args.quick else 3)
    load_start = os.getloadavg()
    results = []
    try:
        for p in problems:
            print(f"{p.label}, {p.seeds} seeds, loops on {args.loop_seeds}:", flush=True)
            results.append(run_problem(p, names, repeats, args.loop_seeds, args.seed,
                                       lambda s: print(s, flush=True)))
    except Disagreement as err:
        print(f"check failed, nothing timed is trustworthy: {err}", file=sys.stderr)
        return 1
    from experiments.bench.timing import machine_info

    report = {"suite": "solvers", "command": " ".join(sys.argv), "results": results,
              "threads": args.threads, "load_average_start": load_start,
              "load_average_end": os.getloadavg(), "machine": machine_info()}
    print()
    print(render(results))
    print(f"\nload average {load_start[0]:.2f} at start, {report['load_average_end'][0]:.2f} "
          f"at end; {args.threads} thread(s)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        print(f"results written to {args.json}")
    return 0
