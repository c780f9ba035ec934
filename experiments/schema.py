"""The schema of a study configuration: frozen dataclasses, one per TOML section, each
checked when it is built.

    study = "clustering-time"        # a study of experiments.registry.STUDY_KINDS
    seed = 2026                      # root entropy of every random draw
    [field]       kind = "sa" ...    # a field of experiments.registry.FIELDS
    [grid]        n, d, beta         # the parameter grid (beta: a list or {start, stop, num})
    [seeds]       count, start, chunk
    [initial]     kind = "uniform" ...
    [integrator]  method, dt, ...    # experiments.registry.METHODS and ENGINES
    [compute]     backend, dtype, device, threads
    [<section>]   the study's own parameters (e.g. [clustering] for clustering-time)

``parse_section`` builds a section from its table: an unknown key, a missing key, a value of
the wrong type or an impossible value raises :class:`ConfigError` naming the key
(``grid.n``). A field's type may carry its own condition (``Annotated[int, Check(...)]``:
``Positive``, ``InUnitInterval``, ``AtLeastOne``, ``NonNegative``, ``Times``); checks that
involve several fields are in the dataclass's ``__post_init__``. A whole config
(``StudyConfig``) turns back into a canonical nested dict (``to_dict``), JSON and TOML text
(``to_toml``). Reading a TOML file and the checks across sections are in
``experiments.config``.
"""

from __future__ import annotations

import itertools
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass
from typing import Annotated, Any, Literal

import numpy as np

from experiments.registry import ENGINES, FIXED_METHODS, INITIAL_KINDS, METHODS


class ConfigError(ValueError):
    """A configuration that cannot be run; the message names the offending key."""


class Linspace:
    """Marker type: a tuple of floats given either as a list or as {start, stop, num}."""


@dataclass(frozen=True)
class Check:
    """A condition on a config value, given as ``Annotated[type, Check(...)]``: ``coerce``
    raises ConfigError("key: " + message.format(value)) where ``holds(value)`` is false."""

    holds: Callable[[Any], bool]
    message: str


Positive = Annotated[float, Check(lambda v: v > 0, "must be > 0, got {}")]
InUnitInterval = Annotated[float, Check(lambda v: 0 < v < 1, "must lie in (0, 1), got {}")]
AtLeastOne = Annotated[int, Check(lambda v: v >= 1, "must be >= 1, got {}")]
NonNegative = Annotated[int, Check(lambda v: v >= 0, "must be >= 0, got {}")]
Times = Annotated[  # output times of a study, from the start on
    Linspace,
    Check(lambda t: len(t) >= 2 and t[0] == 0.0,
          "needs at least two times, the first one 0 (the start)"),
    Check(lambda t: all(a < b for a, b in itertools.pairwise(t)), "must be strictly increasing"),
]


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint is Linspace:
        return "a list of numbers or a table {start, stop, num}"
    if origin is Annotated:
        return _type_name(typing.get_args(hint)[0])
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}s"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "absent"
    return getattr(hint, "__name__", str(hint))


def coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` from TOML as the Python type ``hint``; ConfigError naming ``key`` if it is not."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        hint, *checks = typing.get_args(hint)
        value = coerce(value, hint, key)
        for check in checks:
            require(check.holds(value), key, check.message.format(value))
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None):
                continue
            try:
                return coerce(value, option, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key} must be {_type_name(hint)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise ConfigError(f"{key} must be {_type_name(hint)}, got {value!r}")
        return value
    if hint is Linspace:
        if isinstance(value, Mapping):
            spec = parse_section(_LinspaceSpec, value, key)
            return tuple(float(v) for v in np.linspace(spec.start, spec.stop, spec.num))
        return coerce(value, tuple[float, ...], key)
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be {_type_name(hint)}, got {value!r}")
        return tuple(coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be finite, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a table, got {value!r}")
        return parse_section(hint, value, key)
    raise TypeError(f"no parser for type {hint!r} ({key})")  # pragma: no cover - programming error


def parse_section(cls: type, table: Mapping[str, Any], where: str) -> Any:
    """The frozen dataclass ``cls`` from a TOML table; unknown and missing keys are errors."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{where}] must be a table, got {table!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    known = [f for f in fields(cls) if f.init]
    names = {f.name for f in known}
    for key in table:
        if key not in names:
            raise ConfigError(
                f"unknown key {where}.{key}; [{where}] takes {', '.join(sorted(names))}"
            )
    kwargs = {}
    for f in known:
        if f.name in table:
            kwargs[f.name] = coerce(table[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"missing key {where}.{f.name}")
    return cls(**kwargs)


def require(condition: bool, key: str, message: str) -> None:
    """Raise ConfigError("key: message") unless ``condition``."""
    if not condition:
        raise ConfigError(f"{key}: {message}")


@dataclass(frozen=True)
class _LinspaceSpec:
    start: float
    stop: float
    num: int

    def __post_init__(self) -> None:
        require(self.num >= 1, "num", f"needs at least 1 point, got {self.num}")


# -- the common sections -------------------------------------------------------------------


@dataclass(frozen=True)
class GridConfig:
    """The parameter grid: every combination of n, d and beta is simulated.

    beta_chunk: betas per work chunk (they share one batched simulation); 0 = all of them.
    """

    n: tuple[int, ...]
    d: tuple[int, ...]
    beta: Linspace
    beta_chunk: NonNegative = 0

    def __post_init__(self) -> None:
        for name in ("n", "d", "beta"):
            values = getattr(self, name)
            require(len(values) >= 1, f"grid.{name}", "needs at least one value")
            require(len(set(values)) == len(values), f"grid.{name}",
                    f"has repeated values {values}")
        require(all(v >= 1 for v in self.n), "grid.n", f"token counts must be >= 1, got {self.n}")
        require(all(v >= 2 for v in self.d), "grid.d",
                f"tokens on S^(d-1) need d >= 2, got {self.d}")

    @property
    def beta_block(self) -> int:
        return self.beta_chunk or len(self.beta)


@dataclass(frozen=True)
class SeedsConfig:
    """Seeds start, start + 1, ..., start + count - 1, ``chunk`` of them per work chunk."""

    count: AtLeastOne
    start: NonNegative = 0
    chunk: AtLeastOne = 64

    @property
    def values(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.count, dtype=np.int64)


@dataclass(frozen=True)
class InitialConfig:
    """Initial tokens (dynamics.initial): one draw per seed, shared by every beta.

    uniform: i.i.d. uniform on S^{d-1}; orthogonal: a random orthonormal frame (d >= n);
    equiangular: <x_i, x_j> = rho (d >= n); hemisphere: i.i.d. on {<x, e_1> > 0};
    uniform-angles: i.i.d. uniform angles (circle fields).
    """

    kind: Literal[INITIAL_KINDS] = "uniform"
    rho: float = 0.0


@dataclass(frozen=True)
class IntegratorConfig:
    """``dynamics.simulate`` options. Fixed-step methods need dt; adaptive ones use rtol/atol.
    engine: "auto" (the compiled engine where it applies on the CPU, the fused Triton field
    on CUDA tensors), "native" (the numpy/torch drivers), "compiled" (require
    ``dynamics.compiled``), or "triton" / "triton-graphs" to require the fused field (torch
    backend; CPU tensors only under TRITON_INTERPRET=1)."""

    method: Literal[METHODS] = "rk4"
    dt: float = 0.0
    rtol: Positive = 1e-6
    atol: Positive = 1e-9
    max_steps: AtLeastOne = 100_000
    reduce: Literal["auto", "off"] = "auto"
    engine: Literal[ENGINES] = "auto"

    def __post_init__(self) -> None:
        if self.fixed_step:
            require(self.dt > 0, "integrator.dt", f"method {self.method!r} needs dt > 0")
        else:
            require(self.dt == 0, "integrator.dt", f"adaptive method {self.method!r} takes no dt")

    @property
    def fixed_step(self) -> bool:
        return self.method in FIXED_METHODS

    def simulate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"method": self.method, "max_steps": self.max_steps,
                                  "reduce": "auto" if self.reduce == "auto" else False}
        if self.engine != "auto":
            kwargs["engine"] = self.engine
        if self.fixed_step:
            kwargs["dt"] = self.dt
        else:
            kwargs.update(rtol=self.rtol, atol=self.atol)
        return kwargs


@dataclass(frozen=True)
class ComputeConfig:
    """Where chunks run. threads: torch threads inside one chunk (results do not depend on
    it on the CPU; parallelism comes from running chunks side by side)."""

    backend: Literal["numpy", "torch"] = "numpy"
    dtype: Literal["float64", "float32"] = "float64"
    device: str = "cpu"
    threads: AtLeastOne = 1

    def __post_init__(self) -> None:
        ok = self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")
        require(ok, "compute.device", f"must be 'cpu', 'cuda' or 'cuda:K', got {self.device!r}")
        if self.device != "cpu":
            require(self.backend == "torch", "compute.device",
                    f"device {self.device!r} needs backend = 'torch'")

    @property
    def gpu(self) -> bool:
        return self.device != "cpu"


@dataclass(frozen=True)
class FieldConfig:
    """The field's registry name and its parameters (a dataclass of that registry entry)."""

    kind: str
    params: Any

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **_plain(asdict(self.params))}


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: the common sections and the study's own ``params`` (its section)."""

    study: str
    seed: int
    field: FieldConfig
    grid: GridConfig
    seeds: SeedsConfig
    initial: InitialConfig
    integrator: IntegratorConfig
    compute: ComputeConfig
    section: str
    params: Any

    def to_dict(self) -> dict[str, Any]:
        """The canonical nested dict (every default filled in); JSON- and TOML-able."""
        sections = ("grid", "seeds", "initial", "integrator", "compute")
        return {"study": self.study, "seed": self.seed, "field": self.field.to_dict(),
                **{name: _plain(asdict(getattr(self, name))) for name in sections},
                self.section: _plain(asdict(self.params))}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_toml(self) -> str:
        return to_toml(self.to_dict())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_toml(data: Mapping[str, Any]) -> str:
    """A canonical dict as TOML text (top-level scalars first, then one table per section).
    Its values (finite numbers, booleans, strings and lists of them) are written as JSON,
    which is TOML for them."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    for key, table in data.items():
        if isinstance(table, Mapping):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"
