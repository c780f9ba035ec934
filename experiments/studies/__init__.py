"""The study kinds: what a study simulates per chunk, stores, summarises and plots.

Each module here defines one :class:`StudyKind` as its ``KIND``, naming its own functions
for each role; the table of them by name (the study's sub-command), and their help texts,
are ``experiments.registry``. A kind holds

* ``section``/``params``: the name and dataclass of the study's own config table;
* ``variables(config)``: the stored per-member variables, each with the dimensions it
  adds after (seed, n, d, beta), and ``coords(config)`` for those dimensions (default none);
* ``compute(config, members)``: one chunk's numbers, arrays (batch, *extra) per variable;
* ``summarize(ds, config)``: the statistics, a Dataset without the seed dimension;
* ``plot(ds, config, out_dir)``: the standard figures (PNG + PDF) from the stored data;
* ``validate(config)``: checks across sections (raise ``ConfigError``; default none);
* ``engine(config)``: what integrates a chunk, stored as the study's ``engine`` attribute
  (default ``common.simulate_engine``: the engine ``dynamics.simulate`` takes for the
  chunks' field, tokens and integrator options).

``variant_flows`` also defines the field ``attention-variant``, and ``variants`` the tied
Gaussian ensemble of attention variants that field draws from.
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
    section: str
    params: type
    variables: Callable[[Any], dict[str, Variable]]
    compute: Callable[[Any, Any], dict[str, Any]]
    summarize: Callable[[Any, Any], Any]
    plot: Callable[[Any, Any, Any], list]
    coords: Callable[[Any], dict[str, Any]] = lambda config: {}
    validate: Callable[[Any], None] = lambda config: None
    engine: Callable[[Any], str] | None = None


__all__ = ["StudyKind", "Variable"]
