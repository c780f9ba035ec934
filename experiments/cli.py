"""Command line of the studies: ``python -m experiments <study> --config FILE [options]``.

The same options serve every study kind of ``experiments.registry``; the study is the
sub-command's name. Only argparse is imported at module level: numerical libraries load in
``run`` (after the command line is parsed).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="TOML study config (examples in experiments/configs/)")
    parser.add_argument("--out", metavar="PATH",
                        help="store path (default: out/<config name>.zarr; a .nc path with "
                             "--format netcdf)")
    parser.add_argument("--format", choices=("zarr", "netcdf"), default="zarr",
                        help="zarr directory (default; resumable) or, in addition, one netCDF "
                             "file written at the end")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, metavar="N",
                       help="run on a dask LocalCluster of N worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing dask cluster (e.g. tcp://host:8786)")
    parser.add_argument("--device", metavar="DEVICE",
                        help="run on this device: cpu, cuda or cuda:K (overrides [compute] "
                             "device; cuda uses the torch backend and the Triton kernels)")
    parser.add_argument("--quiet", action="store_true",
                        help="plain log lines instead of a progress bar")
    parser.add_argument("--plot", action="store_true",
                        help="also write the standard figures next to the store")


def run(args: argparse.Namespace) -> int:
    """Load and check the config, then run or resume the study; 0 on success."""
    from experiments.config import ConfigError, load_config
    from experiments.lock import StoreLocked
    from experiments.runner import run_study
    from experiments.store import StoreMismatch

    try:
        config = load_config(args.config, expect=args.study, device=args.device)
    except ConfigError as err:
        print(f"bad config {args.config}: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("out") / f"{Path(args.config).stem}.zarr"
    command = "python -m experiments " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        report = run_study(config, out, workers=args.workers, scheduler=args.scheduler,
                           format=args.format, quiet=args.quiet, command=command,
                           log=lambda s: print(s, flush=True))
    except (StoreMismatch, StoreLocked) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.plot:
        from experiments.plotting import plot_store

        for path in plot_store(report.store):
            print(f"figure: {path}")
    return 0
