"""``python -m experiments bench --suite study``: seeds per second of a clustering-time study.

Two ways to get the clustering times of S seeds of SA (n = 32, d = 3 by default), in the
same run and on the same initial tokens:

* **study**: ``run_study`` on a config with S seeds - chunks of ``--chunk`` seeds, each
  integrated as one batch by one ``simulate`` call, chunks spread over a local process
  pool, results written to a fresh zarr store and summarised (everything a user pays for);
* **loop**: one ``simulate`` call per seed, in a Python loop in this process, for the first
  L seeds (L = ``--loop-seeds``; the loop's rate does not depend on how many seeds it runs).

It reports seeds per second of each and their ratio, checks that the loop reproduces the
stored times of its seeds, and records the machine and its load average. Its options are
the "study" group of ``experiments.bench.cli`` (one value each of --n, --d, --dtype).
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

from dynamics import simulate
from experiments.bench.timing import machine_info
from experiments.chunks import initial_states
from experiments.config import ConfigError, parse_config
from experiments.fields import Members, build_field
from experiments.runner import run_study, torch_threads
from experiments.store import open_dataset

CASE_KEYS = ("n", "d", "beta", "method", "dt", "backend", "dtype", "horizon", "delta",
             "compact_every", "seeds", "chunk")
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
        "integrator": {"method": case["method"], "dt": case["dt"]},
        "clustering": {"delta": case["delta"], "horizon": case["horizon"],
                       "compact_every": case["compact_every"]},
    })


def loop_times(config, count: int) -> tuple[list[float], float]:
    """Clustering times of the first ``count`` seeds, one simulate call each; and seconds."""
    p = config.params
    out = []
    start = time.perf_counter()
    with torch_threads(config.compute.threads):
        for seed in config.seeds.values[:count]:
            members = Members(config.seed, config.grid.n[0], config.grid.d[0],
                              np.array([seed]), np.array(config.grid.beta[:1]), np.array([0]),
                              config.compute.backend, config.compute.dtype, "cpu")
            traj = simulate(build_field(config, members), initial_states(config, members),
                            [0.0, p.horizon], stop_when_clustered=p.delta,
                            **config.integrator.simulate_kwargs())
            out.append(float(traj.cluster_time[0]))
    return out, time.perf_counter() - start


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (threads already fixed by the command line); 0 on success."""
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
    times, loop_s = loop_times(config, min(args.loop_seeds, case["seeds"]))
    loop_rate = len(times) / loop_s
    load_end = os.getloadavg()
    diff = np.abs(np.asarray(times) - stored[: len(times)])
    agree = float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0
    same_censoring = bool(np.all(np.isnan(times) == np.isnan(stored[: len(times)])))
    result = {
        "case": case,
        "study_seconds": report.seconds, "study_seeds_per_s": study_rate,
        "study_chunks": report.total, "workers": min(os.cpu_count() or 1, report.total),
        "loop_seeds": len(times), "loop_seconds": loop_s, "loop_seeds_per_s": loop_rate,
        "ratio": study_rate / loop_rate,
        "max_abs_time_difference": agree, "same_censoring": same_censoring,
        "censored_fraction": float(np.mean(np.isnan(stored))),
        "median_time": float(np.nanmedian(stored)),
        "load_average_start": load_start, "load_average_end": load_end,
        "machine": machine_info(),
    }
    print(f"study: {args.seeds} seeds in {report.seconds:.2f} s = {study_rate:.1f} seeds/s "
          f"({report.total} chunks of {args.chunk}, local pool)")
    print(f"loop:  {len(times)} seeds in {loop_s:.2f} s = {loop_rate:.2f} seeds/s "
          "(one simulate call per seed)")
    print(f"ratio: {result['ratio']:.1f}x   loop vs stored times: max |diff| {agree:.2e}, "
          f"same censoring: {same_censoring}")
    print(f"load average: {load_start[0]:.2f} at start, {load_end[0]:.2f} at end")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return 0 if same_censoring else 1
