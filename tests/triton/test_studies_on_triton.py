"""A study run on the fused Triton field (``integrator.engine``): the route ``--device cuda``
takes, here on CPU tensors in the interpreter, against the native field."""

import numpy as np
import pytest

import attention.triton
from experiments.config import ConfigError, parse_config
from experiments.runner import run_study
from experiments.store import open_dataset


def config(engine: str, backend: str = "torch"):
    return parse_config({
        "study": "clustering-time", "seed": 5, "field": {"kind": "sa"},
        "grid": {"n": [3], "d": [3], "beta": [0.5, 1.0]},
        "seeds": {"count": 2, "chunk": 2},
        "integrator": {"method": "euler", "dt": 0.2, "engine": engine},
        "compute": {"backend": backend, "dtype": "float32"},
        "clustering": {"horizon": 12.0, "delta": 0.05, "record_dt": 0.2},
    })


def test_clustering_times_on_the_fused_field_equal_the_native_ones(tmp_path, monkeypatch):
    launches = []
    original = attention.triton.flow_rhs

    def counted(*args, **kwargs):
        launches.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(attention.triton, "flow_rhs", counted)
    datasets = {}
    for engine in ("triton", "native"):
        before = len(launches)
        run_study(config(engine), tmp_path / f"{engine}.zarr", quiet=True, log=lambda s: None)
        datasets[engine] = open_dataset(tmp_path / f"{engine}.zarr").load()
        used = len(launches) - before
        assert (used > 0) == (engine == "triton")  # one launch per step for the whole chunk
    fused = datasets["triton"]["clustering_time"].values
    native = datasets["native"]["clustering_time"].values
    assert np.isfinite(fused).all()  # d = 3: every run clusters (Thm 6.1) before t = 12
    np.testing.assert_allclose(fused, native, rtol=1e-4)


def test_a_triton_engine_needs_the_torch_backend():
    with pytest.raises(ConfigError, match=r"integrator\.engine"):
        config("triton", backend="numpy")
    with pytest.raises(ConfigError, match=r"integrator\.engine"):
        config("flash")
