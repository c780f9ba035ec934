"""Command line of the studies: ``python -m experiments <study> --config FILE [options]``.

The same options serve every study kind of ``experiments.registry``; the study is the
sub-command's name. Only argparse is imported at module level: numerical libraries load in
``run`` (after the command line is parsed).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from experiments.argtypes import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="TOML study config: a file, or the name of a shipped one (e.g. "
                             "clustering_time_small; experiments/configs/)")
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
    parser.add_argument("--engine", metavar="ENGINE",
                        help="integration engine, overriding [integrator] engine: auto "
                             "(default: the compiled engine where it applies on the CPU, the "
                             "fused Triton field on CUDA), compiled, native, triton, "
                             "triton-graphs; the store's engine attribute says what ran")
    parser.add_argument("--quiet", action="store_true",
                        help="plain log lines instead of a progress bar")
    parser.add_argument("--plot", action="store_true",
                        help="also write the standard figures next to the store")


def run(args: argparse.Namespace) -> int:
    """Load and check the config, check the device and the output path, then run or resume
    the study; 0 on success. SIGINT and SIGTERM stop the run with the finished chunks kept,
    a line saying how to resume, and status 130 or 143."""
    from experiments.config import ConfigError, load_config
    from experiments.lock import StoreLocked
    from experiments.processes import Interrupted, interruptible
    from experiments.runner import output_paths, run_study
    from experiments.store import StoreMismatch

    try:
        config = load_config(args.config, expect=args.study, device=args.device,
                             engine=args.engine)
    except ConfigError as err:
        raise UsageError(f"bad config {args.config}: {err}") from err
    source = "--device" if args.device else f"[compute] device of {args.config}"
    check_device(config.compute.device, source)
    out = Path(args.out) if args.out else Path("out") / f"{Path(args.config).stem}.zarr"
    store, netcdf = output_paths(out, args.format)
    check_store_path(store, "--out" if args.out else "the default --out")
    if netcdf is not None:
        check_writable(netcdf.parent, f"--out {out}")
    command = "python -m experiments " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        with interruptible():
            report = run_study(config, out, workers=args.workers, scheduler=args.scheduler,
                               format=args.format, quiet=args.quiet, command=command,
                               log=lambda s: print(s, flush=True))
    except Interrupted as stop:
        print(f"interrupted by {signal_name(stop.signum)}: the finished chunks are kept in "
              f"{store}; resume with: {command}", file=sys.stderr, flush=True)
        return stop.exit_code
    except (StoreMismatch, StoreLocked) as err:
        raise UsageError(str(err)) from err
    if args.plot:
        from experiments.plotting import plot_store

        for path in plot_store(report.store):
            print(f"figure: {path}")
    return 0


# -- failures: one line, checked before any work ---------------------------------------------


class UsageError(Exception):
    """A command line that cannot run as given: a bad config, device or output path, a store
    of another study or held by another writer. Exit status 2."""


def signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:  # pragma: no cover - not a known signal
        return f"signal {signum}"


def error_line(err: BaseException) -> str:
    """``error: ...`` on one line: the message's lines joined; the exception's type named
    unless it is a :class:`UsageError` (whose message is written for the user)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = "; ".join(line.rstrip(";") for line in lines)
    if not isinstance(err, UsageError):
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return f"error: {text}"


def check_device(device: str, source: str = "--device") -> None:
    """Refuse a CUDA device that torch cannot use here (UsageError), before any work."""
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        raise UsageError(f"{source} asks for {device!r}, but CUDA is not available on this "
                         f"machine (torch {torch.__version__}: torch.cuda.is_available() is "
                         f"False); use --device cpu")
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise UsageError(f"{source} asks for {device!r}, but this machine has {count} CUDA "
                         f"device(s) (cuda:0 to cuda:{count - 1})")


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(folder: Path, option: str) -> None:
    """Refuse (UsageError) a ``folder`` that cannot be created or written in: a file on its
    way, no permission, a read-only file system. Creates nothing: a probe file is made and
    removed in the nearest folder that exists."""
    import tempfile

    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise UsageError(f"{option}: cannot create {folder}, since {existing} is a file, "
                         f"not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".write-probe-"):
            pass
    except OSError as err:
        what = "write in" if existing == Path(os.path.abspath(folder)) else "create"
        raise UsageError(f"{option}: cannot {what} {folder} ({err.strerror or err} "
                         f"in {existing})") from None


def check_store_path(store: Path, option: str = "--out") -> None:
    """Refuse (UsageError) a store path that cannot be written: a file in the way, a
    folder that cannot be created or written in (the store's and its lock file's)."""
    if store.exists() and not store.is_dir():
        raise UsageError(f"{option} {store}: a file is in the way (a study store is a "
                         f"directory)")
    check_writable(store.parent, f"{option} {store}")  # the lock file goes there too
    if store.exists() and not os.access(store, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {store}: the store exists but cannot be written")
