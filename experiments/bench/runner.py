"""Run a suite: check every path against the reference, time it, measure its peak memory.

For each case (n, d, dtype):

1. check  - at n_check = min(n, suite.check_n) every implementation's output of every
            operation is compared with the suite's float64 reference; a max |error| above
            ``tolerance(dtype)`` = 1000 eps aborts the run (``CheckFailed``), so a fast
            wrong path is never timed;
2. time   - warm-up and repeats (``timing.measure``); the warm-up outputs at full n are
            compared with the first default path's (``agreement``); where the suite has a
            ``limit``, each median is set against it (``fraction_of_limit`` = limit / median);
3. memory - one fresh process per (implementation, operation) (``memory.measure_peak``);
            on CUDA the growth of torch's peak allocation over the call, in this process.

A path that stores an n x n matrix is skipped, with the reason reported, where two such
matrices would not fit in the available (host or GPU) memory or n exceeds
``max_dense_n``; a path that runs out of GPU memory anyway is reported as skipped. On
CUDA every timed call ends with a device synchronisation, and where the suite counts its
``work`` the achieved exponentials/s and FLOP/s are reported beside the times.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from experiments.bench.memory import measure_peak
from experiments.bench.registry import Case, Implementation, Suite
from experiments.bench.timing import machine_info, measure, memory_available_bytes

RESULT_FIELDS: tuple[str, ...] = (
    "n", "d", "dtype", "batch", "op", "path", "role", "skipped",
    "median_ms", "repeats", "calls_per_repeat", "times_ms",
    "limit_ms", "fraction_of_limit", "exp_per_s", "flop_per_s",
    "check_n", "check_error", "tolerance", "agreement", "peak_mib", "memory_method",
)
RATIO_FIELDS: tuple[str, ...] = ("n", "d", "dtype", "op", "label", "value", "target")


class CheckFailed(AssertionError):
    """A path disagrees with the reference: its timings would mean nothing."""


@dataclass(frozen=True)
class Settings:
    repeats: int = 5
    threads: int = 1
    memory: bool = True
    max_dense_n: int | None = None
    seed: int = 0
    warmup: int = 1
    pause_s: float = 0.25
    interleave: bool = False


@dataclass
class Report:
    suite: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    ratios: list[dict[str, Any]] = field(default_factory=list)


def tolerance(dtype: str) -> float:
    """Largest max |error| accepted against the float64 reference."""
    return 1000.0 * float(np.finfo(dtype).eps)


def as_numpy(value: Any) -> np.ndarray:
    """A host float64 copy of a numpy array or torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _on_cuda(case: Case) -> bool:
    return case.device.startswith("cuda")


def skip_reason(impl: Implementation, case: Case, settings: Settings) -> str | None:
    """Why ``impl`` is not run on ``case``, or None."""
    if case.device not in impl.devices:
        return f"runs on {impl.devices}, not {case.device}"
    if not impl.stores_dense:
        return None
    if settings.max_dense_n is not None and case.n > settings.max_dense_n:
        return f"stores n x n; n > --max-dense-n {settings.max_dense_n}"
    if _on_cuda(case):
        import torch

        available = torch.cuda.mem_get_info()[0]
    else:
        available = memory_available_bytes()
    if available is not None and 2 * case.dense_bytes > available:
        return (f"stores n x n ({case.dense_bytes / 2**30:.1f} GiB); two would not fit in "
                f"{available / 2**30:.1f} GiB available")
    return None


def check_case(suite: Suite, case: Case, seed: int) -> dict[tuple[str, str], float]:
    """Max |error| of every (implementation, op) against the reference at this case."""
    x0 = suite.inputs(case, seed)
    reference = suite.reference(case, x0)
    tol = tolerance(case.dtype)
    errors: dict[tuple[str, str], float] = {}
    for impl in suite.implementations:
        if case.device not in impl.devices:
            continue
        ops = impl.prepare(case, x0)
        for op in suite.ops:
            err = float(np.max(np.abs(as_numpy(ops[op]()) - reference[op])))
            if not err <= tol:
                raise CheckFailed(
                    f"{impl.name} {op} at n={case.n} d={case.d} {case.dtype}: max |error| "
                    f"{err:.3g} against the float64 reference exceeds {tol:.3g}"
                )
            errors[impl.name, op] = err
    return errors


def _out_of_memory(err: BaseException) -> bool:
    return type(err).__name__ in ("OutOfMemoryError", "MemoryError") or "out of memory" in str(
        err)


def _time_case(suite: Suite, case: Case, impls: list[Implementation], settings: Settings):
    """Timings, agreement with the first path, GPU peaks, and paths out of GPU memory.

    On the CPU all paths are timed together (``timing.measure``); on CUDA one path at a
    time, each call synchronised, freeing GPU memory in between.
    """
    x0 = suite.inputs(case, settings.seed)
    prepared = {impl.name: impl.prepare(case, x0) for impl in impls}
    cuda = _on_cuda(case)
    if cuda:
        import torch
    groups = [[name] for name in prepared] if cuda else [list(prepared)]
    timings, agreement, peaks, failed = {}, {}, {}, {}
    for op in suite.ops:
        first = None
        for group in groups:
            calls = {name: prepared[name][op] for name in group if name not in failed}
            try:
                op_timings, outputs = measure(
                    calls, settings.repeats, warmup=settings.warmup, pause_s=settings.pause_s,
                    interleave=settings.interleave and not cuda,
                    sync=torch.cuda.synchronize if cuda else None)
                if cuda and settings.memory:
                    peaks.update({(name, op): cuda_peak_mib(call) for name, call in calls.items()})
            except Exception as err:  # a GPU path may run out of memory: report it, go on
                if not (cuda and _out_of_memory(err)):
                    raise
                failed[group[0]] = f"out of GPU memory: {str(err).splitlines()[0][:100]}"
                _release(case)
                continue
            for name in calls:
                result = as_numpy(outputs[name])
                first = result if first is None else first
                timings[name, op] = op_timings[name]
                agreement[name, op] = float(np.max(np.abs(result - first)))
            del outputs
            _release(case)
    return timings, agreement, peaks, failed


