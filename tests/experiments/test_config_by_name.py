"""Configs shipped with the package are addressable by name from any directory, and equal
to the files of the checkout."""

from pathlib import Path

import pytest

from experiments.config import ConfigError, load_config, shipped_configs

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"


def test_every_config_of_the_checkout_is_shipped():
    assert set(shipped_configs()) == {p.stem for p in CONFIGS.glob("*.toml")}


@pytest.mark.parametrize("name", ["clustering_time_small", "phase_diagram_small.toml"])
def test_a_name_loads_the_shipped_file_from_any_directory(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_name = load_config(name)
    by_path = load_config(CONFIGS / (name.removesuffix(".toml") + ".toml"))
    assert by_name.to_dict() == by_path.to_dict()


def test_unknown_names_and_missing_files_say_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="clustering_time_small"):  # the list of names
        load_config("no_such_study")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
