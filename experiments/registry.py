"""The one registry of experiments: every name a config file or the command line can give.

* ``COMMANDS``      - the sub-commands of ``python -m experiments``: the module with their
  ``add_arguments(parser)`` and ``run(args)``, their one-line help (written here and nowhere
  else) and, for a study, the module whose ``KIND`` (``experiments.studies.StudyKind``) it runs;
* ``STUDY_KINDS``   - study name -> ``StudyKind`` (``study = ...`` in a config);
* ``FIELDS``        - field name -> ``experiments.fields.FieldEntry`` (``[field] kind``), from the
  ``FIELD_ENTRIES`` of the ``FIELD_MODULES``;
* ``METHODS``, ``FIXED_METHODS``, ``ENGINES`` - ``[integrator] method`` and ``engine``: those
  of ``dynamics.simulate.METHODS`` and ``dynamics.gpu.ENGINES`` a study can run (no noise,
  so no "euler-maruyama"; no JAX, so no "diffrax"), never re-typed;
* ``INITIAL_KINDS`` - ``[initial] kind`` (drawn by ``experiments.chunks``);
* ``SUITES``        - benchmark name -> module with ``run(args)`` (``python -m experiments
  bench --suite NAME``; ``experiments.bench``).

The command line reads this module before ``--threads`` takes effect, so importing it loads
only the standard library: the tables of objects import their modules on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import import_module
from typing import Any


@dataclass(frozen=True)
class Command:
    """A sub-command: ``module`` defines ``add_arguments(parser)`` and ``run(args)``; a study
    command also names the module of its ``KIND``."""

    name: str
    module: str
    help: str
    kind: str | None = None


COMMANDS: dict[str, Command] = {}


def register_command(name: str, module: str, help: str, kind: str | None = None) -> Command:
    """Add a sub-command; names are unique."""
    if name in COMMANDS:
        raise ValueError(f"a command named {name!r} is already registered "
                         f"({COMMANDS[name].module})")
    COMMANDS[name] = Command(name, module, help, kind)
    return COMMANDS[name]


def _study(name: str, module: str, help: str) -> None:
    register_command(name, "experiments.cli", help, f"experiments.studies.{module}")


_study("clustering-time", "clustering_time",
       "time until all pairs are within 1 - delta, over seeds, vs beta, d, n (Kaplan-Meier "
       "medians, censoring, fitted scaling)")
_study("phase-diagram", "phase_diagram",
       "the Fig. 3 statistic (fraction of clustered pairs) on a (t, beta) grid, any field, d "
       "and n, with the Gamma_infinity,delta curve")
_study("cluster-count", "cluster_count",
       "number of clusters at given times vs beta (metastable counts), with the circle's "
       "predicted dominant mode")
_study("synchronisation", "synchronisation",
       "fraction of random starts that end in one point vs beta, negative beta included "
       "(circle thresholds -0.16 and -2/3 of 2507.22857)")
_study("variant-flows", "variant_flows",
       "the same tokens flowed under MHA, GQA/MQA, MFA, MFA-KR, AnSAN, PrFlash and DMA "
       "(random ensemble, or trained layers: [field] kind = \"trained-variant\"): "
       "clustering time, cluster count and distance to full attention")
register_command("train-variants", "experiments.training.cli",
                 "tiny causal language models, one per attention variant (MHA, GQA, MQA, MLA, "
                 "MFA, MFA-KR, AnSAN, PrFlash, DMA), trained on MQAR with one shared budget; "
                 "safetensors checkpoints with config, seed and training curve")
register_command("diagnose", "experiments.diagnostics",
                 "per-head diagnostics of a local Hugging Face model against the clustering "
                 "theorems (value and query-key spectra, effective beta, regime) and their "
                 "heat map")
register_command("plot", "experiments.plotting",
                 "the standard figures (PNG + PDF) of a stored study, from the store alone")
register_command("bench", "experiments.bench.cli",
                 "benchmarks against named baselines: one right-hand side and one RK4 step "
                 "(rhs-rk4), seeds/s of a study against diffrax and scipy (study), F3's d = 1024 "
                 "panel (f3-panel), clustering times against diffrax, torchode, scipy, "
                 "torchdiffeq and the authors' scheme (solvers)")
register_command("verify", "experiments.verify",
                 "check every chunk of a study store (checksums, missing files, done flags); "
                 "exit 0 all ok, 1 damage found (a rerun recomputes it), 2 not a store")
register_command("chaos", "experiments.chaos",
                 "chaos test of the store: kill -9 a small study at random points, delete and "
                 "garble chunk files, race two writers; the result must equal an "
                 "uninterrupted run bit for bit")

SUITES: dict[str, str] = {
    "rhs-rk4": "experiments.bench.attention_rhs",
    "study": "experiments.bench.study",
    "f3-panel": "experiments.bench.f3_panel",
    "solvers": "experiments.bench.solvers",
}
FIELD_MODULES: tuple[str, ...] = ("experiments.fields", "experiments.studies.variant_flows",
                                  "experiments.studies.trained_flows")
INITIAL_KINDS: tuple[str, ...] = ("uniform", "orthogonal", "equiangular", "hemisphere",
                                  "uniform-angles")


class _Loaded(Mapping[str, Any]):
    """A name -> entry table built by ``load`` on first use."""

    def __init__(self, load: Callable[[], dict[str, Any]]) -> None:
        self._load = load

    @cached_property
    def _entries(self) -> dict[str, Any]:
        return self._load()

    def __getitem__(self, name: str) -> Any:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


STUDY_KINDS: Mapping[str, Any] = _Loaded(lambda: {
    c.name: import_module(c.kind).KIND for c in COMMANDS.values() if c.kind})


def _fields() -> dict[str, Any]:
    table: dict[str, Any] = {}
    for entry in (e for m in FIELD_MODULES for e in import_module(m).FIELD_ENTRIES):
        if entry.name in table:
            raise ValueError(f"a field named {entry.name!r} is defined twice")
        table[entry.name] = entry
    return table


FIELDS: Mapping[str, Any] = _Loaded(_fields)


def __getattr__(name: str) -> tuple[str, ...]:
    """METHODS, FIXED_METHODS and ENGINES, from dynamics on first use (module docstring)."""
    if name not in ("METHODS", "FIXED_METHODS", "ENGINES"):
        raise AttributeError(f"module 'experiments.registry' has no attribute {name!r}")
    from dynamics.gpu import ENGINES
    from dynamics.integrators.schemes import FIXED_STEP_SCHEMES
    from dynamics.simulate import METHODS

    methods = tuple(m for m in METHODS if m != "euler-maruyama")
    globals().update(METHODS=methods, ENGINES=tuple(e for e in ENGINES if e != "diffrax"),
                     FIXED_METHODS=tuple(m for m in methods if m in FIXED_STEP_SCHEMES))
    return globals()[name]
