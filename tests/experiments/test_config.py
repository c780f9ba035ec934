"""Study configs: strict parsing (every bad key named before any work), canonical round
trips, and the differences a resumed store reports."""

import tomllib
from pathlib import Path

import pytest

from experiments.config import (
    ConfigError,
    config_from_dict,
    differences,
    load_config,
    parse_config,
)

CONFIGS = sorted((Path(__file__).parents[2] / "experiments" / "configs").glob("*.toml"))


def base() -> dict:
    return {
        "study": "clustering-time",
        "seed": 7,
        "field": {"kind": "sa"},
        "grid": {"n": [8], "d": [3], "beta": [1.0, 2.0]},
        "seeds": {"count": 4, "chunk": 2},
        "integrator": {"method": "rk4", "dt": 0.1},
        "clustering": {"horizon": 10.0},
    }


def with_change(section: str | None, key: str, value) -> dict:
    data = base()
    if section is None:
        data[key] = value
    else:
        data.setdefault(section, {})[key] = value
    return data


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_example_configs_parse_and_round_trip(path):
    config = load_config(path)
    assert config_from_dict(config.to_dict()) == config
    assert parse_config(tomllib.loads(config.to_toml())) == config


def test_defaults_are_filled_in_and_linspace_expands():
    data = base()
    data["grid"]["beta"] = {"start": 0.5, "stop": 2.0, "num": 4}
    config = parse_config(data)
    assert config.grid.beta == (0.5, 1.0, 1.5, 2.0)
    d = config.to_dict()
    assert d["initial"] == {"kind": "uniform", "rho": 0.0}
    assert d["compute"] == {"backend": "numpy", "dtype": "float64", "device": "cpu", "threads": 1}
    assert d["clustering"]["delta"] == 1e-3 and d["field"] == {"kind": "sa", "causal": False}


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("grid", "colour", 1, "unknown key grid.colour"),
    (None, "extra", {}, "unknown key extra"),
    ("field", "bias", 1.0, "unknown key field.bias"),
    ("grid", "n", [-4], "grid.n"),
    ("grid", "n", [8, 8], "grid.n: has repeated"),
    ("grid", "d", [1], "grid.d"),
    ("grid", "n", 8, "grid.n must be a list"),
    ("grid", "beta", ["x"], r"grid.beta\[0\] must be a number"),
    ("seeds", "count", 0, "seeds.count"),
    ("seeds", "chunk", 2.5, "seeds.chunk must be an integer"),
    ("integrator", "dt", 0.0, "integrator.dt"),
    ("integrator", "method", "leapfrog", "integrator.method must be one of"),
    ("clustering", "horizon", -1.0, "clustering.horizon"),
    ("clustering", "delta", 1.5, "clustering.delta"),
    ("clustering", "fractions", [0.0], "clustering.fractions"),
    ("compute", "device", "cuda", "needs backend = 'torch'"),
    ("compute", "backend", "jax", "compute.backend must be one of"),
    ("field", "kind", "attention-v2", "field.kind: unknown field"),
    ("initial", "kind", "orthogonal", r"need d >= n; the grid has \(n, d\) = \[\(8, 3\)\]"),
    ("initial", "kind", "uniform-angles", "starts circle fields"),
    (None, "seed", -1, "seed: must be >= 0"),
    (None, "study", "phase-diagram", "unknown key clustering; a phase-diagram config has"),
])
def test_bad_configs_name_the_key(section, key, value, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(with_change(section, key, value))


def test_missing_sections_and_keys():
    data = base()
    del data["clustering"]["horizon"]
    with pytest.raises(ConfigError, match=r"missing key clustering\.horizon"):
        parse_config(data)
    data = base()
    del data["grid"]
    with pytest.raises(ConfigError, match=r"missing section \[grid\]"):
        parse_config(data)
    with pytest.raises(ConfigError, match="not 'phase-diagram'"):
        parse_config(base(), expect="phase-diagram")


def test_field_specific_checks():
    data = with_change("field", "kind", "circle-sa")
    with pytest.raises(ConfigError, match="lives on angles"):
        parse_config(data)
    data["initial"] = {"kind": "uniform-angles"}
    data["grid"]["d"] = [2]
    with pytest.raises(ConfigError, match="clustering-time detects clustering"):
        parse_config(data)
    data = with_change("field", "kind", "random")
    data["field"]["random_kq"] = 1
    with pytest.raises(ConfigError, match=r"field\.random_kq"):
        parse_config(data)


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("study = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")


def test_differences_name_every_changed_key():
    a = parse_config(base()).to_dict()
    changed = base()
    changed["grid"]["beta"] = [1.0, 3.0]
    changed["field"] = {"kind": "usa"}
    b = parse_config(changed).to_dict()
    assert differences(a, b) == [
        "field.kind: stored 'sa', now 'usa'",
        "grid.beta: stored [1.0, 2.0], now [1.0, 3.0]",
    ]
    assert differences(a, a) == []
