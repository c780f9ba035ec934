"""Running a study: plan the chunks, compute the unfinished ones, store, summarise.

    report = run_study(config, "out/study.zarr")                  # local process pool
    report = run_study(config, "out/study.zarr", workers=4)       # dask LocalCluster
    report = run_study(config, "out/study.zarr", scheduler="tcp://host:8786")

``compute_chunk(config, index)`` is a pure function: the numbers of a chunk depend only on
the config and the chunk's index (seeds, betas and grid point come from the layout,
random draws from generators keyed by the config seed), and it fixes torch's thread count
to ``compute.threads``. So the local pool, a LocalCluster and a remote cluster produce
identical stores on the CPU. Workers return their arrays; the driver alone writes them
and then marks the chunk done (``experiments.store``), so a remote cluster needs no shared
file system.

Executors:

* local (default): one chunk, one core or a CUDA device - chunks run in this process,
  one after the other (a single GPU); otherwise a ``ProcessPoolExecutor`` with one worker
  per core (``forkserver`` start, so no worker inherits a thread pool mid-flight);
* ``workers=N``: a ``dask.distributed.LocalCluster`` of N single-threaded worker processes;
* ``scheduler=ADDRESS``: an existing dask cluster (its workers need this package).
  Chunks of a CUDA config ask for the worker resource ``{"GPU": 1}``; a LocalCluster
  then gives each worker one such resource (start workers with ``--resources GPU=1``
  on a real cluster).

Stopping (``experiments.processes``): local workers ignore SIGINT and die with the driver,
``kill -9`` included. When the run ends early - an exception, or ``Interrupted`` from the
command line's SIGINT/SIGTERM handler - the executor is stopped at once (pool or
LocalCluster workers killed, pending work dropped), every chunk already written stays done
(a signal during a chunk's write waits for it), and the writer lock is released.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.chunks import Layout, members_of
from experiments.config import config_from_dict
from experiments.lock import store_lock
from experiments.processes import (
    deferred_interrupts,
    kill_dask_workers,
    stop_pool,
    worker_init,
)
from experiments.registry import COMMANDS, STUDY_KINDS
from experiments.schema import StudyConfig
from experiments.store import (
    ChunkWriter,
    append_history,
    check_compatible,
    clean_partial_files,
    create_store,
    done_mask,
    export_netcdf,
    note_engine,
    open_dataset,
    read_attrs,
    stored_config,
    write_summary,
)

GPU_RESOURCE = {"GPU": 1}


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` inside the block, restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compute_chunk(config: StudyConfig, index: int) -> tuple[int, dict[str, np.ndarray]]:
    """The stored arrays of chunk ``index``, each shaped like its region of the store."""
    kind = STUDY_KINDS[config.study]
    chunk = Layout.of(config).chunk(index)
    members = members_of(config, chunk)
    with torch_threads(config.compute.threads):
        results = kind.compute(config, members)
    seeds = chunk.seeds.stop - chunk.seeds.start
    betas = chunk.betas.stop - chunk.betas.start
    out = {}
    for name, var in kind.variables(config).items():
        block = np.asarray(results[name])
        out[name] = block.reshape(seeds, 1, 1, betas, *block.shape[1:]).astype(var.dtype)
    return index, out


# -- executors -------------------------------------------------------------------------------


def _process_pool(config: StudyConfig, pending: Sequence[int],
                  workers: int) -> Iterator[tuple[int, dict]]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["experiments.runner", COMMANDS[config.study].kind])
    # workers ignore SIGINT and die with the driver (experiments.processes); on any early
    # exit (an interruption, a failed chunk, the consumer stopping) they are ended at once
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=worker_init, initargs=(os.getpid(),))
    futures = {pool.submit(compute_chunk, config, index) for index in pending}
    try:
        while futures:
            finished, futures = wait(futures, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _dask(config: StudyConfig, pending: Sequence[int], *, workers: int | None,
          scheduler: str | None) -> Iterator[tuple[int, dict]]:
    import dask
    from distributed import Client, LocalCluster, as_completed

    resources = GPU_RESOURCE if config.compute.gpu else None
    with contextlib.ExitStack() as stack:
        cluster = None
        if scheduler is not None:
            client = stack.enter_context(Client(scheduler))
        else:
            # local workers ignore SIGINT and end with the driver (experiments.processes)
            with dask.config.set({"distributed.worker.preload": ["experiments.processes"]}):
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, resources=resources))
            client = stack.enter_context(Client(cluster))
        futures = [client.submit(compute_chunk, config, index, pure=False,
                                 resources=resources, key=f"chunk-{index}-{os.getpid()}")
                   for index in pending]
        try:
            for _, result in as_completed(futures, with_results=True):
                yield result
        except BaseException:  # interrupted or failed: drop the work not done, at once
                # the connections cut below make distributed and tornado log tracebacks (dask's
            # logging config gives some of their loggers their own levels: set each)
            for name in list(logging.root.manager.loggerDict):
                if name.split(".")[0] in ("distributed", "tornado"):
                    logging.getLogger(name).setLevel(logging.CRITICAL)
            with deferred_interrupts():
                if cluster is not None:
                    kill_dask_workers(cluster)
                with contextlib.suppress(Exception):
                    client.cancel(futures)
            raise


def chunk_results(config: StudyConfig, pending: Sequence[int], *, workers: int | None = None,
                  scheduler: str | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(index, arrays) of every pending chunk as they finish, on the chosen executor."""
    if workers is not None and scheduler is not None:
        raise ValueError("give --workers (a local dask cluster) or --scheduler, not both")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not pending:
        return iter(())
    if workers is not None or scheduler is not None:
        return _dask(config, pending, workers=workers, scheduler=scheduler)
    cores = os.cpu_count() or 1
    if len(pending) == 1 or cores == 1 or config.compute.gpu:
        return (compute_chunk(config, index) for index in pending)
    return _process_pool(config, pending, min(cores, len(pending)))


