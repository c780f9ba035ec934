"""experiments: the studies and benchmarks of attention-flows, behind one command line.

    python -m experiments <study> [options]        (or the console script ``attention-flows``)

A *study* is a module with two functions, ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status). It is registered below by name, module path
and a one-line help. The command line imports a study's module only to build its
sub-parser, so a study keeps numpy/torch imports out of that module's top level:
thread settings given on the command line then take effect before any numerical
library starts its thread pools.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Study:
    """A sub-command: ``module`` defines ``add_arguments(parser)`` and ``run(args)``."""

    name: str
    module: str
    help: str


STUDIES: dict[str, Study] = {}


def register_study(name: str, module: str, help: str) -> Study:
    """Add a sub-command; names are unique."""
    if name in STUDIES:
        raise ValueError(f"a study named {name!r} is already registered ({STUDIES[name].module})")
    study = Study(name, module, help)
    STUDIES[name] = study
    return study


register_study(
    "bench",
    "experiments.bench.cli",
    "time one right-hand side and one RK4 step against SDPA and materialised numpy",
)

__all__ = ["STUDIES", "Study", "register_study"]
