"""Store integrity (issue 15): checksums on every chunk, done flags trusted only with data that
verify, damage found by ``verify_store`` / ``python -m experiments verify`` and recomputed by
a rerun, bit for bit equal to an undamaged store.

SMALL has 4 work chunks: (seed block 0-1) x (beta block 0-1); chunk 3 holds seeds 3-4 and
beta 2, a partial zarr chunk along both axes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest
import zarr

import experiments.store as store_module
from experiments.__main__ import main
from experiments.store import (
    CORRUPT,
    DONE,
    FLAG_DAMAGED,
    MISSING,
    NOT_DONE,
    OK,
    StoreDamaged,
    done_mask,
    open_dataset,
    verify_store,
)

from .test_store import SMALL, load, quiet

MEMBER_VARS = ("clustering_time", "fraction_time", "steps")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("integrity") / "reference.zarr"
    quiet(load(SMALL), path)
    return path


def _copy(reference: Path, tmp_path: Path) -> Path:
    target = tmp_path / "s.zarr"
    shutil.copytree(reference, target)
    return target


def _chunk_file(store: Path, name: str, index: int) -> Path:
    """The zarr chunk file of work chunk ``index`` in variable ``name`` (SMALL's layout)."""
    if name == DONE:
        return store / DONE / "c" / str(index)
    seed_block, beta_block = divmod(index, 2)
    extra = ["0"] * (len(zarr.open_group(str(store), mode="r")[name].shape) - 4)
    return store.joinpath(name, "c", str(seed_block), "0", "0", str(beta_block), *extra)


def _assert_same(store: Path, reference: Path) -> None:
    a, b = open_dataset(store).load(), open_dataset(reference).load()
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].values.tobytes() == b[name].values.tobytes(), name


def _statuses(store: Path) -> list[str]:
    return [c.status for c in verify_store(store).chunks]


def test_every_chunk_carries_a_checksum_and_is_a_file(reference):
    group = zarr.open_group(str(reference), mode="r")
    for name in group.array_keys():
        codecs = [type(c).__name__ for c in group[name].metadata.codecs]
        assert codecs[-1] == "Crc32cCodec", (name, codecs)
    for name in MEMBER_VARS:  # chunks equal to the fill value are files too
        assert sum(1 for p in (reference / name).rglob("*") if p.is_file()) == 4 + 1
    report = verify_store(reference)
    assert report.ok and report.checksummed and report.complete
    assert _statuses(reference) == [OK] * 4
    assert done_mask(reference).all()


def test_a_deleted_chunk_of_a_finished_store_is_recomputed(reference, tmp_path):
    store = _copy(reference, tmp_path)
    _chunk_file(store, "clustering_time", 1).unlink()
    assert _statuses(store) == [OK, MISSING, OK, OK]
    assert done_mask(store).tolist() == [True, False, True, True]
    report = quiet(load(SMALL), store)
    assert (report.computed, report.reused) == (1, 3)
    _assert_same(store, reference)
    assert verify_store(store).ok


def test_a_garbage_chunk_is_found_by_verify_and_recomputed(reference, tmp_path, rng):
    store = _copy(reference, tmp_path)
    _chunk_file(store, "steps", 2).write_bytes(rng.bytes(37))
    report = verify_store(store)
    assert _statuses(store) == [OK, OK, CORRUPT, OK]
    assert "checksum" in " ".join(report.damaged[0].problems)
    assert not report.ok
    run = quiet(load(SMALL), store)
    assert (run.computed, run.reused) == (1, 3)
    _assert_same(store, reference)


def test_a_flipped_bit_is_caught_by_the_checksum(reference, tmp_path):
    store = _copy(reference, tmp_path)
    path = _chunk_file(store, "fraction_time", 0)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # still a valid zstd frame, maybe: only the crc tells
    path.write_bytes(bytes(data))
    assert _statuses(store)[0] == CORRUPT
    quiet(load(SMALL), store)
    _assert_same(store, reference)