# -- progress --------------------------------------------------------------------------------


def _counted(results: Iterator, total: int, done: int, quiet: bool,
             log: Callable[[str], None]) -> Iterator:
    """``results`` (one per chunk, ``done`` of ``total`` done before) counted on a tqdm bar
    with ETA; with ``quiet``, in at most ~20 plain log lines."""
    if not quiet:
        if total > done:
            from tqdm.auto import tqdm

            results = tqdm(results, total=total, initial=done, unit="chunk", desc="chunks",
                           file=sys.stderr, dynamic_ncols=True)
        yield from results
        return
    start, step = time.perf_counter(), max(1, math.ceil((total - done) / 20))
    for ran, result in enumerate(results, 1):
        yield result
        if ran % step == 0 or done + ran == total:
            elapsed = time.perf_counter() - start
            log(f"  {done + ran}/{total} chunks, {elapsed:.1f} s elapsed, "
                f"eta {elapsed / ran * (total - done - ran):.1f} s")


# -- the driver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunReport:
    """What a run did: chunks computed now, already done before, in all; seconds; files."""

    store: Path
    computed: int
    reused: int
    total: int
    seconds: float
    netcdf: Path | None


def output_paths(out: str | Path, fmt: str) -> tuple[Path, Path | None]:
    """(zarr staging store, netCDF file or None) for ``--out`` and ``--format``."""
    out = Path(out)
    if fmt not in ("zarr", "netcdf"):
        raise ValueError(f"format must be 'zarr' or 'netcdf', got {fmt!r}")
    if out.suffix == ".nc":
        return out.with_suffix(".zarr"), out if fmt == "netcdf" else None
    return out, (out.with_suffix(".nc") if fmt == "netcdf" else None)


def study_engine(config: StudyConfig) -> str:
    """What integrates this study's chunks (``StudyKind.engine``, by default the engine
    ``dynamics.simulate`` takes for them): stored as the ``engine`` attribute."""
    from experiments.studies.common import simulate_engine

    kind = STUDY_KINDS[config.study]
    return (kind.engine or simulate_engine)(config)


def run_study(
    config: StudyConfig,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    format: str = "zarr",
    quiet: bool = False,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> RunReport:
    """Run (or resume) ``config`` into the store at ``out``; see the module docstring.

    A store made from a different config is refused (``StoreMismatch``) before any work.
    """
    command = command or " ".join(sys.argv)
    start = time.perf_counter()
    store, netcdf = output_paths(out, format)
    with store_lock(store, log):
        layout = Layout.of(config)
        engine = study_engine(config)
        if store.exists():
            check_compatible(store, config)
            removed = clean_partial_files(store)
            append_history(store, f"resumed by: {command}")
            note_engine(store, engine)
            if removed:
                log(f"removed {removed} partial file(s) left by an interrupted write")
        else:
            create_store(store, config, command, engine)
        done = done_mask(store, repair=True, log=log)  # verified; damage cleared (issue 15)
        pending = [int(i) for i in np.flatnonzero(~done)]
        reused = layout.count - len(pending)
        where = ("a local process pool" if workers is None and scheduler is None
                 else f"dask ({scheduler or f'LocalCluster, {workers} workers'})")
        log(f"{config.study}: {layout.count} chunks ({config.seeds.count} seeds x "
            f"{len(config.grid.n)} n x {len(config.grid.d)} d x {len(config.grid.beta)} beta), "
            f"{reused} already done, {len(pending)} to compute"
            + (f" on {where}" if pending else "") + f"; store {store}")
        writer = ChunkWriter(store)
        results = chunk_results(config, pending, workers=workers, scheduler=scheduler)
        counted = _counted(results, layout.count, reused, quiet, log)
        try:
            for index, arrays in counted:
                with deferred_interrupts():  # a chunk is written and marked done, or not
                    writer.write(layout.chunk(index), arrays)
        finally:  # close the progress bar; stop the executor now (workers ended, work dropped)
            counted.close()
            close = getattr(results, "close", None)
            if close is not None:
                close()
        if not done_mask(store).all():  # pragma: no cover - every pending chunk was written
            raise RuntimeError("some chunks are still missing after the run")
        if int(read_attrs(store).get("complete", 0)) != 1:
            ds = open_dataset(store).load()
            write_summary(store, STUDY_KINDS[config.study].summarize(ds, config))
        if netcdf is not None:
            export_netcdf(store, netcdf)
            log(f"netCDF written to {netcdf}")
        seconds = time.perf_counter() - start
        log(f"done in {seconds:.1f} s: {len(pending)} chunks computed, {reused} reused")
        return RunReport(store, len(pending), reused, layout.count, seconds, netcdf)


def load_study(path: str | Path) -> tuple[Any, StudyConfig]:
    """(Dataset, config) of a stored study (zarr directory or netCDF file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no study store at {path}")
    return open_dataset(path), config_from_dict(stored_config(path))
