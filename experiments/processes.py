"""Worker lifecycle: workers die with their driver, SIGINT and SIGTERM stop a run at once.

* ``worker_init(driver_pid)`` - the initializer of the local pool's worker processes: it
  ignores SIGINT (a Ctrl-C reaches the whole process group; the driver alone decides what
  to do), asks Linux to SIGKILL the worker when its parent dies (``prctl(PR_SET_PDEATHSIG)``
  through libc) and starts a watchdog thread that ends the worker as soon as its parent
  changes or the driver is gone - the fallback where prctl is not available, and the guard
  against a parent that died before prctl took effect;
* ``interruptible()`` - inside the block, SIGINT and SIGTERM raise :class:`Interrupted` in
  the main thread (exit status ``128 + signal``: 130 and 143), so the runner's cleanup runs:
  pending work cancelled, workers terminated, the writer lock released;
* ``deferred_interrupts()`` - a signal that arrives inside this block (writing one chunk
  and marking it done) is raised as the block ends, so no chunk is left half-written by
  an interruption;
* ``stop_pool(pool)`` - end the pool's worker processes now (SIGTERM, then SIGKILL) and
  drop the work not done, instead of waiting for the running chunks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

PR_SET_PDEATHSIG = 1
WATCHDOG_PERIOD = 0.25


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the driver; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


# -- workers ---------------------------------------------------------------------------------


def set_parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - no libc or no prctl
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process with that pid
        return True
    return True


def _watch(parent: int, driver: int) -> None:
    """End this process once its parent has changed (it was re-parented after the parent
    died) or the driver is gone."""
    stop = threading.Event()
    while not stop.wait(WATCHDOG_PERIOD):
        if os.getppid() != parent or not _alive(driver):
            os._exit(1)


def start_watchdog(driver: int, parent: int | None = None) -> threading.Thread:
    """A daemon thread that ends this process when its parent or ``driver`` dies."""
    parent = os.getppid() if parent is None else parent
    thread = threading.Thread(target=_watch, args=(parent, driver), daemon=True,
                              name="driver-watchdog")
    thread.start()
    return thread


def worker_init(driver: int) -> None:
    """Initializer of a local worker process started (directly or through a fork server)
    by the process ``driver``: ignore SIGINT, die with the parent (module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent or not _alive(driver):  # the parent died before prctl
        os._exit(1)
    start_watchdog(driver, parent)


def dask_setup(worker: Any = None) -> None:
    """Preload of a LocalCluster's worker processes (``distributed.worker.preload``): ignore
    SIGINT and end the worker when its parent, the driver, is gone. distributed's own pipe to
    the parent does that too; PR_SET_PDEATHSIG is not used here, since it fires when the
    *thread* that started the process ends, and dask starts workers from helper threads."""
    with contextlib.suppress(ValueError):  # not the main thread: leave SIGINT alone
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    start_watchdog(os.getppid())


def kill_dask_workers(cluster: Any) -> None:
    """SIGKILL the worker processes of a ``LocalCluster`` (its nannies told first not to
    restart them), so that closing it does not wait for the running tasks."""
    nannies = list((getattr(cluster, "workers", None) or {}).values())
    for nanny in nannies:
        with contextlib.suppress(Exception):
            nanny.close_gracefully(reason="interrupted")
    for nanny in nannies:
        pid = getattr(nanny, "pid", None)
        if isinstance(pid, int) and pid > 0:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


# -- the driver ------------------------------------------------------------------------------

_state: dict[str, Any] = {"depth": 0, "pending": None}


def _raise(signum: int, frame: Any) -> None:
    if _state["depth"] > 0:
        _state["pending"] = _state["pending"] or signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible(signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` inside the block (main thread only;
    elsewhere the block changes nothing); the previous handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: signal.signal(signum, _raise) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        _state["pending"] = None


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """A signal caught by ``interruptible`` inside this block is raised when it ends."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
    signum = _state["pending"]
    if signum is not None and _state["depth"] == 0:
        _state["pending"] = None
        raise Interrupted(signum)


def stop_pool(pool: Any, grace: float = 2.0) -> None:
    """End the worker processes of the ``ProcessPoolExecutor`` ``pool`` now (SIGTERM, then
    SIGKILL for any still alive after ``grace`` seconds) and shut it down: its manager thread
    then fails every unfinished future with ``BrokenProcessPool`` (cancelling them first
    would trip Python 3.11's manager thread, which sets an exception on each)."""
    with deferred_interrupts():  # a second Ctrl-C waits for the workers to be gone
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            with contextlib.suppress(OSError, ValueError):
                process.terminate()
        for process in processes:
            with contextlib.suppress(OSError, ValueError, AssertionError):
                process.join(grace)
                if process.is_alive():
                    process.kill()
                    process.join(grace)
        pool.shutdown(wait=True, cancel_futures=False)
