"""``python -m experiments <command>``: one sub-command per ``experiments.registry.COMMANDS``.

A failure prints one line ``error: ...`` on stderr and exits with status 2 (a usage or
config error: ``experiments.cli.UsageError``) or 1 (anything else); ``--debug`` (before or
after the command) shows the full traceback instead. Ctrl-C exits with status 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from experiments.cli import UsageError, error_line
from experiments.registry import COMMANDS

EPILOG = "Study configs: experiments/configs/*.toml; figures of a store: plot STORE."


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered command."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="Studies and benchmarks of attention-flows.",
        epilog=EPILOG,
    )
    parser.add_argument("--debug", action="store_true",
                        help="on a failure, show the full traceback (not one line)")
    commands = parser.add_subparsers(dest="study", metavar="COMMAND")
    for command in COMMANDS.values():
        module = importlib.import_module(command.module)
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        module.add_arguments(sub)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="on a failure, show the full traceback (not one line)")
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), run the chosen command, return its status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.study is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:  # a command without its own handling (studies have theirs)
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(error_line(err), file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1


if __name__ == "__main__":
    sys.exit(main())
