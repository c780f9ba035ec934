"""python -m paper_repro [ID ...] [--quick | --full] [--replot] [--out DIR] [--scheme S]
[--model PATH_OR_NAME].

Prints each figure's checks as a table and exits with status 1 if any check fails (2 if a
figure named with ``--replot`` has no stored data; ``--replot`` alone redraws every figure
that has). The output folder and the device are checked before any work; a failure is one
line ``error: ...`` on stderr (status 2 for a bad option, 1 otherwise; ``--debug`` shows the
traceback instead). SIGINT and SIGTERM stop at once with status 130 or 143 and a line with
the command that carries on (the figures' studies resume from their stores)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from experiments.cli import UsageError, check_device, check_writable, error_line, signal_name
from experiments.processes import Interrupted, interruptible
from paper_repro import FIGURES, FigureRequest
from paper_repro.registry import MissingStore, make
from paper_repro.schemes import SCHEMES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paper_repro", description=__doc__)
    parser.add_argument("ids", nargs="*", help=f"figure IDs (default: all of {sorted(FIGURES)})")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes for a 2-core CPU")
    size.add_argument("--full", action="store_true", help="the papers' sizes")
    parser.add_argument("--replot", action="store_true",
                        help="redraw from <out>/<ID>.zarr without computing (its stored sizes)")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output directory")
    parser.add_argument("--scheme", choices=SCHEMES, default="faithful")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None,
                        help="F1: a local Hugging Face model (directory or cached name; "
                             "safetensors only) instead of ALBERT xlarge-v2")
    parser.add_argument("--debug", action="store_true",
                        help="on a failure, show the full traceback (not one line)")
    args = parser.parse_args(argv)
    unknown = [i for i in args.ids if i not in FIGURES]
    if unknown:
        parser.error(f"unknown figure IDs {unknown}; available: {sorted(FIGURES)}")
    command = "python -m paper_repro " + shlex.join(sys.argv[1:] if argv is None else argv)
    current, failed, missing = None, [], []
    try:
        check_device(args.device, "--device")
        check_writable(args.out, f"--out {args.out}")
        with interruptible():
            for current in args.ids or sorted(FIGURES):
                failed += _make(current, args, missing)
    except Interrupted as stop:
        where = f" during {current}" if current else ""
        print(f"interrupted by {signal_name(stop.signum)}{where}; carry on with: {command}",
              file=sys.stderr, flush=True)
        return stop.exit_code
    except Exception as err:
        if args.debug:
            raise
        line = error_line(err)
        if current and not isinstance(err, UsageError):
            line = line.replace("error: ", f"error: [{current}] ", 1)
        print(line, file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1
    if failed:
        print("FAILED checks:\n  " + "\n  ".join(failed), file=sys.stderr)
    return 2 if missing else (1 if failed else 0)


def _make(figure_id: str, args: argparse.Namespace, missing: list[str]) -> list[str]:
    """Make one figure, print its checks; returns its failed checks ("ID: name")."""
    request = FigureRequest(out=args.out, quick=not args.full, scheme=args.scheme,
                            device=args.device, seed=args.seed, model=args.model)
    start = time.perf_counter()
    try:
        report = make(figure_id, request, replot=args.replot)
    except MissingStore as error:
        if args.ids:  # asked for by name: an error; replotting all: those not yet made
            missing.append(str(error))
        print(error, file=sys.stderr)
        return []
    print(f"[{figure_id}] {FIGURES[figure_id].title}: {time.perf_counter() - start:.1f} s")
    if report.skipped:
        print(f"    skipped: {report.skipped}")
    for check in report.checks:
        print(f"    {check.row()}")
    for path in report.files:
        print(f"    wrote {path}")
    if report.store:
        print(f"    data  {report.store}")
    return [f"{figure_id}: {c.name}" for c in report.failed]

if __name__ == "__main__":
    sys.exit(main())
