"""Reading a study configuration: a TOML file (or its parsed dict) into a checked
``experiments.schema.StudyConfig``, and the differences between two stored configs.

``parse_config`` looks the study and the field up in ``experiments.registry``, parses every
section with its schema dataclass, then runs the checks across sections: the field's own,
the initial tokens against the field's space and the grid, the engine against the backend,
and the study's. A configuration fully determines a study's numbers (seeds included); the
store keeps its canonical form and compares it on resume (``differences``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from experiments.registry import FIELDS, STUDY_KINDS
from experiments.schema import (
    ComputeConfig,
    ConfigError,
    FieldConfig,
    GridConfig,
    InitialConfig,
    IntegratorConfig,
    NonNegative,
    SeedsConfig,
    StudyConfig,
    coerce,
    parse_section,
    require,
)

COMMON = ("study", "seed", "field", "grid", "seeds", "initial", "integrator", "compute")


def parse_config(data: Mapping[str, Any], *, expect: str | None = None) -> StudyConfig:
    """A :class:`StudyConfig` from a parsed TOML document (a dict); checks everything."""
    if not isinstance(data.get("study"), str):
        raise ConfigError(f"missing key study (one of {', '.join(STUDY_KINDS)})")
    name = data["study"]
    if name not in STUDY_KINDS:
        raise ConfigError(f"study: unknown study {name!r}; known: {', '.join(STUDY_KINDS)}")
    if expect is not None and name != expect:
        raise ConfigError(f"study: this config is for {name!r}, not {expect!r}")
    kind = STUDY_KINDS[name]
    allowed = (*COMMON, kind.section)
    for key in data:
        if key not in allowed:
            raise ConfigError(f"unknown key {key}; a {name} config has {', '.join(allowed)}")
    for key in ("field", "grid", "seeds", kind.section):
        if key not in data:
            raise ConfigError(f"missing section [{key}]")
    seed = coerce(data.get("seed", 0), NonNegative, "seed")

    table = data["field"]
    if not isinstance(table, Mapping) or not isinstance(table.get("kind"), str):
        raise ConfigError(f"missing key field.kind (one of {', '.join(FIELDS)})")
    if table["kind"] not in FIELDS:
        raise ConfigError(
            f"field.kind: unknown field {table['kind']!r}; known: {', '.join(FIELDS)}")
    entry = FIELDS[table["kind"]]
    params = parse_section(entry.params, {k: v for k, v in table.items() if k != "kind"}, "field")
    config = StudyConfig(
        study=name,
        seed=seed,
        field=FieldConfig(table["kind"], params),
        grid=parse_section(GridConfig, data["grid"], "grid"),
        seeds=parse_section(SeedsConfig, data["seeds"], "seeds"),
        initial=parse_section(InitialConfig, data.get("initial", {}), "initial"),
        integrator=parse_section(IntegratorConfig, data.get("integrator", {}), "integrator"),
        compute=parse_section(ComputeConfig, data.get("compute", {}), "compute"),
        section=kind.section,
        params=parse_section(kind.params, data[kind.section], kind.section),
    )
    entry.check(params, config)
    _check_initial(config)
    if config.integrator.engine.startswith("triton"):
        require(config.compute.backend == "torch", "integrator.engine",
                f"engine {config.integrator.engine!r} needs compute.backend = 'torch'")
    kind.validate(config)
    return config


def _check_initial(config: StudyConfig) -> None:
    space = FIELDS[config.field.kind].space
    kind = config.initial.kind
    if space == "angles":
        require(kind == "uniform-angles", "initial.kind",
                f"field {config.field.kind!r} lives on angles: use 'uniform-angles', not {kind!r}")
        require(config.grid.d == (2,), "grid.d", f"field {config.field.kind!r} is on the circle: "
                f"d must be [2], got {list(config.grid.d)}")
        return
    require(kind != "uniform-angles", "initial.kind",
            f"'uniform-angles' starts circle fields; field {config.field.kind!r} is on the sphere")
    if kind in ("orthogonal", "equiangular"):
        bad = [(n, d) for n in config.grid.n for d in config.grid.d if d < n]
        require(not bad, "initial.kind",
                f"{kind!r} starts need d >= n; the grid has (n, d) = {bad}")
    if kind == "equiangular":
        low = max(-1.0 / (n - 1) for n in config.grid.n) if max(config.grid.n) > 1 else -1.0
        require(low < config.initial.rho < 1, "initial.rho",
                f"equiangular starts need {low:.4g} < rho < 1, got {config.initial.rho}")


def shipped_configs() -> dict[str, Any]:
    """The example configs installed with the package: name (file stem) -> resource."""
    from importlib.resources import files

    folder = files("experiments") / "configs"
    return {entry.name.removesuffix(".toml"): entry for entry in folder.iterdir()
            if entry.name.endswith(".toml")}


def resolve_config(path: str | Path) -> Any:
    """A config file: ``path`` itself where it exists, else the shipped config of that name
    (``clustering_time_small`` or ``clustering_time_small.toml``, from any directory)."""
    candidate = Path(path)
    if candidate.exists() or len(candidate.parts) > 1:
        return candidate
    shipped = shipped_configs()
    name = candidate.name.removesuffix(".toml")
    if name in shipped:
        return shipped[name]
    raise ConfigError(f"config {str(path)!r} is neither a file nor a shipped config; the "
                      f"shipped ones are {', '.join(sorted(shipped))}")


def load_config(path: str | Path, *, expect: str | None = None,
                device: str | None = None, engine: str | None = None) -> StudyConfig:
    """Read and check a TOML config: a file, or a shipped config by name
    (``resolve_config``). ``device`` overrides ``[compute] device`` (a GPU device also
    selects the torch backend); it is part of the stored config, since results on another
    device are not bit-identical. ``engine`` overrides ``[integrator] engine``."""
    path = resolve_config(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    if device is not None:
        compute = dict(data.get("compute", {}), device=device)
        if device != "cpu":
            compute["backend"] = "torch"
        data = {**data, "compute": compute}
    if engine is not None:
        data = {**data, "integrator": dict(data.get("integrator", {}), engine=engine)}
    return parse_config(data, expect=expect)


def config_from_dict(data: Mapping[str, Any]) -> StudyConfig:
    """Inverse of ``StudyConfig.to_dict``."""
    return parse_config(data)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b": leaf} of a nested dict."""
    if not isinstance(value, Mapping):
        return {prefix: value}
    return {key: leaf for k, v in value.items()
            for key, leaf in _flatten(v, f"{prefix}.{k}" if prefix else str(k)).items()}


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two canonical config dicts, one per key."""
    a, b = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key not in b:
            lines.append(f"{key}: stored {a[key]!r}, absent now")
        elif key not in a:
            lines.append(f"{key}: absent in the store, now {b[key]!r}")
        elif a[key] != b[key]:
            lines.append(f"{key}: stored {a[key]!r}, now {b[key]!r}")
    return lines
