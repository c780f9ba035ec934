"""``python -m experiments chaos``: a chaos test of the result store (issue 15).

A small clustering-time study (``TINY``, or ``--config FILE``) is computed once
uninterrupted, chunk after chunk in this process, as the reference. Then, into a second
store, by ``python -m experiments clustering-time`` subprocesses:

* kills: ``python -m experiments clustering-time ...`` is started and killed with SIGKILL
  (its whole process group: driver and workers) at random points - after a random number
  of chunks has been marked done, plus a random delay - and started again, alternating the
  local process pool and the dask LocalCluster (``--workers 2``), until ``--kills`` kills
  landed mid-run; then one last run finishes it. After every kill the store is verified
  (``experiments.store.verify_store``): an atomic write leaves no damaged chunk;
* two writers: the last run is started twice at once; the one that takes the writer lock
  is frozen (SIGSTOP of its process group) until the other has ended, which the lock must
  have refused (exit 2); then the first continues (SIGCONT) and finishes the study;
* damage: random chunk files of the finished store (data variables and done flags) are
  deleted or overwritten with garbage; ``verify_store`` must find every damaged work chunk
  and nothing else, and a rerun (``run_study`` in this process, so the fast subset starts
  one process fewer) must recompute exactly those.

Every run's "N already done, M to compute" line is checked against the chunks that verify
before it starts: a chunk recomputed although it verified counts as duplicated, a damaged
one not recomputed as lost. At the end every variable of the store (data, summary,
coordinates, done flags) must equal the reference's bit for bit, NaN positions included.
The report counts kills survived, cells lost, cells wrong, cells duplicated and damaged
chunks detected; exit status 0 when all hold, 1 otherwise. ``--fast`` is the CI subset:
one kill, one deleted and one garbled chunk, the two-writer race, local pool only.

Only the standard library is imported at module level.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# 8 work chunks (4 seed blocks, the last of one seed, x 2 beta blocks, the last of one
# beta): partial zarr chunks at both edges; a chunk takes a fraction of a second
TINY = """\
study = "clustering-time"
seed = 11
[field]
kind = "sa"
[grid]
n = [8]
d = [3]
beta = [0.5, 1.0, 2.0]
beta_chunk = 2
[seeds]
count = 7
chunk = 2
[integrator]
method = "rk4"
dt = 0.1
[clustering]
horizon = 60.0
fractions = [0.5]
record_dt = 0.5
"""

_LINE = re.compile(r"(\d+) already done, (\d+) to compute")
EXECUTORS = ("pool", "dask")


@dataclass
class ChaosReport:
    """What a chaos run did and found; ``passed`` when every check holds."""

    kills_requested: int = 0
    kills_delivered: int = 0
    kills_survived: int = 0
    kill_points: list[str] = field(default_factory=list)
    damage_after_kills: int = 0
    runs: int = 0
    runs_failed: list[str] = field(default_factory=list)
    writer_refused: bool | None = None
    files_deleted: int = 0
    files_garbled: int = 0
    damaged_chunks_injected: int = 0
    damaged_chunks_detected: int = 0
    false_alarms: int = 0
    chunks: int = 0
    cells: int = 0
    cells_lost: int = 0
    cells_wrong: int = 0
    cells_duplicated: int = 0
    chunks_skipped: int = 0
    identical: bool = False
    final_verified: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (self.identical and self.final_verified and not self.problems
                and not self.runs_failed and self.kills_delivered == self.kills_requested
                and self.kills_survived == self.kills_delivered
                and self.damage_after_kills == 0 and self.cells_lost == 0
                and self.cells_wrong == 0 and self.cells_duplicated == 0
                and self.chunks_skipped == 0 and self.false_alarms == 0
                and self.damaged_chunks_detected == self.damaged_chunks_injected
                and self.writer_refused is not False)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kills", type=int, default=4, metavar="N",
                        help="SIGKILLs landed mid-run (default 4)")
    parser.add_argument("--deletes", type=int, default=2, metavar="N",
                        help="chunk files deleted from the finished store (default 2)")
    parser.add_argument("--garbage", type=int, default=2, metavar="N",
                        help="chunk files overwritten with garbage (default 2)")
    parser.add_argument("--executors", default="pool,dask", metavar="LIST",
                        help="executors the runs alternate: pool (local process pool), "
                             "dask (--workers 2); default pool,dask")
    parser.add_argument("--no-race", action="store_true",
                        help="skip the two-writer race")
    parser.add_argument("--fast", action="store_true",
                        help="the CI subset: 1 kill, 1 deleted + 1 garbled chunk, the race, "
                             "local pool only")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the random kill points and damage (default: random)")
    parser.add_argument("--config", metavar="FILE",
                        help="a clustering-time config instead of the built-in tiny one")
    parser.add_argument("--workdir", metavar="DIR",
                        help="keep the stores and logs here (default: a temporary folder, "
                             "removed at the end)")
    parser.add_argument("--json", metavar="PATH", dest="json_path",
                        help="also write the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Run the chaos test; 0 when every check holds, 1 otherwise."""
    if args.fast:
        args.kills, args.deletes, args.garbage, args.executors = 1, 1, 1, "pool"
    executors = tuple(e.strip() for e in args.executors.split(",") if e.strip())
    if not executors or any(e not in EXECUTORS for e in executors):
        print(f"error: --executors takes {', '.join(EXECUTORS)}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    config_text = Path(args.config).read_text() if args.config else TINY
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="chaos-"))
    start = time.perf_counter()
    try:
        report = run_chaos(workdir, kills=args.kills, deletes=args.deletes,
                           garbage=args.garbage, executors=executors, seed=seed,
                           race=not args.no_race, config_text=config_text,
                           log=lambda s: print(s, flush=True))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(summary_line(report) + f" (seed {seed}, {time.perf_counter() - start:.1f} s)")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({**report.to_dict(), "seed": seed},
                                                   indent=2) + "\n")
    return 0 if report.passed else 1


