"""Wall-clock timing: warm-up, then the median of repeats.

Each call is run ``warmup`` times first (one-time costs: kernel selection, thread
pools, first touch of memory). A call whose last warm-up took less than
``min_repeat_s`` is then run back to back until that much time has passed, which
fixes how many calls make one repeat (perf_counter is then far above its
resolution). Calls slower than ``slow_s`` get at most 3 repeats. The time per call
is the median over repeats.

By default each path's repeats run back to back, as an integrator calls it. Two
effects of a shared virtual machine make interleaving paths misleading: the worker
threads of the library used just before keep spinning after a call (OpenBLAS for
about 0.1 s; a torch call started meanwhile ran 2-3x slower), and memory freed for
a few seconds is slow to touch again (a 2 GiB numpy matrix: 2.5 s back to back,
4.5-5 s when other paths ran in between). Every path therefore starts after a
pause of ``pause_s``. ``interleave=True`` alternates the paths' repeats round by
round instead (pausing before each, and waking the thread pools with one untimed
call when the call is shorter than the pause), so that a load change on a busy
machine hits all paths alike.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Timing:
    """Seconds per call, one entry per repeat, each averaged over ``calls_per_repeat``."""

    per_call_s: tuple[float, ...]
    calls_per_repeat: int

    @property
    def median_s(self) -> float:
        return statistics.median(self.per_call_s)


def _clock(fn: Callable[[], Any], number: int, sync: Callable[[], None] | None) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    if sync is not None:
        sync()
    return (time.perf_counter() - start) / number


def _calibrate(
    fn: Callable[[], Any], min_repeat_s: float, sync: Callable[[], None] | None
) -> tuple[int, float]:
    """(calls per repeat, seconds per call): back-to-back calls until min_repeat_s passed."""
    count, start = 0, time.perf_counter()
    while True:
        fn()
        if sync is not None:
            sync()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_repeat_s:
            return count, elapsed / count


def measure(
    calls: Mapping[str, Callable[[], Any]],
    repeats: int,
    *,
    warmup: int = 1,
    min_repeat_s: float = 0.05,
    slow_s: float = 2.0,
    pause_s: float = 0.25,
    interleave: bool = False,
    sync: Callable[[], None] | None = None,
) -> tuple[dict[str, Timing], dict[str, Any]]:
    """Time every call; returns the timings and the output of each call's last warm-up."""
    if repeats < 1 or warmup < 1:
        raise ValueError(f"repeats and warmup must be >= 1, got {repeats} and {warmup}")
    outputs: dict[str, Any] = {}
    number: dict[str, int] = {}
    per_call: dict[str, float] = {}
    rounds: dict[str, int] = {}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for name, fn in calls.items():
        time.sleep(pause_s)
        for _ in range(warmup):
            start = time.perf_counter()
            outputs[name] = fn()
            if sync is not None:
                sync()
            last = time.perf_counter() - start
        if last >= min_repeat_s:
            number[name], per_call[name] = 1, last
        else:
            number[name], per_call[name] = _calibrate(fn, min_repeat_s, sync)
        rounds[name] = repeats if per_call[name] < slow_s else min(repeats, 3)
        if not interleave:
            samples[name] = [_clock(fn, number[name], sync) for _ in range(rounds[name])]
    for r in range(max(rounds.values(), default=0) if interleave else 0):
        for name, fn in calls.items():
            if r < rounds[name]:
                time.sleep(pause_s)
                if per_call[name] < pause_s:
                    fn()
                samples[name].append(_clock(fn, number[name], sync))
    timings = {name: Timing(tuple(samples[name]), number[name]) for name in calls}
    return timings, outputs


def fix_threads(threads: int) -> None:
    """Use ``threads`` threads in torch and in numpy's BLAS.

    The environment variables only reach a BLAS loaded later, so call this before
    numpy is imported (the command line does); torch is set directly.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    import torch

    torch.set_num_threads(threads)


def proc_field(path: str, name: str) -> str | None:
    """The text after ``name:`` on its line of a /proc file, or None where it cannot be read."""
    try:
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f
                         if line.split(":", 1)[0].strip() == name), None)
    except OSError:
        return None


def memory_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, or None where it cannot be read."""
    available = proc_field("/proc/meminfo", "MemAvailable")
    return None if available is None else int(available.split()[0]) * 1024


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, load, library versions and thread counts, for the report."""
    import numpy as np
    import torch

    available = memory_available_bytes()
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpu_model": proc_field("/proc/cpuinfo", "model name") or platform.processor()
        or "unknown",
        "cpu_flags": sorted(set((proc_field("/proc/cpuinfo", "flags") or "").split())
                            & {"avx", "avx2", "fma", "avx512f"}),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_available_gib": None if available is None else round(available / 2**30, 1),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "thread_environment": {v: os.environ.get(v) for v in THREAD_VARIABLES},
        **gpu_info(),
    }


def gpu_info() -> dict[str, Any]:
    """The CUDA device, its driver/runtime versions and triton's, where a GPU is present."""
    import torch

    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(0)
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return {"gpu": f"{props.name}, {props.multi_processor_count} SMs, "
                   f"{props.total_memory / 2**30:.0f} GiB",
            "cuda_runtime": torch.version.cuda, "triton": triton_version}
