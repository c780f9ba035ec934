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
* integrity (store version 2): every chunk of every array (data, summary, coordinates and
  ``chunk_done``) ends in a CRC-32C checksum (zarr's ``crc32c`` codec after zstd), and
  every chunk is written as a file even when it holds only the fill value, so a chunk
  file that is absent is missing, not empty. A done flag is trusted only together with
  data that verify: ``verify_store`` (``python -m experiments verify STORE``) lists, per
  work chunk, ok / not done / missing data file / corrupt data (checksum or decode
  failure) / damaged flag, and the rerun
  (``done_mask(path, repair=True)``) clears the flags of damaged chunks, deletes their
  damaged files and recomputes them (and the summary). Stores of version 1 (no checksum,
  all-fill chunks not written) still open and are verified as well as they can be: every
  chunk file must decode to the right shape, and a done chunk's absent data file counts
  as missing (it is recomputed once, then written);
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
import itertools
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.chunks import GRID_DIMS, Layout, WorkChunk
from experiments.config import StudyConfig, config_from_dict, differences
from experiments.registry import STUDY_KINDS

STORE_VERSION = 2  # 2: crc32c on every chunk, every chunk written (see the module docstring)
DONE = "chunk_done"
CHECKSUM = "crc32c"


class StoreMismatch(ValueError):
    """The store at this path holds a different study; the message lists the differences."""


class StoreDamaged(StoreMismatch):
    """The store is damaged beyond what a rerun repairs (an array's metadata is unreadable)."""


def _codecs() -> dict[str, Any]:
    """zarr v3 encoding of every array: zstd, then a CRC-32C of the compressed bytes."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return {"compressors": (ZstdCodec(level=0), Crc32cCodec())}


def _every_chunk_written() -> Any:
    """zarr config under which chunks equal to the fill value are written too."""
    import zarr

    return zarr.config.set({"array.write_empty_chunks": True})


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


def _coords(config: StudyConfig) -> dict[str, Any]:
    coords: dict[str, Any] = {
        "seed": config.seeds.values,
        "n": np.asarray(config.grid.n, dtype=np.int64),
        "d": np.asarray(config.grid.d, dtype=np.int64),
        "beta": np.asarray(config.grid.beta, dtype=np.float64),
    }
    coords.update(STUDY_KINDS[config.study].coords(config))
    return coords


def _template(config: StudyConfig, layout: Layout, command: str) -> Any:
    import dask.array as da
    import xarray as xr

    kind = STUDY_KINDS[config.study]
    coords = _coords(config)
    sizes = {name: np.asarray(values).size for name, values in coords.items()}
    data_vars: dict[str, Any] = {}
    encoding: dict[str, Any] = {}
    for name, var in kind.variables(config).items():
        dims = (*GRID_DIMS, *var.extra_dims)
        shape = tuple(sizes[dim] for dim in dims)
        chunks = (*layout.zarr_chunks, *shape[len(GRID_DIMS):])
        fill = np.nan if np.dtype(var.dtype).kind == "f" else 0
        data_vars[name] = (dims, da.full(shape, fill, chunks=chunks, dtype=var.dtype), var.attrs)
        encoding[name] = {"chunks": chunks, **_codecs()}
    data_vars[DONE] = (("chunk",), da.zeros(layout.count, chunks=1, dtype=bool),
                       {"long_name": "work chunk written completely"})
    encoding[DONE] = {"chunks": (1,), **_codecs()}
    encoding.update({name: _codecs() for name in coords})
    attrs = {
        "title": f"attention-flows {config.study} study",
        "study": config.study,
        "store_version": STORE_VERSION,
        "checksum": CHECKSUM,
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


def create_store(path: Path, config: StudyConfig, command: str, engine: str = "unknown") -> None:
    """Write the empty store (schema, coordinates, attributes) at ``path`` atomically;
    ``engine`` is what integrates the chunks (``StudyKind.engine``)."""
    layout = Layout.of(config)
    ds, encoding = _template(config, layout, command)
    ds.attrs["engine"] = engine
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex[:8]}")
    try:
        ds.to_zarr(staging, mode="w-", compute=False, consolidated=False, zarr_format=3,
                   encoding=encoding, write_empty_chunks=True)
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


# -- integrity ------------------------------------------------------------------------------

OK = "ok"
NOT_DONE = "not-done"
MISSING = "missing"
CORRUPT = "corrupt"
FLAG_DAMAGED = "flag-damaged"
DAMAGE: tuple[str, ...] = (MISSING, CORRUPT, FLAG_DAMAGED)
_FULL_READ_BYTES = 256 * 2**20  # arrays up to this size are checked in one read first


@dataclass(frozen=True)
class ChunkStatus:
    """One work chunk: its ``status`` (``OK``, ``NOT_DONE`` or one of ``DAMAGE``), a line per
    problem found, and the chunk files (relative to the store) a repair deletes."""

    index: int
    status: str
    problems: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArrayDamage:
    """Damage outside the work chunks: a summary variable, a coordinate, or an array whose
    metadata cannot be read (``role`` "summary", "coordinate" or "metadata")."""

    name: str
    role: str
    problems: tuple[str, ...]
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoreReport:
    """What ``verify_store`` found; ``done`` is the mask of chunks a rerun may trust."""

    path: Path
    study: str
    store_version: int
    checksummed: bool
    complete: bool
    chunks: tuple[ChunkStatus, ...]
    arrays: tuple[ArrayDamage, ...] = field(default=())

    @property
    def done(self) -> np.ndarray:
        return np.array([c.status == OK for c in self.chunks], dtype=bool)

    @property
    def damaged(self) -> tuple[ChunkStatus, ...]:
        return tuple(c for c in self.chunks if c.status in DAMAGE)

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.arrays

    def counts(self) -> dict[str, int]:
        counts = {status: 0 for status in (OK, NOT_DONE, *DAMAGE)}
        for chunk in self.chunks:
            counts[chunk.status] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": str(self.path), "study": self.study, "store_version": self.store_version,
            "checksummed": self.checksummed, "complete": self.complete, "ok": self.ok,
            "chunks": len(self.chunks), "counts": self.counts(),
            "damaged": [{"chunk": c.index, "status": c.status, "problems": list(c.problems)}
                        for c in self.damaged],
            "arrays": [{"name": a.name, "role": a.role, "problems": list(a.problems)}
                       for a in self.arrays],
        }


def _present_chunk_keys(root: Path, name: str) -> set[str]:
    """Chunk keys (``c/0/1/...``) of array ``name`` that exist as files: listed, never read
    (zarr reads an absent chunk as the fill value without a word)."""
    base = root / name
    keys = set()
    for folder, _, files in os.walk(base):
        for file in files:
            if file == "zarr.json" or file.endswith(".partial"):
                continue
            keys.add(Path(os.path.relpath(os.path.join(folder, file), base)).as_posix())
    return keys


def _grid_of(array: Any) -> list[tuple[int, ...]]:
    """Every chunk coordinate of ``array``."""
    counts = [-(-size // chunk) for size, chunk in zip(array.shape, array.chunks, strict=True)]
    return list(itertools.product(*(range(c) for c in counts)))


def _covering(array: Any, region: tuple[slice, ...]) -> list[tuple[int, ...]]:
    """The chunk coordinates of ``array`` that ``region`` touches."""
    ranges = []
    for cut, chunk, size in zip(region, array.chunks, array.shape, strict=True):
        start, stop, _ = cut.indices(size)
        ranges.append(range(start // chunk, (stop - 1) // chunk + 1) if stop > start
                      else range(0))
    return list(itertools.product(*ranges))


def _check_chunks(array: Any, name: str, root: Path,
                  coords: list[tuple[int, ...]]) -> tuple[dict[tuple, str], Any]:
    """(problem per chunk coordinate - "missing" or "corrupt: why" -, values or None).

    Absent files are found by listing; present ones are decoded (checksum, decompression,
    shape), first the whole array in one read, chunk by chunk only where that fails."""
    encode = array.metadata.chunk_key_encoding.encode_chunk_key
    present = _present_chunk_keys(root, name)
    problems: dict[tuple, str] = {c: MISSING for c in coords if encode(c) not in present}
    values = None
    if array.nbytes <= _FULL_READ_BYTES:
        try:
            values = array[...]
        except Exception:  # any failure to decode: find the chunk below
            values = None
    if values is None:
        for c in coords:
            if c in problems:
                continue
            try:
                array.get_block_selection(c)
            except Exception as err:  # checksum, zstd, shape: all corrupt
                why = ("checksum mismatch" if "checksum" in str(err).lower()
                       else f"{type(err).__name__}: {str(err)[:80]}")
                problems[c] = f"{CORRUPT} ({why})"
    return problems, values


def _checksummed(array: Any) -> bool:
    return any(type(codec).__name__ == "Crc32cCodec" for codec in array.metadata.codecs)


def _config_of(path: Path) -> StudyConfig:
    return config_from_dict(stored_config(path))


def verify_store(path: Path) -> StoreReport:
    """Check every chunk of the store at ``path``, reading only (see the module docstring).

    Per work chunk: ``OK`` (flag set, every data chunk present and decoding - with its
    checksum in a version-2 store), ``NOT_DONE`` (flag clear), ``MISSING`` (flag set, a
    data chunk file absent), ``CORRUPT`` (a data chunk present but failing its checksum or
    decoding, whatever the flag) or ``FLAG_DAMAGED`` (the flag's file fails to decode, or is
    absent in a store marked complete). Summary variables and coordinates are checked too
    (``StoreReport.arrays``). A data chunk shared by several work chunks counts for each.
    Stores written before checksums (version 1) are checked as well as they can be: each
    file must decode to its chunk's shape. Not a study store: ``StoreMismatch``.
    """
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise StoreMismatch(f"{path} is not a zarr study store (no zarr.json)")
    config = _config_of(path)
    group = _group(path)
    attrs = dict(group.attrs)
    version = int(attrs.get("store_version", 1))
    complete = int(attrs.get("complete", 0)) == 1
    layout = Layout.of(config)
    kind = STUDY_KINDS[config.study]
    member_vars = list(kind.variables(config))
    coords = list(_coords(config))
    arrays: list[ArrayDamage] = []
    problems: dict[int, list[str]] = {i: [] for i in range(layout.count)}
    files: dict[int, set[str]] = {i: set() for i in range(layout.count)}
    corrupt: set[int] = set()
    missing: set[int] = set()
    checksummed = True
    opened: dict[str, Any] = {}
    listed = {entry.name for entry in path.iterdir() if (entry / "zarr.json").is_file()}
    for name in [*member_vars, DONE, *coords, *sorted(listed - {*member_vars, DONE, *coords})]:
        try:
            opened[name] = group[name]
        except Exception as err:  # absent or unreadable zarr.json
            arrays.append(ArrayDamage(name, "metadata", (
                f"{name}/zarr.json: cannot open ({type(err).__name__}: {str(err)[:80]})",)))
            continue
        checksummed = checksummed and _checksummed(opened[name])
    flags = np.zeros(layout.count, dtype=bool)
    flag_damaged: set[int] = set()
    if DONE in opened:
        array = opened[DONE]
        owners: dict[tuple, list[int]] = {}
        for index in range(layout.count):
            for c in _covering(array, (slice(index, index + 1),)):
                owners.setdefault(c, []).append(index)
        found, values = _check_chunks(array, DONE, path, list(owners))
        encode = array.metadata.chunk_key_encoding.encode_chunk_key
        if values is not None:
            flags = np.asarray(values, dtype=bool)
        else:
            for c, indices in owners.items():
                if c not in found:
                    block = np.asarray(array.get_block_selection(c), dtype=bool).ravel()
                    for index in indices:
                        flags[index] = block[index - c[0] * array.chunks[0]]
        for c, problem in found.items():
            if problem == MISSING and not complete:
                continue  # a flag never written: not done
            for index in owners[c]:
                flags[index] = False
                flag_damaged.add(index)
                problems[index].append(f"{DONE}/{encode(c)}: {problem}")
                if problem != MISSING:
                    files[index].add(f"{DONE}/{encode(c)}")
    else:
        flag_damaged.update(range(layout.count))
    for name in member_vars:
        if name not in opened:
            for index in range(layout.count):
                missing.add(index)
                problems[index].append(f"{name}: array unreadable")
            continue
        array = opened[name]
        extra = array.ndim - len(GRID_DIMS)
        owners = {}
        for index in range(layout.count):
            for c in _covering(array, layout.chunk(index).region(extra)):
                owners.setdefault(c, []).append(index)
        found, _ = _check_chunks(array, name, path, list(owners))
        encode = array.metadata.chunk_key_encoding.encode_chunk_key
        for c, problem in found.items():
            for index in owners[c]:
                if problem == MISSING:
                    if flags[index] or index in flag_damaged:
                        missing.add(index)
                        problems[index].append(f"{name}/{encode(c)}: file missing")
                else:
                    corrupt.add(index)
                    problems[index].append(f"{name}/{encode(c)}: {problem}")
                    files[index].add(f"{name}/{encode(c)}")
    for name, array in opened.items():
        if name in member_vars or name == DONE:
            continue
        role = "coordinate" if name in coords else "summary"
        found, _ = _check_chunks(array, name, path, _grid_of(array))
        encode = array.metadata.chunk_key_encoding.encode_chunk_key
        # version 1 skipped chunks equal to the fill value; a summary exists once complete
        lines = [f"{name}/{encode(c)}: {'file missing' if p == MISSING else p}"
                 for c, p in found.items()
                 if p != MISSING or (version >= 2 and (role == "coordinate" or complete))]
        if lines:
            arrays.append(ArrayDamage(name, role, tuple(lines), tuple(
                f"{name}/{encode(c)}" for c, p in found.items() if p != MISSING)))
    chunks = []
    for index in range(layout.count):
        if index in corrupt:
            status = CORRUPT
        elif index in flag_damaged:
            status = FLAG_DAMAGED
        elif index in missing:
            status = MISSING
        elif flags[index]:
            status = OK
        else:
            status = NOT_DONE
        chunks.append(ChunkStatus(index, status, tuple(problems[index]),
                                  tuple(sorted(files[index]))))
    return StoreReport(path, config.study, version, checksummed, complete, tuple(chunks),
                       tuple(arrays))


def repair_store(path: Path, report: StoreReport | None = None,
                 log: Callable[[str], None] | None = None) -> StoreReport:
    """Make the store's done flags trustworthy (the caller holds the writer lock).

    For every damaged chunk of ``report`` (default: ``verify_store(path)``): its done flag is
    cleared and its damaged files are deleted, so the run recomputes it; damaged summary
    files are deleted and the store is marked incomplete (the summary is written again);
    damaged coordinates are written again from the stored config. The order (incomplete
    first, then flags, then files) keeps a kill during the repair harmless. An array whose
    metadata cannot be read: ``StoreDamaged``. Returns ``report``.
    """
    path = Path(path)
    report = verify_store(path) if report is None else report
    if report.ok:
        return report
    say = log or (lambda line: None)
    broken = [a for a in report.arrays if a.role == "metadata"]
    if broken:
        raise StoreDamaged(f"{path}: " + "; ".join(p for a in broken for p in a.problems)
                           + "\nThis is not repairable by a rerun: delete the store and "
                           "start over.")
    group = _group(path, "r+")
    if int(group.attrs.get("complete", 0)) == 1:
        group.attrs["complete"] = 0
    for chunk in report.damaged:
        say(f"chunk {chunk.index}: {chunk.status} ({'; '.join(chunk.problems)}): "
            "done flag cleared, recomputing")
        flag = group[DONE]
        key = flag.metadata.chunk_key_encoding.encode_chunk_key(
            (chunk.index // flag.chunks[0],))
        (path / DONE / key).unlink(missing_ok=True)
    for chunk in report.damaged:
        for file in chunk.files:
            (path / file).unlink(missing_ok=True)
    for damage in report.arrays:
        say(f"{damage.role} {damage.name}: {'; '.join(damage.problems)}: "
            + ("rewritten from the config" if damage.role == "coordinate"
               else "summary recomputed"))
        for file in damage.files:
            (path / file).unlink(missing_ok=True)
        if damage.role == "coordinate":
            values = np.asarray(_coords(_config_of(path))[damage.name])
            with _every_chunk_written():
                group[damage.name][...] = values
    append_history(path, f"repaired: {len(report.damaged)} damaged chunk(s) cleared for "
                   f"recomputation, {len(report.arrays)} other array(s) "
                   f"({', '.join(a.name for a in report.arrays) or 'none'})")
    return report


def done_mask(path: Path, *, repair: bool = False,
              log: Callable[[str], None] | None = None) -> np.ndarray:
    """(chunks,) booleans: which work chunks are written completely *and verify*.

    A chunk counts as done only when its flag is set and every one of its data chunks is
    present and decodes (``verify_store``); a damaged flag counts as not done. With
    ``repair`` (the writer, holding the lock) the damage found is also cleared
    (``repair_store``), each damaged chunk reported through ``log``.
    """
    report = verify_store(path)
    if repair and not report.ok:
        repair_store(path, report, log)
    return report.done


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
        with _every_chunk_written():  # an absent chunk file then always means damage
            for name, block in results.items():
                array = self.group[name]
                array[chunk.region(array.ndim - len(GRID_DIMS))] = block
            self.group[DONE][chunk.index] = True


def note_engine(path: Path, engine: str) -> None:
    """On a resume: if ``engine`` differs from the one that ran before, the ``engine``
    attribute becomes "<before>, then <engine>" and the history says so."""
    group = _group(path, "r+")
    before = str(group.attrs.get("engine", "unknown"))
    if before.rsplit(", then ", 1)[-1] != engine:
        group.attrs["engine"] = f"{before}, then {engine}"
        append_history(path, f"engine changed to {engine}")


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
    encoding = {name: _codecs() for name in summary.variables if name not in existing}
    summary.to_zarr(str(path), mode="a", consolidated=False, zarr_format=3, encoding=encoding,
                    write_empty_chunks=True)
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