def _release(case: Case) -> None:
    if _on_cuda(case):
        import gc

        import torch

        gc.collect()
        torch.cuda.empty_cache()


def cuda_peak_mib(call) -> float:
    """MiB that one call adds at its peak to torch's CUDA allocation (output included)."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    out = call()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    del out
    return peak / 2**20


def run_suite(
    suite: Suite, cases: list[Case], settings: Settings, log: Callable[[str], None] = print
) -> Report:
    """Check, time and measure every case; see the module docstring."""
    report = Report(suite.name, machine_info(), dataclasses.asdict(settings))
    checks: dict[Case, dict[tuple[str, str], float]] = {}
    for case in cases:
        small = dataclasses.replace(case, n=min(case.n, suite.check_n))
        if small not in checks:
            checks[small] = check_case(suite, small, settings.seed)
            worst = max(checks[small].values())
            log(f"check n={small.n} d={small.d} {small.dtype}: worst max|error| {worst:.2e} "
                f"(tolerance {tolerance(small.dtype):.1e})")
        skipped = {impl.name: skip_reason(impl, case, settings) for impl in suite.implementations}
        running = [impl for impl in suite.implementations if skipped[impl.name] is None]
        log(f"time n={case.n} d={case.d} {case.dtype} batch {case.batch}: "
            f"{', '.join(i.name for i in running)}")
        timings, agreement, peaks, failed = _time_case(suite, case, running, settings)
        skipped.update(failed)
        for impl in suite.implementations:
            for op in suite.ops:
                row = dict.fromkeys(RESULT_FIELDS)
                row.update(n=case.n, d=case.d, dtype=case.dtype, batch=case.batch, op=op,
                           path=impl.name, role=impl.role, skipped=skipped[impl.name],
                           check_n=small.n, check_error=checks[small].get((impl.name, op)),
                           tolerance=tolerance(case.dtype))
                if (impl.name, op) in timings:
                    _add_measurements(row, suite, impl, op, case, settings, report,
                                      timings[impl.name, op], peaks.get((impl.name, op)))
                    row["agreement"] = agreement[impl.name, op]
                    log(f"  {impl.name} {op}: {row['median_ms']:.4g} ms")
                report.results.append(row)
        report.ratios.extend(_ratios(suite, case, report.results))
    report.machine["load_average_end"] = machine_info()["load_average"]
    return report


def _add_measurements(row, suite: Suite, impl: Implementation, op: str, case: Case,
                      settings: Settings, report: Report, timing, cuda_peak: float | None):
    """The timing, the limit, the achieved rates and the peak memory of one path and op."""
    row.update(median_ms=1e3 * timing.median_s, repeats=len(timing.per_call_s),
               calls_per_repeat=timing.calls_per_repeat,
               times_ms=[1e3 * t for t in timing.per_call_s])
    if suite.limit is not None:
        limit_s, rates = suite.limit(case, op)
        report.machine.setdefault("rates", {})[case.dtype] = dict(rates)
        row["limit_ms"] = 1e3 * limit_s
        row["fraction_of_limit"] = row["limit_ms"] / row["median_ms"]
    if suite.work is not None:
        work = suite.work(case, op)
        row["exp_per_s"] = work["exp"] / (row["median_ms"] / 1e3)
        row["flop_per_s"] = work["flop"] / (row["median_ms"] / 1e3)
    if cuda_peak is not None:
        row.update(peak_mib=cuda_peak, memory_method="torch.cuda.max_memory_allocated")
    elif settings.memory:
        peak = measure_peak(suite.name, impl.name, op, case, threads=settings.threads,
                            seed=settings.seed)
        row["peak_mib"] = peak.get("peak_mib")
        row["memory_method"] = peak.get("method", peak.get("error"))


def _ratios(suite: Suite, case: Case, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    median = {
        (r["path"], r["op"]): r["median_ms"] for r in results
        if (r["n"], r["d"], r["dtype"], r["batch"]) == (case.n, case.d, case.dtype, case.batch)
    }
    rows = []
    names = {impl.name for impl in suite.implementations}
    ratios = [r for r in suite.ratios if {r.numerator, r.denominator} <= names]
    for op in suite.ops:
        for ratio in ratios:
            num, den = median.get((ratio.numerator, op)), median.get((ratio.denominator, op))
            value = None if num is None or den is None else num / den
            rows.append(dict(n=case.n, d=case.d, dtype=case.dtype, op=op, label=ratio.label,
                             value=value, target=ratio.target))
    return rows