@pytest.mark.parametrize("how", ["garbage", "deleted"])
def test_a_damaged_done_flag_is_recomputed_without_a_traceback(reference, tmp_path, how):
    store = _copy(reference, tmp_path)
    flag = _chunk_file(store, DONE, 3)
    if how == "garbage":
        flag.write_bytes(b"\x00garbage")
    else:
        flag.unlink()  # absent in a store marked complete: damaged, not "never written"
    assert _statuses(store) == [OK, OK, OK, FLAG_DAMAGED]
    assert done_mask(store).tolist() == [True, True, True, False]
    run = quiet(load(SMALL), store)
    assert (run.computed, run.reused) == (1, 3)
    _assert_same(store, reference)


def test_an_unfinished_store_with_damaged_chunks_resumes(reference, tmp_path, rng):
    store = _copy(reference, tmp_path)
    # unfinished: chunks 2 and 3 not done (as after a kill), no summary yet
    group = zarr.open_group(str(store), mode="r+")
    group.attrs["complete"] = 0
    _chunk_file(store, DONE, 2).unlink()
    _chunk_file(store, DONE, 3).unlink()
    # damage: a done chunk's data, and the data of a pending partial edge chunk (a write
    # into a partial chunk reads the old one first)
    _chunk_file(store, "clustering_time", 0).write_bytes(rng.bytes(64))
    _chunk_file(store, "steps", 3).write_bytes(rng.bytes(64))
    assert _statuses(store) == [CORRUPT, OK, NOT_DONE, CORRUPT]
    messages: list[str] = []
    from experiments.runner import run_study

    run = run_study(load(SMALL), store, quiet=True, log=messages.append)
    assert (run.computed, run.reused) == (3, 1)
    assert any(m.startswith("chunk 0: corrupt") for m in messages), messages
    _assert_same(store, reference)
    assert verify_store(store).ok


def test_a_store_without_checksums_is_still_verified(tmp_path, monkeypatch, rng):
    """A store of version 1 (no crc32c, chunks equal to the fill value not written)."""
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "_codecs", lambda: {})
        patch.setattr(store_module, "STORE_VERSION", 1)
        patch.setattr(store_module, "_every_chunk_written", contextlib.nullcontext)
        old = tmp_path / "old.zarr"
        quiet(load(SMALL), old)
    reference = tmp_path / "copy.zarr"
    shutil.copytree(old, reference)
    report = verify_store(old)
    assert report.ok and not report.checksummed and report.store_version == 1
    _chunk_file(old, "steps", 1).write_bytes(rng.bytes(50))  # not a zstd frame
    os.remove(_chunk_file(old, "clustering_time", 2))
    assert _statuses(old) == [OK, CORRUPT, MISSING, OK]
    run = quiet(load(SMALL), old)
    assert (run.computed, run.reused) == (2, 2)
    _assert_same(old, reference)


def test_verify_command_exit_codes(reference, tmp_path, capsys):
    store = _copy(reference, tmp_path)
    assert main(["verify", str(store)]) == 0
    out = capsys.readouterr().out
    assert "4 ok" in out and "OK" in out
    _chunk_file(store, "clustering_time", 1).unlink()
    _chunk_file(store, "steps", 2).write_bytes(b"garbage")
    report = tmp_path / "report.json"
    assert main(["verify", str(store), "--json", str(report)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("chunk 1: missing: clustering_time/c/0/0/0/1")
    assert lines[1].startswith("chunk 2: corrupt: steps/c/1/0/0/0")
    assert "DAMAGED" in lines[-1] and len(lines) == 3
    data = json.loads(report.read_text())
    assert data["ok"] is False and data["counts"]["missing"] == 1
    assert [d["chunk"] for d in data["damaged"]] == [1, 2]
    for not_a_store in (tmp_path / "nothing.zarr", tmp_path):
        assert main(["verify", str(not_a_store)]) == 2
        assert "error:" in capsys.readouterr().err
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=3)
    assert main(["verify", str(tmp_path / "plain.zarr")]) == 2


def test_unreadable_array_metadata_is_reported_and_refused(reference, tmp_path, capsys):
    store = _copy(reference, tmp_path)
    (store / "steps" / "zarr.json").write_text("{ not json")
    assert main(["verify", str(store)]) == 1
    out = capsys.readouterr().out
    assert "metadata steps: steps/zarr.json: cannot open" in out and "start over" in out
    with pytest.raises(StoreDamaged, match="delete the store"):
        quiet(load(SMALL), store)
