"""The store and the execution: schema of the stored Dataset, resume after a real SIGKILL
equals an uninterrupted run byte for byte, a dask LocalCluster equals the local pool bit
for bit, a different config is refused, bad configs fail before any work, netCDF and plots
come from the store alone."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from experiments.__main__ import main
from experiments.chunks import Layout
from experiments.config import parse_config
from experiments.plotting import plot_store
from experiments.runner import run_study
from experiments.store import StoreMismatch, done_mask, open_dataset

ROOT = Path(__file__).parents[2]

SMALL = """
study = "clustering-time"
seed = 5
[field]
kind = "sa"
[grid]
n = [6]
d = [3]
beta = [0.5, 1.0, 2.0]
beta_chunk = 2
[seeds]
count = 5
chunk = 3
[integrator]
method = "rk4"
dt = 0.1
[clustering]
horizon = 60.0
fractions = [0.5]
record_dt = 0.5
"""

# 16 chunks of 2 seeds; beta = 4 at n = 32, d = 3 is slow to cluster, so each chunk takes
# a noticeable time and the kill lands mid-run
SLOW = """
study = "clustering-time"
seed = 3
[field]
kind = "sa"
[grid]
n = [32]
d = [3]
beta = [4.0]
[seeds]
count = 32
chunk = 2
[integrator]
method = "rk4"
dt = 0.1
[clustering]
horizon = 40.0
"""


def load(text: str):
    import tomllib

    return parse_config(tomllib.loads(text))


def quiet(cfg, path, **kwargs):
    return run_study(cfg, path, quiet=True, log=lambda s: None, **kwargs)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "small.zarr"
    quiet(load(SMALL), path, format="netcdf")
    return path


def test_schema_of_the_stored_dataset(small_store):
    cfg = load(SMALL)
    ds = xr.open_zarr(small_store, consolidated=False)
    assert dict(ds.sizes) == {"seed": 5, "n": 1, "d": 1, "beta": 3, "fraction": 1, "chunk": 4}
    np.testing.assert_array_equal(ds["seed"], np.arange(5))
    np.testing.assert_array_equal(ds["beta"], [0.5, 1.0, 2.0])
    assert ds["n"].values.tolist() == [6] and ds["d"].values.tolist() == [3]
    assert ds["clustering_time"].dims == ("seed", "n", "d", "beta")
    assert ds["fraction_time"].dims == ("seed", "n", "d", "beta", "fraction")
    assert ds["steps"].dtype == np.int64 and ds["clustering_time"].dtype == np.float64
    assert ds["median_time"].dims == ("n", "d", "beta")
    assert bool(ds["chunk_done"].all())
    # zarr chunks are the work chunks: 3 seeds x 1 x 1 x 2 betas
    group = zarr.open_group(str(small_store), mode="r")
    assert group["clustering_time"].chunks == (3, 1, 1, 2)
    assert group["fraction_time"].chunks == (3, 1, 1, 2, 1)
    assert group["chunk_done"].chunks == (1,)
    attrs = ds.attrs
    for key in ("config_json", "config_toml", "package_version", "git_commit", "backend",
                "dtype", "device", "command", "history", "study"):
        assert attrs[key], key
    assert attrs["study"] == "clustering-time" and attrs["complete"] == 1
    assert (attrs["backend"], attrs["dtype"], attrs["device"]) == ("numpy", "float64", "cpu")
    assert json.loads(attrs["config_json"]) == cfg.to_dict()
    assert parse_config(__import__("tomllib").loads(attrs["config_toml"])) == cfg


def test_netcdf_export_holds_the_same_data(small_store):
    nc = xr.open_dataset(small_store.with_suffix(".nc"))
    zs = open_dataset(small_store).load()
    for name in ("clustering_time", "fraction_time", "steps", "median_time", "median_high"):
        np.testing.assert_array_equal(nc[name].values, zs[name].values)
    assert nc.attrs["config_json"] == zs.attrs["config_json"]


def test_plot_from_the_store_alone(small_store, tmp_path):
    for source in (small_store, small_store.with_suffix(".nc")):
        paths = plot_store(source, tmp_path / source.suffix[1:])
        names = sorted(p.name for p in paths)
        assert "clustering_time_median.png" in names and "clustering_time_median.pdf" in names
        assert all(p.stat().st_size > 1000 for p in paths)


def test_rerun_of_a_finished_study_computes_nothing(small_store):
    before = open_dataset(small_store)["clustering_time"].values.copy()
    report = quiet(load(SMALL), small_store)
    assert (report.computed, report.reused) == (0, 4)
    np.testing.assert_array_equal(open_dataset(small_store)["clustering_time"].values, before)


def test_a_different_config_is_refused_with_the_differences(small_store):
    other = load(SMALL.replace("beta = [0.5, 1.0, 2.0]", "beta = [0.5, 1.0, 3.0]")
                 .replace('kind = "sa"', 'kind = "usa"'))
    stamp = {p: p.stat().st_mtime_ns for p in small_store.rglob("*")}
    with pytest.raises(StoreMismatch) as err:
        quiet(other, small_store)
    assert "grid.beta: stored [0.5, 1.0, 2.0], now [0.5, 1.0, 3.0]" in str(err.value)
    assert "field.kind: stored 'sa', now 'usa'" in str(err.value)
    assert stamp == {p: p.stat().st_mtime_ns for p in small_store.rglob("*")}  # untouched


def test_bad_configs_fail_before_any_work(tmp_path, capsys):
    cases = {
        "unknown": SMALL.replace("[seeds]", "[seeds]\nsize = 3"),
        "negative": SMALL.replace("n = [6]", "n = [-6]"),
        "study": SMALL,
    }
    expected = {"unknown": "unknown key seeds.size", "negative": "grid.n",
                "study": "this config is for 'clustering-time', not 'phase-diagram'"}
    for name, text in cases.items():
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        out = tmp_path / f"{name}.zarr"
        command = "phase-diagram" if name == "study" else "clustering-time"
        assert main([command, "--config", str(path), "--out", str(out), "--quiet"]) == 2
        assert expected[name] in capsys.readouterr().err
        assert not out.exists()


def test_cli_mismatch_exit_status(small_store, tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text(SMALL.replace("horizon = 60.0", "horizon = 61.0"))
    assert main(["clustering-time", "--config", str(path), "--out", str(small_store)]) == 2
    err = capsys.readouterr().err
    assert "clustering.horizon: stored 60.0, now 61.0" in err and "refusing" in err


def test_dask_local_cluster_equals_the_local_pool_bit_for_bit(small_store, tmp_path):
    quiet(load(SMALL), tmp_path / "dask.zarr", workers=2)
    a, b = open_dataset(small_store).load(), open_dataset(tmp_path / "dask.zarr").load()
    for name in ("clustering_time", "fraction_time", "steps"):
        assert a[name].values.tobytes() == b[name].values.tobytes()


def _done_files(store: Path) -> int:
    folder = store / "chunk_done" / "c"
    return sum(1 for p in folder.iterdir() if not p.name.endswith(".partial")) if folder.exists() \
        else 0


def _command(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "experiments", "clustering-time", "--config", str(config),
            "--out", str(out), "--quiet"]


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    config = tmp_path / "slow.toml"
    config.write_text(SLOW)
    cfg = load(SLOW)
    total = Layout.of(cfg).count
    store = tmp_path / "killed.zarr"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_command(config, store), cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while _done_files(store) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pool workers, mid-run
    proc.wait()
    done_at_kill = int(done_mask(store).sum())
    assert 2 <= done_at_kill < total, "the kill should land mid-run"

    rerun = subprocess.run(_command(config, store), cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300, check=True)
    assert f"{done_at_kill} already done, {total - done_at_kill} to compute" in rerun.stdout
    assert done_mask(store).all()

    reference = tmp_path / "whole.zarr"
    quiet(cfg, reference)
    resumed, whole = open_dataset(store).load(), open_dataset(reference).load()
    for name in ("clustering_time", "steps", "median_time", "median_low", "censored_fraction"):
        assert resumed[name].values.tobytes() == whole[name].values.tobytes(), name
    assert "resumed by" in resumed.attrs["history"]
    assert not list(store.rglob("*.partial"))


def test_device_option_overrides_the_config_before_any_work(tmp_path, capsys):
    from experiments.config import load_config

    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    on_gpu = load_config(path, device="cuda:1")
    assert (on_gpu.compute.device, on_gpu.compute.backend) == ("cuda:1", "torch")
    assert on_gpu.to_json() != load_config(path).to_json()  # a store remembers the device
    assert load_config(path, device="cpu").to_json() == load_config(path).to_json()
    out = tmp_path / "bad.zarr"
    code = main(["clustering-time", "--config", str(path), "--out", str(out), "--device", "tpu",
                 "--quiet"])
    assert code == 2 and "compute.device" in capsys.readouterr().err and not out.exists()
