"""``python -m experiments bench``: the command line of the benchmark suites.

Only argparse lives at module level; numpy and torch load in ``run`` after the
thread count is fixed.
"""

from __future__ import annotations

import argparse
import os
import sys

from experiments.bench.registry import DTYPES, SUITE_MODULES
from experiments.cli import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", choices=tuple(SUITE_MODULES), default="rhs-rk4",
                        help="benchmark suite (default: rhs-rk4)")
    parser.add_argument("--quick", action="store_true", help="the suite's small grid")
    parser.add_argument("--n", type=positive_int, nargs="+", help="token counts (overrides grid)")
    parser.add_argument("--d", type=positive_int, nargs="+", help="dimensions (overrides grid)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), nargs="+", help="dtypes (overrides grid)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed repeats (default 5)")
    parser.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1,
                        help="threads for torch and numpy's BLAS (default: all CPUs)")
    parser.add_argument("--batch", type=positive_int, default=1, help="batch size (default 1)")
    parser.add_argument("--beta", type=float, default=1.0, help="inverse temperature (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="device (cpu, or cuda: the Triton kernels against SDPA and the "
                             "materialised torch version)")
    parser.add_argument("--paths", nargs="+", metavar="PATH",
                        help="time only these implementations (default: all on the device)")
    parser.add_argument("--ops", nargs="+", metavar="OP",
                        help="time only these operations (default: all of the suite's)")
    parser.add_argument("--max-dense-n", type=positive_int, default=None,
                        help="skip paths that store n x n matrices above this n")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory subprocesses")
    parser.add_argument("--pause", type=float, default=0.25, metavar="SECONDS",
                        help="idle seconds before each path (default 0.25; see timing)")
    parser.add_argument("--interleave", action="store_true",
                        help="alternate the paths' repeats (for a loaded machine; see timing)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random tokens")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")


def run(args: argparse.Namespace) -> int:
    """Fix threads, load the suite, run it, print the report; 0 on success."""
    from experiments.bench.timing import fix_threads

    fix_threads(args.threads)
    from experiments.bench.registry import Case, load_suite
    from experiments.bench.report import render, write_json
    from experiments.bench.runner import CheckFailed, Settings, run_suite

    suite = load_suite(args.suite).for_device(args.device)
    full, quick = suite.grids(args.device)
    grid = quick if args.quick else full
    if args.paths or args.ops:
        suite = suite.restricted(paths=args.paths, ops=args.ops)
    cases = [
        Case(n=n, d=d, dtype=dtype, batch=args.batch, beta=args.beta, device=args.device)
        for dtype in (args.dtype or grid.dtypes)
        for d in (args.d or grid.d)
        for n in (args.n or grid.n)
    ]
    settings = Settings(repeats=args.repeats, threads=args.threads, memory=not args.no_memory,
                        max_dense_n=args.max_dense_n, seed=args.seed, pause_s=args.pause,
                        interleave=args.interleave)
    try:
        report = run_suite(suite, cases, settings, log=lambda s: print(s, flush=True))
    except CheckFailed as err:
        print(f"check failed, nothing timed is trustworthy: {err}", file=sys.stderr)
        return 1
    print()
    print(render(report, suite), flush=True)
    if args.json:
        write_json(report, args.json)
        print(f"\nresults written to {args.json}")
    return 0
