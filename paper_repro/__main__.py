"""python -m paper_repro [ID ...] [--quick | --full] [--out DIR] [--scheme faithful|exact]."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from paper_repro import FIGURES, FigureRequest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paper_repro", description=__doc__)
    parser.add_argument("ids", nargs="*", help=f"figure IDs (default: all of {sorted(FIGURES)})")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes for a 2-core CPU")
    size.add_argument("--full", action="store_true", help="the papers' sizes")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output directory")
    parser.add_argument("--scheme", choices=("faithful", "exact"), default="faithful")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = [i for i in args.ids if i not in FIGURES]
    if unknown:
        parser.error(f"unknown figure IDs {unknown}; available: {sorted(FIGURES)}")
    request = FigureRequest(out=args.out, quick=not args.full, scheme=args.scheme,
                            device=args.device, seed=args.seed)
    for figure_id in args.ids or sorted(FIGURES):
        title, make = FIGURES[figure_id]
        start = time.perf_counter()
        report = make(request)
        print(f"[{figure_id}] {title}: {time.perf_counter() - start:.1f} s")
        for line in report.checks:
            print(f"    {line}")
        for path in report.files:
            print(f"    wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
