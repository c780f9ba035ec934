"""The study kinds: what a study simulates per chunk, stores, summarises and plots.

A :class:`StudyKind` is registered under the name of its sub-command and holds

* ``section``/``params``: the name and dataclass of the study's own config table;
* ``variables(config)``: the stored per-member variables, each with the dimensions it
  adds after (seed, n, d, beta), and ``coords(config)`` for those dimensions;
* ``compute(config, members)``: one chunk's numbers, arrays (batch, *extra) per variable;
* ``summarize(ds, config)``: the statistics, a Dataset without the seed dimension;
* ``plot(ds, config, out_dir)``: the standard figures (PNG + PDF) from the stored data;
* ``validate(config)``: checks across sections (raise ``ConfigError``).

``variant-flows`` (the attention variants) also registers the field ``attention-variant``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variable:
    """A stored variable: dims added after (seed, n, d, beta), numpy dtype, attributes."""

    extra_dims: tuple[str, ...]
    dtype: str
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyKind:
    name: str
    help: str
    section: str
    params: type
    variables: Callable[[Any], dict[str, Variable]]
    coords: Callable[[Any], dict[str, Any]]
    compute: Callable[[Any, Any], dict[str, Any]]
    summarize: Callable[[Any, Any], Any]
    plot: Callable[[Any, Any, Any], list]
    validate: Callable[[Any], None] = lambda config: None


STUDY_KINDS: dict[str, StudyKind] = {}


def register_kind(kind: StudyKind) -> StudyKind:
    if kind.name in STUDY_KINDS:
        raise ValueError(f"a study kind named {kind.name!r} is already registered")
    STUDY_KINDS[kind.name] = kind
    return kind


from experiments.studies import (  # noqa: E402
    cluster_count,
    clustering_time,
    phase_diagram,
    synchronisation,
    variant_flows,
)

__all__ = ["STUDY_KINDS", "StudyKind", "Variable", "cluster_count", "clustering_time",
           "phase_diagram", "register_kind", "synchronisation", "variant_flows"]
