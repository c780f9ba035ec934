"""``python -m experiments <study>``: one sub-command per registered study."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from experiments import EPILOG, STUDIES


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per study in ``experiments.STUDIES``."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="Studies and benchmarks of attention-flows.",
        epilog=EPILOG,
    )
    commands = parser.add_subparsers(dest="study", metavar="STUDY")
    for study in STUDIES.values():
        module = importlib.import_module(study.module)
        sub = commands.add_parser(study.name, help=study.help, description=study.help)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), run the chosen study, return its status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.study is None:
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
