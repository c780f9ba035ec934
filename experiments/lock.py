"""One writer at a time: an exclusive lock file beside a study store.

The lock is ``<store>.lock`` (a sibling, so it can be taken before the store exists), created
with ``O_CREAT | O_EXCL`` and holding ``host``, ``pid`` and ``started`` as JSON. A second writer
is refused with :class:`StoreLocked`, which names the holder. A lock left by a dead process on
this host is stale: it is reported through ``log`` and taken over. Readers never look at it.
The lock is released on every exit path of the ``with`` block (exceptions included); a
``kill -9`` leaves it behind, and the next writer takes it over as stale.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class StoreLocked(RuntimeError):
    """Another live writer holds the store; ``holder`` is its lock record."""

    def __init__(self, lock: Path, holder: dict[str, Any]) -> None:
        self.lock = lock
        self.holder = holder
        super().__init__(
            f"store is being written by pid {holder.get('pid')} on {holder.get('host')} "
            f"(since {holder.get('started')}); wait for it to finish, or if that process is "
            f"gone, remove {lock}"
        )


def lock_path(store: Path) -> Path:
    """The lock file of ``store``."""
    store = Path(store)
    return store.with_name(store.name + ".lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(lock: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(lock.read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def _is_stale(holder: dict[str, Any]) -> bool:
    """A lock is stale when its process is known dead on this host (or the record is unreadable)."""
    if not holder:
        return True
    if holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    return not isinstance(pid, int) or not _alive(pid)


@contextmanager
def store_lock(store: Path, log: Callable[[str], None] = print) -> Iterator[Path]:
    """Hold the writer lock of ``store`` for the ``with`` block; raises :class:`StoreLocked`."""
    lock = lock_path(store)
    lock.parent.mkdir(parents=True, exist_ok=True)
    record = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(lock)
            if not _is_stale(holder):
                raise StoreLocked(lock, holder) from None
            log(f"taking over a stale lock {lock} left by pid {holder.get('pid')} "
                f"on {holder.get('host')} (process no longer running)")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
        break
    else:  # pragma: no cover - lost three races in a row
        raise StoreLocked(lock, _read(lock))
    try:
        yield lock
    finally:
        if _read(lock).get("pid") == os.getpid():
            lock.unlink(missing_ok=True)
