"""The result store: one xarray Dataset per study, in a zarr directory, written chunk by chunk.

Layout of a store (``xarray.open_zarr(path)`` reads it as a Dataset):

* coordinates ``seed``, ``n``, ``d``, ``beta`` and the study's own (``time``, ``fraction``);
* per-member variables with dims (seed, n, d, beta, ...), zarr-chunked exactly like the
  work chunks (``experiments.chunks``), so each work chunk owns its zarr chunks;
* ``chunk_done`` (chunk,): one boolean per work chunk, each its own zarr chunk, set only
  after the chunk's data are written. zarr's local store writes every chunk file to a
  temporary name and renames it into place, so after a SIGKILL each file is either
  complete or absent: a chunk marked done has all its data, and a rerun recomputes
  exactly the chunks not marked;
* once every chunk is done, the study's summary variables (no seed dimension) and the
  attribute ``complete = 1``;
* attributes: ``study``, ``config_json``/``config_toml`` (the full canonical config),
  ``package_version``, ``git_commit``, ``backend``, ``dtype``, ``device``, ``command``
  (the command line that created the store) and ``history`` (one line per run).

A new store is built under a temporary name and renamed into place, so a store either
exists with its full schema or not at all. ``export_netcdf`` writes the finished Dataset
as one netCDF file (through a temporary file and a rename as well).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from experiments.chunks import GRID_DIMS, Layout, WorkChunk
from experiments.config import StudyConfig, differences
from experiments.registry import STUDY_KINDS

STORE_VERSION = 1
DONE = "chunk_done"


class StoreMismatch(ValueError):
    """The store at this path holds a different study; the message lists the differences."""


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("attention-flows")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def git_commit() -> str:
    """The checkout's HEAD commit (with "+dirty" if files changed), or "unknown"."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=root, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if status.strip() else "")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _template(config: StudyConfig, layout: Layout, command: str) -> Any:
    import dask.array as da
    import xarray as xr

    kind = STUDY_KINDS[config.study]
    coords: dict[str, Any] = {
        "seed": config.seeds.values,
        "n": np.asarray(config.grid.n, dtype=np.int64),
        "d": np.asarray(config.grid.d, dtype=np.int64),
        "beta": np.asarray(config.grid.beta, dtype=np.float64),
    }
    coords.update(kind.coords(config))
    sizes = {name: np.asarray(values).size for name, values in coords.items()}
    data_vars: dict[str, Any] = {}
    encoding: dict[str, Any] = {}
    for name, var in kind.variables(config).items():
        dims = (*GRID_DIMS, *var.extra_dims)
        shape = tuple(sizes[dim] for dim in dims)
        chunks = (*layout.zarr_chunks, *shape[len(GRID_DIMS):])
        fill = np.nan if np.dtype(var.dtype).kind == "f" else 0
        data_vars[name] = (dims, da.full(shape, fill, chunks=chunks, dtype=var.dtype), var.attrs)
        encoding[name] = {"chunks": chunks}
    data_vars[DONE] = (("chunk",), da.zeros(layout.count, chunks=1, dtype=bool),
                       {"long_name": "work chunk written completely"})
    encoding[DONE] = {"chunks": (1,)}
    attrs = {
        "title": f"attention-flows {config.study} study",
        "study": config.study,
        "store_version": STORE_VERSION,
        "config_json": config.to_json(),
        "config_toml": config.to_toml(),
        "package_version": package_version(),
        "git_commit": git_commit(),
        "backend": config.compute.backend,
        "dtype": config.compute.dtype,
        "device": config.compute.device,
        "command": command,
        "created": _now(),
        "history": f"{_now()} created by: {command}",
        "chunk_shape": json.dumps(list(layout.shape)),
        "complete": 0,
    }
    return xr.Dataset(data_vars, coords, attrs), encoding


def create_store(path: Path, config: StudyConfig, command: str) -> None:
    """Write the empty store (schema, coordinates, attributes) at ``path`` atomically."""
    layout = Layout.of(config)
    ds, encoding = _template(config, layout, command)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex[:8]}")
    try:
        ds.to_zarr(staging, mode="w-", compute=False, consolidated=False, zarr_format=3,
                   encoding=encoding)
        os.rename(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _group(path: Path, mode: str = "r") -> Any:
    import zarr

    return zarr.open_group(str(path), mode=mode, zarr_format=3)


def stored_config(path: Path) -> dict[str, Any]:
    """The canonical config dict kept in a store (zarr directory or netCDF file)."""
    attrs = read_attrs(path)
    if "config_json" not in attrs:
        raise StoreMismatch(f"{path} is not a study store (no config_json attribute)")
    return json.loads(attrs["config_json"])


def read_attrs(path: Path) -> dict[str, Any]:
    if Path(path).suffix == ".nc":
        import xarray as xr

        with xr.open_dataset(path) as ds:
            return dict(ds.attrs)
    try:
        return dict(_group(path).attrs)
    except Exception as err:
        raise StoreMismatch(f"{path} exists but is not a zarr study store ({err})") from None


def check_compatible(path: Path, config: StudyConfig) -> None:
    """Refuse (StoreMismatch) unless the store at ``path`` was made from the same config."""
    stored = stored_config(path)
    diff = differences(stored, config.to_dict())
    if diff:
        raise StoreMismatch(
            f"{path} holds a study with a different config; refusing to write into it.\n"
            + "\n".join(f"  {line}" for line in diff)
            + "\nUse another --out, or delete the old store to start over."
        )


def done_mask(path: Path) -> np.ndarray:
    """(chunks,) booleans: which work chunks are written completely."""
    return np.asarray(_group(path)[DONE][:], dtype=bool)


def clean_partial_files(path: Path) -> int:
    """Remove temporary files of writes interrupted by a kill; returns how many."""
    removed = 0
    for leftover in Path(path).rglob("*.partial"):
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed


class ChunkWriter:
    """Writes chunk results into an open store (the only writer: the driver process)."""

    def __init__(self, path: Path) -> None:
        self.group = _group(path, "r+")

    def write(self, chunk: WorkChunk, results: dict[str, np.ndarray]) -> None:
        for name, block in results.items():
            array = self.group[name]
            array[chunk.region(array.ndim - len(GRID_DIMS))] = block
        self.group[DONE][chunk.index] = True


def append_history(path: Path, line: str) -> None:
    group = _group(path, "r+")
    group.attrs["history"] = f"{group.attrs.get('history', '')}\n{_now()} {line}".strip()


def open_dataset(path: Path) -> Any:
    """The stored Dataset (lazy for zarr), from a zarr directory or a netCDF file."""
    import xarray as xr

    path = Path(path)
    if path.suffix == ".nc":
        return xr.open_dataset(path)
    return xr.open_zarr(str(path), consolidated=False)


def write_summary(path: Path, summary: Any) -> None:
    """Add the summary variables and mark the store complete."""
    group = _group(path)
    existing = set(group.array_keys())
    attrs = dict(group.attrs)
    summary = summary.drop_vars([c for c in summary.coords if c in existing])
    summary.attrs = {}
    summary.to_zarr(str(path), mode="a", consolidated=False, zarr_format=3)
    group = _group(path, "r+")
    group.attrs.update({**attrs, "complete": 1})


def export_netcdf(path: Path, target: Path) -> Path:
    """The whole store as one netCDF file at ``target`` (written to a temporary file first)."""
    ds = open_dataset(path).load()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        ds.to_netcdf(staging, engine="netcdf4")
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target
