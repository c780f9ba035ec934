"""Interrupting a study (issue 15): SIGINT and SIGTERM stop it within seconds with every
finished chunk kept, no worker left, the lock released, the command that resumes it printed
and status 130 / 143; the resumed store equals an uninterrupted run. A ``kill -9`` of the
driver takes its workers with it (local pool and dask LocalCluster)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.chunks import Layout
from experiments.lock import lock_path
from experiments.store import done_mask, open_dataset

from .test_store import load, quiet

ROOT = Path(__file__).parents[2]

# 12 chunks of one seed, about 0.5 s each (after a worker's first, which imports torch):
# a signal sent once the first chunk is done lands mid-run, and a rerun is short
STUDY = """
study = "clustering-time"
seed = 7
[field]
kind = "sa"
[grid]
n = [16]
d = [3]
beta = [4.0]
[seeds]
count = 12
chunk = 1
[integrator]
method = "rk4"
dt = 0.1
[clustering]
horizon = 20.0
"""
VARIABLES = ("clustering_time", "steps", "median_time", "median_low", "censored_fraction")


# -- processes, from /proc (Linux) ----------------------------------------------------------


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            table[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return table


def descendants(pid: int) -> set[int]:
    """Children, grandchildren, ... of ``pid`` now."""
    parents, found, frontier = _parents(), set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Those of ``pids`` still alive after at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# -- running the study ----------------------------------------------------------------------


def _command(config: Path, store: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "experiments", "clustering-time", "--config", str(config),
            "--out", str(store), "--quiet", *extra]


def _done_files(store: Path) -> int:
    folder = store / "chunk_done" / "c"
    if not folder.exists():
        return 0
    return sum(1 for p in folder.iterdir() if not p.name.endswith(".partial"))


def start_and_wait_for_a_chunk(config: Path, store: Path, *extra: str,
                               timeout: float = 120) -> tuple[subprocess.Popen, set[int]]:
    """The study started as a subprocess (its own session), once a chunk is done; with the
    pids of its descendants (workers, fork server, ...) at that moment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_command(config, store, *extra), cwd=ROOT, env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while _done_files(store) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    workers = descendants(proc.pid)
    assert workers, "the study should run on worker processes"
    return proc, workers


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "study.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, its chunks one after the other in this process (no pool to
    start; the same numbers, since a chunk is a pure function of the config)."""
    store = tmp_path_factory.mktemp("reference") / "whole.zarr"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "cpu_count", lambda: 1)
        quiet(load(STUDY), store)
    return open_dataset(store).load()


def interrupt(config: Path, store: Path, signum: int, *extra: str) -> tuple[int, str, float]:
    """Start the study, send ``signum`` once a chunk is done (SIGINT to the whole process
    group, as Ctrl-C does; SIGTERM to the driver alone, as ``kill`` does); checks that every
    process it started is gone at once. (done chunks, stderr, seconds to exit)."""
    proc, workers = start_and_wait_for_a_chunk(config, store, *extra)
    sent = time.monotonic()
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)
    else:
        os.kill(proc.pid, signum)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # today's hang: clean up, then fail
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{signal.Signals(signum).name}: the study did not stop within 30 s")
    seconds = time.monotonic() - sent
    assert proc.returncode == 128 + signum, (proc.returncode, err[-2000:])
    assert not wait_gone(workers, 2.0), "worker processes outlived the driver"
    assert not lock_path(store).exists(), "the writer lock was not released"
    assert "Traceback" not in err, err
    done = int(done_mask(store).sum())
    assert 1 <= done < Layout.of(load(STUDY)).count, "the signal should land mid-run"
    return done, err, seconds


def resume_command(err: str) -> list[str]:
    """The command of the one 'resume with:' line, run with this interpreter."""
    lines = [line for line in err.splitlines() if "resume with: " in line]
    assert len(lines) == 1, err
    command = shlex.split(lines[0].split("resume with: ", 1)[1])
    assert command[:3] == ["python", "-m", "experiments"], command
    return [sys.executable, *command[1:]]


def test_sigint_stops_within_seconds_and_the_printed_command_resumes(config, reference,
                                                                     tmp_path):
    store = tmp_path / "s.zarr"
    done, err, seconds = interrupt(config, store, signal.SIGINT)
    assert seconds < 6.0, f"took {seconds:.1f} s to stop"
    assert "interrupted by SIGINT" in err and str(store) in err

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rerun = subprocess.run(resume_command(err), cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300, check=True)
    total = Layout.of(load(STUDY)).count
    assert f"{done} already done, {total - done} to compute" in rerun.stdout
    resumed = open_dataset(store).load()
    for name in VARIABLES:
        assert resumed[name].values.tobytes() == reference[name].values.tobytes(), name


def test_sigterm_stops_within_seconds_keeping_the_finished_chunks(config, tmp_path):
    store = tmp_path / "s.zarr"
    done, err, seconds = interrupt(config, store, signal.SIGTERM)
    assert seconds < 6.0, f"took {seconds:.1f} s to stop"
    assert "interrupted by SIGTERM" in err
    assert resume_command(err)[3:] == ["clustering-time", "--config", str(config),
                                       "--out", str(store), "--quiet"]
    assert int(done_mask(store).sum()) == done  # nothing was lost on the way out


def _kill_driver_and_count_survivors(config: Path, store: Path, *extra: str) -> set[int]:
    proc, workers = start_and_wait_for_a_chunk(config, store, *extra)
    os.kill(proc.pid, signal.SIGKILL)  # the driver alone: its workers must follow it
    proc.wait()
    left = wait_gone(workers, 5.0)
    for pid in left:  # do not leak them into the rest of the test session
        os.kill(pid, signal.SIGKILL)
    proc.stdout.close()
    proc.stderr.close()
    return left


def test_kill_9_of_the_driver_takes_the_pool_workers_with_it(config, tmp_path):
    assert not _kill_driver_and_count_survivors(config, tmp_path / "s.zarr")


@pytest.mark.slow
def test_kill_9_of_the_driver_takes_the_dask_workers_with_it(config, tmp_path):
    assert not _kill_driver_and_count_survivors(config, tmp_path / "s.zarr", "--workers", "2")


@pytest.mark.slow
def test_sigint_stops_a_dask_local_cluster_within_seconds(config, tmp_path):
    _, err, seconds = interrupt(config, tmp_path / "s.zarr", signal.SIGINT, "--workers", "2")
    assert seconds < 6.0, f"took {seconds:.1f} s to stop"
    assert "--workers 2" in err and "resume with" in err


def test_a_worker_ignores_sigint_and_dies_with_its_parent():
    """The initializer alone: a process started by a short-lived parent is gone as soon as
    that parent is (prctl's death signal, or the watchdog)."""
    script = (
        "import os, sys, time\n"
        "from experiments.processes import worker_init\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    worker_init(os.getppid())\n"
        "    print(os.getpid(), flush=True)\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    worker = int(proc.stdout.readline())
    os.kill(worker, signal.SIGINT)  # ignored
    time.sleep(0.3)
    assert alive(worker)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    left = wait_gone({worker}, 3.0)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left
