"""``python -m experiments <command>``: one sub-command per ``experiments.registry.COMMANDS``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from experiments.registry import COMMANDS

EPILOG = "Study configs: experiments/configs/*.toml; figures of a store: plot STORE."


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered command."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="Studies and benchmarks of attention-flows.",
        epilog=EPILOG,
    )
    commands = parser.add_subparsers(dest="study", metavar="COMMAND")
    for command in COMMANDS.values():
        module = importlib.import_module(command.module)
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), run the chosen command, return its status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.study is None:
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
