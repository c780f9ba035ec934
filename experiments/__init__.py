"""experiments: the studies and benchmarks of attention-flows, behind one command line.

    python -m experiments <study> [options]        (or the console script ``attention-flows``)

A *study* is a module with two functions, ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status). It is registered below by name, module path
and a one-line help. The command line imports a study's module only to build its
sub-parser, so a study keeps numpy/torch imports out of that module's top level:
thread settings given on the command line then take effect before any numerical
library starts its thread pools.

The study layer (``config`` -> ``chunks`` -> ``runner`` -> ``store``, with the kinds in
``experiments.studies`` and the fields in ``experiments.fields``) runs many flows over
a grid of parameters and seeds, stores them resumably and plots them:

    python -m experiments clustering-time --config experiments/configs/clustering_time_small.toml
    python -m experiments plot out/clustering_time_small.zarr
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
    "clustering-time",
    "experiments.cli",
    "time until all pairs are within 1 - delta over seeds vs beta, d, n: Kaplan-Meier medians "
    "with confidence intervals, censoring, fitted scaling",
)
register_study(
    "phase-diagram",
    "experiments.cli",
    "the Fig. 3 statistic (fraction of clustered pairs) on a (t, beta) grid with Gamma_inf",
)
register_study(
    "cluster-count",
    "experiments.cli",
    "number of clusters at given times vs beta, with the circle's predicted dominant mode",
)
register_study(
    "synchronisation",
    "experiments.cli",
    "fraction of random starts that end in one point vs beta, negative beta included "
    "(circle thresholds -0.16 and -2/3)",
)
register_study(
    "variant-flows",
    "experiments.cli",
    "the same tokens flowed under MHA, GQA/MQA, MFA, MFA-KR, AnSAN, PrFlash and DMA: "
    "clustering time, cluster count and distance to full attention",
)
register_study(
    "plot",
    "experiments.plotting",
    "the standard figures (PNG + PDF) of a stored study, from the store alone",
)
register_study(
    "bench",
    "experiments.bench.cli",
    "time one right-hand side and one RK4 step against SDPA and materialised numpy",
)
register_study(
    "bench-study",
    "experiments.study_bench",
    "seeds per second of a clustering-time study against one simulate call per seed",
)

EPILOG = "Study configs: experiments/configs/*.toml; figures of a store: plot STORE."

__all__ = ["EPILOG", "STUDIES", "Study", "register_study"]
