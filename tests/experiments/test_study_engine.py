"""The study says which engine integrated it: the compiled engine by default where it
applies, the numpy drivers with --engine native, the Gram-space scheme for the phase
diagram; both engines store the same clustering times."""

import numpy as np

from experiments.__main__ import main
from experiments.config import parse_config
from experiments.runner import run_study
from experiments.store import open_dataset, read_attrs

CLUSTERING = """
study = "clustering-time"
seed = 5
[field]
kind = "sa"
[grid]
n = [6]
d = [3]
beta = [1.0, 2.0]
[seeds]
count = 4
chunk = 4
[integrator]
method = "rk4"
dt = 0.1
[clustering]
delta = 1e-3
horizon = 60.0
"""


def test_engine_attribute_and_option(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(CLUSTERING)
    stores = {}
    for engine in ("auto", "native"):
        stores[engine] = tmp_path / f"{engine}.zarr"
        status = main(["clustering-time", "--config", str(path), "--out", str(stores[engine]),
                       "--quiet", "--engine", engine])
        assert status == 0
    assert read_attrs(stores["auto"])["engine"] == "compiled"
    assert read_attrs(stores["native"])["engine"] == "native"
    auto = open_dataset(stores["auto"])["clustering_time"].values
    native = open_dataset(stores["native"])["clustering_time"].values
    assert np.isfinite(auto).all()
    np.testing.assert_allclose(auto, native, rtol=1e-12)


def test_phase_diagram_on_the_gram_route_says_so(tmp_path):
    config = parse_config({
        "study": "phase-diagram", "seed": 1, "field": {"kind": "sa"},
        "grid": {"n": [4], "d": [16], "beta": [1.0]}, "seeds": {"count": 2, "chunk": 2},
        "integrator": {"method": "authors", "dt": 0.1},
        "phase": {"delta": 1e-3, "times": {"start": 0.0, "stop": 1.0, "num": 3}},
    })
    run_study(config, tmp_path / "p.zarr", quiet=True, log=lambda s: None)
    assert read_attrs(tmp_path / "p.zarr")["engine"] == "gram-space"