def summary_line(report: ChaosReport) -> str:
    return (f"chaos {'PASSED' if report.passed else 'FAILED'}: kills survived "
            f"{report.kills_survived}/{report.kills_delivered}, cells lost {report.cells_lost}, "
            f"cells wrong {report.cells_wrong}, cells duplicated {report.cells_duplicated}, "
            f"damaged chunks detected {report.damaged_chunks_detected}/"
            f"{report.damaged_chunks_injected} (false alarms {report.false_alarms}), "
            f"damage after kills {report.damage_after_kills}, second writer "
            + {True: "refused", False: "NOT refused", None: "not tried"}[report.writer_refused]
            + f", final store {'identical' if report.identical else 'DIFFERENT'} to the "
            f"reference, {report.runs} runs")


# -- the pieces -------------------------------------------------------------------------------


def _command(config: Path, store: Path, executor: str) -> list[str]:
    cmd = [sys.executable, "-m", "experiments", "clustering-time", "--config", str(config),
           "--out", str(store), "--quiet"]
    return cmd + (["--workers", "2"] if executor == "dask" else [])


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def _start(config: Path, store: Path, executor: str, log_file: Path) -> subprocess.Popen:
    with log_file.open("w") as out:
        return subprocess.Popen(_command(config, store, executor), cwd=ROOT, env=_env(),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _flags_written(store: Path) -> int:
    folder = store / "chunk_done" / "c"
    try:
        return sum(1 for p in folder.iterdir() if not p.name.endswith(".partial"))
    except OSError:
        return 0


def _announced(log_file: Path) -> tuple[int, int] | None:
    """(done, to compute) once the run holds the lock and has said so, else None."""
    try:
        match = _LINE.search(log_file.read_text())
    except OSError:
        return None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _wait(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float) -> bool:
    """Poll until ``ready()`` or the process ends; True when ready while still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return proc.poll() is None
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def _killpg(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _verified(store: Path) -> Any:
    from experiments.store import verify_store

    return verify_store(store) if store.exists() else None


def _expected_pending(store: Path, total: int) -> int:
    report = _verified(store)
    return total if report is None else total - int(report.done.sum())


class _Chaos:
    def __init__(self, workdir: Path, config_text: str, executors: tuple[str, ...], seed: int,
                 log: Callable[[str], None]) -> None:
        import tomllib

        from experiments.chunks import Layout
        from experiments.config import parse_config

        self.workdir = workdir
        self.config_path = workdir / "chaos.toml"
        self.config_path.write_text(config_text)
        self.config = parse_config(tomllib.loads(config_text))
        self.layout = Layout.of(self.config)
        self.store = workdir / "chaos.zarr"
        self.executors = executors
        self.rng = random.Random(seed)
        self.started = time.perf_counter()
        self.log = lambda line: log(f"[{time.perf_counter() - self.started:5.1f} s] {line}")
        self.report = ChaosReport(chunks=self.layout.count)
        self.runs = 0

    def executor(self) -> str:
        return self.executors[self.runs % len(self.executors)]

    def log_file(self) -> Path:
        self.runs += 1
        self.report.runs = self.runs
        return self.workdir / f"run-{self.runs:02d}.log"

    def cells_of(self, chunks: int) -> int:
        per = (self.layout.seed_block * self.layout.beta_block)
        return chunks * per

    def check_announcement(self, log_file: Path, expected: int) -> None:
        """Count chunks recomputed although they verified, or skipped although damaged."""
        said = _announced(log_file)
        if said is None:
            self.report.problems.append(f"{log_file.name}: no 'to compute' line")
            return
        pending = said[1]
        if pending > expected:
            self.report.cells_duplicated += self.cells_of(pending - expected)
        elif pending < expected:
            self.report.chunks_skipped += expected - pending

    def reference(self) -> Any:
        """The uninterrupted study, chunk after chunk in this process (the runner's own
        sequential path: ``compute_chunk`` is pure, so every executor gives these bits)."""
        from experiments.registry import STUDY_KINDS
        from experiments.runner import compute_chunk
        from experiments.store import ChunkWriter, create_store, open_dataset, write_summary

        path = self.workdir / "reference.zarr"
        start = time.perf_counter()
        create_store(path, self.config, "experiments chaos: reference")
        writer = ChunkWriter(path)
        for index in range(self.layout.count):
            writer.write(self.layout.chunk(index), compute_chunk(self.config, index)[1])
        ds = open_dataset(path).load()
        write_summary(path, STUDY_KINDS[self.config.study].summarize(ds, self.config))
        self.log(f"reference: {self.layout.count} chunks uninterrupted in "
                 f"{time.perf_counter() - start:.1f} s")
        return open_dataset(path).load()

    def kill_once(self) -> bool:
        """Start a run and SIGKILL it at a random point mid-run; False if it finished first."""
        total = self.layout.count
        expected = _expected_pending(self.store, total)
        done_before = total - expected
        if expected == 0:
            return False
        # flags written when killed: at most half of what is left, so kills spread over runs
        target = self.rng.randint(done_before, (done_before + total - 1) // 2)
        executor, log_file = self.executor(), self.log_file()
        proc = _start(self.config_path, self.store, executor, log_file)
        landed = _wait(proc, lambda: _announced(log_file) is not None
                       and _flags_written(self.store) >= target, timeout=300)
        if landed:
            time.sleep(self.rng.uniform(0.0, 0.25))  # mid-chunk, mid-write, mid-start
            landed = proc.poll() is None
        if landed or proc.poll() is None:  # (or waited too long)
            _killpg(proc, signal.SIGKILL)
        proc.wait()
        if _announced(log_file) is not None:
            self.check_announcement(log_file, expected)
        if not landed:
            if proc.returncode != 0:
                self.report.runs_failed.append(f"{log_file.name}: exit {proc.returncode}")
            self.log(f"run {self.runs} ({executor}) ended before the kill")
            return False
        after = _verified(self.store)
        damaged = len(after.damaged) + len(after.arrays) if after is not None else 0
        self.report.damage_after_kills += damaged
        done = int(after.done.sum()) if after is not None else 0
        point = (f"run {self.runs} ({executor}): killed after {done}/{total} chunks done "
                 f"(target {target})")
        self.report.kill_points.append(point)
        self.log(point + (f", {damaged} damaged chunk(s) found" if damaged else ""))
        return True

    def finish(self, race: bool) -> None:
        """The last run, uninterrupted; with ``race``, two writers started at once.

        Whichever takes the lock first is frozen (SIGSTOP of its process group) as soon as
        it says so, until the other has ended: the other must have been refused (exit 2,
        naming the holder). Then the holder continues (SIGCONT) and finishes the study.
        """
        expected = _expected_pending(self.store, self.layout.count)
        executor = self.executor()
        logs = [self.log_file()]
        procs = [_start(self.config_path, self.store, executor, logs[0])]
        if race:
            logs.append(self.log_file())
            procs.append(_start(self.config_path, self.store, "pool", logs[1]))
            holder = None
            deadline = time.monotonic() + 300
            while holder is None and time.monotonic() < deadline:
                for number, (proc, log_file) in enumerate(zip(procs, logs, strict=True)):
                    if proc.poll() is None and _announced(log_file) is not None:
                        _killpg(proc, signal.SIGSTOP)  # holds the lock: frozen
                        holder = number
                        break
                if all(proc.poll() is not None for proc in procs):
                    break
                time.sleep(0.005)
            if holder is None:
                self.report.problems.append("the race: no writer was seen holding the lock")
                self.report.writer_refused = False
            else:
                rival, rival_log = procs[1 - holder], logs[1 - holder]
                try:
                    rival.wait(timeout=300)
                finally:
                    _killpg(procs[holder], signal.SIGCONT)
                text = rival_log.read_text()
                self.report.writer_refused = rival.returncode == 2 and "being written by" in text
                self.log(f"two writers at once: run {self.runs - 1 + holder} took the lock, "
                         f"the other exited {rival.returncode}"
                         + (", refused by the lock" if self.report.writer_refused
                            else ": NOT refused: " + text[-300:]))
                procs, logs = [procs[holder]], [logs[holder]]
        proc, log_file = procs[0], logs[0]
        proc.wait(timeout=600)
        if proc.returncode != 0:
            self.report.runs_failed.append(f"{log_file.name}: exit {proc.returncode}: "
                                           + log_file.read_text()[-500:])
        self.check_announcement(log_file, expected)
        self.log(f"{log_file.stem}: finished the study, exit {proc.returncode}")

    def damage(self, deletes: int, garbage: int) -> None:
        """Delete / garble random chunk files of the finished store, verify, rerun."""
        from experiments.chunks import GRID_DIMS
        from experiments.registry import STUDY_KINDS
        from experiments.store import DONE

        names = list(STUDY_KINDS[self.config.study].variables(self.config))
        candidates: list[tuple[Path, int]] = []
        for name in [*names, DONE]:
            base = self.store / name
            for path in sorted(base.rglob("*")):
                if not path.is_file() or path.name == "zarr.json" or ".partial" in path.name:
                    continue
                key = [int(part) for part in path.relative_to(base).parts[1:]]
                index = key[0] if name == DONE else int(
                    _ravel(key[:len(GRID_DIMS)], self.layout.shape))
                candidates.append((path, index))
        picked = self.rng.sample(candidates, min(deletes + garbage, len(candidates)))
        injected: set[int] = set()
        for number, (path, index) in enumerate(picked):
            if number < deletes:
                path.unlink()
                self.report.files_deleted += 1
                what = "deleted"
            else:
                path.write_bytes(self.rng.randbytes(self.rng.randint(1, 200)))
                self.report.files_garbled += 1
                what = "garbled"
            injected.add(index)
            self.log(f"damage: {what} {path.relative_to(self.store)} (chunk {index})")
        report = _verified(self.store)
        found = {c.index for c in report.damaged}
        self.report.damaged_chunks_injected += len(injected)
        self.report.damaged_chunks_detected += len(found & injected)
        self.report.false_alarms += len(found - injected)
        self.log(f"verify: {len(found & injected)}/{len(injected)} damaged chunks found, "
                 f"{len(found - injected)} false alarm(s)")
        expected = self.layout.count - int(report.done.sum())
        self.rerun_here(expected)

    def rerun_here(self, expected: int) -> None:
        """A rerun in this process (``run_study``, the executor in turn)."""
        from experiments.runner import run_study

        executor, log_file = self.executor(), self.log_file()
        lines: list[str] = []
        try:
            run_study(self.config, self.store, workers=2 if executor == "dask" else None,
                      quiet=True, command="experiments chaos: rerun", log=lines.append)
        except Exception as err:  # recorded: the report fails
            lines.append(f"{type(err).__name__}: {err}")
            self.report.runs_failed.append(f"{log_file.name}: {type(err).__name__}: {err}")
        log_file.write_text("\n".join(lines) + "\n")
        self.check_announcement(log_file, expected)
        self.log(f"{log_file.stem} ({executor}, in this process): rerun after the damage")

    def same_as(self, reference: Any) -> bool:
        from experiments.store import open_dataset

        final = open_dataset(self.store).load()
        return set(final.variables) == set(reference.variables) and all(
            final[n].values.tobytes() == reference[n].values.tobytes()
            and final[n].dtype == reference[n].dtype for n in final.variables)

    def compare(self, reference: Any) -> None:
        import numpy as np

        from experiments.registry import STUDY_KINDS
        from experiments.store import open_dataset

        final = open_dataset(self.store).load()
        names = set(STUDY_KINDS[self.config.study].variables(self.config))
        identical = set(final.variables) == set(reference.variables)
        lost = np.zeros((self.config.seeds.count, len(self.config.grid.n),
                         len(self.config.grid.d), len(self.config.grid.beta)), dtype=bool)
        wrong = lost.copy()
        for name in sorted(set(final.variables) & set(reference.variables)):
            a, b = final[name].values, reference[name].values
            same = a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            identical = identical and same
            if same or name not in names or a.shape != b.shape:
                if not same:
                    self.report.problems.append(f"variable {name} differs")
                continue
            fill = np.isnan(a) if a.dtype.kind == "f" else a == 0
            equal = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b
            extra = tuple(range(4, a.ndim))
            differs = ~equal.all(axis=extra) if extra else ~equal
            filled = fill.any(axis=extra) if extra else fill
            lost |= differs & filled
            wrong |= differs & ~filled
        self.report.cells = int(lost.size)
        self.report.cells_lost = int(lost.sum())
        self.report.cells_wrong = int((wrong & ~lost).sum())
        self.report.identical = identical
        final_report = _verified(self.store)
        self.report.final_verified = bool(final_report.ok and final_report.done.all())


def _ravel(key: list[int], shape: tuple[int, ...]) -> int:
    index = 0
    for k, size in zip(key, shape, strict=True):
        index = index * size + k
    return index


def run_chaos(workdir: Path, *, kills: int = 4, deletes: int = 2, garbage: int = 2,
              executors: tuple[str, ...] = EXECUTORS, seed: int = 0, race: bool = True,
              config_text: str = TINY, log: Callable[[str], None] = print) -> ChaosReport:
    """Run the chaos test in ``workdir`` (see the module docstring); the report."""
    start = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    chaos = _Chaos(workdir, config_text, executors, seed, log)
    chaos.report.kills_requested = kills
    reference = chaos.reference()
    attempts = 0
    while chaos.report.kills_delivered < kills and attempts < 4 * kills + 4:
        attempts += 1
        if chaos.kill_once():
            chaos.report.kills_delivered += 1
        elif _expected_pending(chaos.store, chaos.layout.count) == 0:
            # finished before the kill: check it, then start over for the remaining kills
            if not chaos.same_as(reference):
                chaos.report.problems.append("a store finished between kills differs from "
                                             "the reference")
            shutil.rmtree(chaos.store)
            chaos.log("the run finished first: starting a fresh store for the remaining kills")
    chaos.finish(race)
    if deletes + garbage:
        chaos.damage(deletes, garbage)
    chaos.compare(reference)
    if chaos.report.identical and chaos.report.final_verified and not chaos.report.runs_failed:
        chaos.report.kills_survived = chaos.report.kills_delivered
    chaos.report.seconds = time.perf_counter() - start
    return chaos.report
