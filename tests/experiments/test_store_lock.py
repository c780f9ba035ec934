"""One writer at a time (issue 15): a second writer is refused, stale locks are taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.lock import StoreLocked, lock_path, store_lock

from .test_store import SMALL, load, quiet


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    with store_lock(store, log=lambda s: None) as lock:
        holder = json.loads(lock.read_text())
        assert holder["pid"] == os.getpid()
        assert holder["host"] == socket.gethostname()
        with pytest.raises(StoreLocked) as err:
            quiet(load(SMALL), store)
        assert err.value.holder == holder
        assert err.value.lock == lock_path(store)
        assert not store.exists()  # refused before any store is created
    assert not lock_path(store).exists()


def test_the_lock_is_released_when_the_run_fails(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError, match="boom"), store_lock(store, log=lambda s: None):
        raise RuntimeError("boom")
    assert not lock_path(store).exists()


def test_a_stale_lock_of_a_dead_process_is_reported_and_taken_over(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    pid = _dead_pid()
    lock_path(store).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": pid, "started": "2026-01-01T00:00:00Z"}))
    messages: list[str] = []
    with store_lock(store, log=messages.append) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert len(messages) == 1 and str(pid) in messages[0]
    assert not lock_path(store).exists()


def test_a_lock_held_on_another_host_is_never_taken_over(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    record = {"host": socket.gethostname() + "-elsewhere", "pid": _dead_pid(), "started": "x"}
    lock_path(store).write_text(json.dumps(record))
    with pytest.raises(StoreLocked) as err, store_lock(store, log=lambda s: None):
        pass
    assert err.value.holder == record
    assert json.loads(lock_path(store).read_text()) == record
