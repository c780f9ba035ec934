"""``python -m experiments bench [--suite NAME] [options]``: the one command line of the benchmarks.

``--suite`` picks a benchmark of ``experiments.registry.SUITES`` (default ``rhs-rk4``); its
module's ``run(args)`` runs it. The timed suites (``registry.Suite``: ``rhs-rk4``) share
``run_suite_command``; ``study`` and ``f3-panel`` are their own programs. The options of
every benchmark are defined here, in one group each; ``--n``, ``--d``, ``--dtype``,
``--beta``, ``--threads`` and ``--json`` are shared. Only argparse lives at module level:
numpy and torch load in ``run`` after the thread count is fixed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from experiments.argtypes import positive_int
from experiments.bench.registry import DTYPES, Case
from experiments.bench.timing import fix_threads
from experiments.registry import SUITES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", choices=tuple(SUITES), default="rhs-rk4",
                        help="benchmark (default: rhs-rk4)")
    parser.add_argument("--n", type=positive_int, nargs="+",
                        help="token counts (rhs-rk4: overrides the grid; study: one, default 32)")
    parser.add_argument("--d", type=positive_int, nargs="+",
                        help="dimensions (rhs-rk4: overrides the grid; study: one, default 3)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), nargs="+",
                        help="dtypes (rhs-rk4: overrides the grid; study: one, default float64)")
    parser.add_argument("--beta", type=float, default=1.0, help="inverse temperature (default 1)")
    parser.add_argument("--threads", type=positive_int,
                        help="threads for torch and numpy's BLAS (default: all CPUs for "
                             "rhs-rk4, 1 for study and f3-panel)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")

    suite = parser.add_argument_group("rhs-rk4 (timed suites)")
    suite.add_argument("--quick", action="store_true", help="the suite's small grid")
    suite.add_argument("--repeats", type=positive_int, default=None,
                       help="timed repeats (default 5; solvers: 3, 2 with --quick)")
    suite.add_argument("--batch", type=positive_int, default=1, help="batch size (default 1)")
    suite.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="device (cpu, or cuda: the Triton kernels against SDPA and the "
                            "materialised torch version)")
    suite.add_argument("--paths", nargs="+", metavar="PATH",
                       help="time only these implementations (default: all on the device)")
    suite.add_argument("--ops", nargs="+", metavar="OP",
                       help="time only these operations (default: all of the suite's)")
    suite.add_argument("--max-dense-n", type=positive_int, default=None,
                       help="skip paths that store n x n matrices above this n")
    suite.add_argument("--no-memory", action="store_true",
                       help="skip the peak-memory subprocesses")
    suite.add_argument("--pause", type=float, default=0.25, metavar="SECONDS",
                       help="idle seconds before each path (default 0.25; see timing)")
    suite.add_argument("--interleave", action="store_true",
                       help="alternate the paths' repeats (for a loaded machine; see timing)")
    suite.add_argument("--seed", type=int, default=0, help="seed of the random tokens")

    study = parser.add_argument_group("study (seeds per second of a clustering-time study)")
    study.add_argument("--seeds", type=positive_int, default=2048, help="seeds of the study")
    study.add_argument("--chunk", type=positive_int, default=512, help="seeds per work chunk")
    study.add_argument("--loop-seeds", type=positive_int, default=64,
                       help="seeds run one at a time (the baseline)")
    study.add_argument("--method", default="dopri5", choices=("dopri5",),
                       help="the study's method (Dopri5, as the baselines)")
    study.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (1e-6)")
    study.add_argument("--atol", type=float, default=1e-9, help="absolute tolerance (1e-9)")
    study.add_argument("--backend", choices=("numpy", "torch"), default="numpy")
    study.add_argument("--horizon", type=float, default=100.0)
    study.add_argument("--delta", type=float, default=1e-3)
    study.add_argument("--compact-every", type=float, default=2.0,
                       help="segment length after which clustered members leave the batch "
                            "(0: one simulate call per chunk; default 2)")

    solvers = parser.add_argument_group(
        "solvers (clustering times of many seeds: the engine against diffrax, torchode, scipy, "
        "torchdiffeq and the authors' scheme; --quick, --paths, --repeats, --loop-seeds, "
        "--seed and --beta apply)")
    solvers.add_argument("--solver-seeds", type=positive_int, default=None,
                         help="seeds per problem (default: 1024, 256 and 256; 64, 16 and 64 "
                              "with --quick)")

    panel = parser.add_argument_group("f3-panel (F3's d = 1024 panel against the authors' "
                                      "dense scheme)")
    panel.add_argument("--betas", type=float, nargs="+", default=[0.1, 4.5, 9.0],
                       help="betas at which the dense baseline is timed")
    panel.add_argument("--steps", type=positive_int, default=10,
                       help="dense steps timed per beta")
    panel.add_argument("--blocks", type=int, nargs="+", default=[0, 4, 9, 13, 17],
                       help="beta blocks of the study whose chunks are timed (0..17)")


def run(args: argparse.Namespace) -> int:
    """Fix threads, then run the chosen benchmark; its exit status."""
    if args.threads is None:
        args.threads = (os.cpu_count() or 1) if args.suite == "rhs-rk4" else 1
    if args.threads == 1:  # XLA's CPU client reads this when jax first loads
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                           "intra_op_parallelism_threads=1")
    fix_threads(args.threads)
    return importlib.import_module(SUITES[args.suite]).run(args)


def run_suite_command(suite, args: argparse.Namespace) -> int:
    """Run a timed suite on the grid the options give, print the report; 0 on success."""
    from experiments.bench.report import render, write_json
    from experiments.bench.runner import CheckFailed, Settings, run_suite

    suite = suite.for_device(args.device)
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
    settings = Settings(repeats=args.repeats or 5, threads=args.threads, memory=not args.no_memory,
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
