"""``python -m experiments bench --suite study``: seeds per second of a clustering-time study,
against what a researcher would otherwise run.

The clustering times of S seeds of SA (n = 32, d = 3, beta = 1 by default; Dopri5 at
rtol 1e-6 / atol 1e-9, delta 1e-3, horizon 100), in the same run and on the same initial
tokens, three ways:

* **study**: ``run_study`` on a config with S seeds - chunks of ``--chunk`` seeds, each
  integrated by ``simulate`` (the compiled engine where it applies), chunks spread over a
  local process pool, results written to a fresh zarr store and summarised (everything a
  user pays for);
* **diffrax**: ``jax.jit(jax.vmap(...))`` of a diffrax Dopri5 solve with a clustering event
  over all S seeds in this process (``experiments.bench.solvers``); its first call (trace
  and compile) is reported apart and its rate is that of the second call;
* **scipy**: ``solve_ivp(method="RK45")`` with a terminal event, one seed per call, on the
  first L seeds (``--loop-seeds``; a loop's rate does not depend on how many seeds it runs).

It checks that both reproduce the stored times (same censoring; within
``solvers.AGREEMENT`` relative), reports seeds per second and the study's ratio to each,
and records the machine and its load average. Its options are the "study" group of
``experiments.bench.cli`` (one value each of --n, --d, --dtype).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments.bench.timing import machine_info
from experiments.chunks import initial_states
from experiments.config import ConfigError, parse_config
from experiments.fields import Members
from experiments.runner import run_study
from experiments.store import open_dataset

CASE_KEYS = ("n", "d", "beta", "method", "rtol", "atol", "backend", "dtype", "horizon",
             "delta", "compact_every", "seeds", "chunk")
DEFAULTS = {"n": 32, "d": 3, "dtype": "float64"}


def case_of(args: argparse.Namespace) -> dict:
    """The case of the command line: one value of --n, --d and --dtype (defaults above)."""
    case = {k: getattr(args, k) for k in CASE_KEYS}
    for key, default in DEFAULTS.items():
        values = case[key] or [default]
        if len(values) != 1:
            raise ValueError(f"--suite study takes one --{key}, got {values}")
        case[key] = values[0]
    return case


def study_config(case: dict, threads: int):
    return parse_config({
        "study": "clustering-time", "seed": 2026, "compute": {
            "backend": case["backend"], "dtype": case["dtype"], "threads": threads},
        "field": {"kind": "sa"},
        "grid": {"n": [case["n"]], "d": [case["d"]], "beta": [case["beta"]]},
        "seeds": {"count": case["seeds"], "chunk": case["chunk"]},
        "integrator": {"method": case["method"], "rtol": case["rtol"], "atol": case["atol"]},
        "clustering": {"delta": case["delta"], "horizon": case["horizon"],
                       "compact_every": case["compact_every"]},
    })


def baselines(case: dict, x0: np.ndarray, loop_seeds: int) -> dict[str, dict]:
    """diffrax (vmap + jit, all seeds) and scipy (a loop over the first ``loop_seeds``) on
    the study's initial tokens x0 (S, n, d): times, seconds, and diffrax's first call."""
    from experiments.bench.solvers import Problem, contender

    problem = Problem("sa", case["n"], case["d"], len(x0), beta=case["beta"],
                      delta=case["delta"], horizon=case["horizon"], rtol=case["rtol"],
                      atol=case["atol"])
    out = {}
    for name, seeds in (("diffrax-vmap", x0), ("scipy", x0[:loop_seeds])):
        start = time.perf_counter()
        solve = contender(name).prepare(problem)
        times, _ = solve(seeds)
        first = time.perf_counter() - start
        if name == "diffrax-vmap":  # the compiled solve again: its rate without compiling
            start = time.perf_counter()
            times, _ = solve(seeds)
        out[name] = {"times": times, "seconds": time.perf_counter() - start,
                     "first_call_seconds": first, "seeds": len(seeds)}
    return out


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (threads already fixed by the command line); 0 on success."""
    from experiments.bench.solvers import Disagreement, compare

    try:
        case = case_of(args)
        config = study_config(case, args.threads)
    except (ValueError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.zarr"
        report = run_study(config, store, quiet=True, command="bench --suite study",
                           log=lambda s: None)
        stored = open_dataset(store)["clustering_time"].values[:, 0, 0, 0]
    study_rate = case["seeds"] / report.seconds
    seeds = np.asarray(config.seeds.values)
    members = Members(config.seed, case["n"], case["d"], seeds, np.full(len(seeds), case["beta"]),
                      np.zeros(len(seeds), dtype=int), "numpy", "float64", "cpu")
    x0 = np.asarray(initial_states(config, members), dtype=np.float64)
    others = baselines(case, x0, min(args.loop_seeds, case["seeds"]))
    load_end = os.getloadavg()
    result = {
        "case": case,
        "study_seconds": report.seconds, "study_seeds_per_s": study_rate,
        "study_chunks": report.total, "workers": min(os.cpu_count() or 1, report.total),
        "censored_fraction": float(np.mean(np.isnan(stored))),
        "median_time": float(np.nanmedian(stored)) if not np.isnan(stored).all() else None,
        "load_average_start": load_start, "load_average_end": load_end,
        "machine": machine_info(),
    }
    print(f"study:   {case['seeds']} seeds in {report.seconds:.2f} s = {study_rate:.1f} seeds/s "
          f"({report.total} chunks of {case['chunk']}, local pool, zarr store)")
    try:
        for name, other in others.items():
            difference = compare(name, other["times"], stored[: other["seeds"]])
            rate = other["seeds"] / other["seconds"]
            result[name] = {"seeds": other["seeds"], "seconds": other["seconds"],
                            "first_call_seconds": other["first_call_seconds"],
                            "seeds_per_s": rate, "ratio": study_rate / rate,
                            "max_abs_time_difference": difference}
            print(f"{name + ':':<8} {other['seeds']} seeds in {other['seconds']:.2f} s = "
                  f"{rate:.1f} seeds/s (first call {other['first_call_seconds']:.2f} s); "
                  f"study x{study_rate / rate:.2f}; max |time - stored| {difference:.1e}")
    except Disagreement as err:
        print(f"check failed: {err}", file=sys.stderr)
        return 1
    print(f"load average: {load_start[0]:.2f} at start, {load_end[0]:.2f} at end")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return 0
