"""Render a ``runner.Report``: machine header, time/ratio, memory and check tables, JSON.

Tables are Markdown (pipes, one header rule), readable on a terminal and pasteable
into BENCHMARKS.md unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments.bench.registry import Suite
from experiments.bench.runner import Report


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; numbers and text right-aligned alike."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    digits = 0 if v >= 100 else 1 if v >= 10 else 2 if v >= 1 else 3
    return f"{v:.{digits}f}"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"


def _cases(report: Report) -> list[tuple]:
    return list(dict.fromkeys((r["n"], r["d"], r["dtype"], r["op"]) for r in report.results))


def _cell(report: Report, key: tuple, path: str) -> dict[str, Any]:
    """The result row of ``path`` at ``key`` = (n, d, dtype, op); {} where there is none."""
    return next((r for r in report.results
                 if (r["n"], r["d"], r["dtype"], r["op"]) == key and r["path"] == path), {})


def machine_text(report: Report) -> str:
    m = report.machine
    s = report.settings
    return "\n".join([
        f"date (UTC): {m['date_utc']}",
        f"CPU: {m['cpu_model']} ({', '.join(m['cpu_flags'])}), {m['logical_cpus']} logical CPUs "
        f"({m['usable_cpus']} usable), {m['memory_available_gib']} GiB available",
        f"python {m['python']}, numpy {m['numpy']}, torch {m['torch']}; torch threads "
        f"{m['torch_threads']}, thread environment {m['thread_environment']}",
        f"load average at start {m['load_average']}, at end {m.get('load_average_end')}",
        *([f"GPU: {m['gpu']}; CUDA runtime {m['cuda_runtime']}, triton {m['triton']}"]
          if m.get("gpu") else []),
        f"repeats {s['repeats']} (at most 3 for calls over 2 s), warm-up {s['warmup']}, "
        f"{'interleaved' if s['interleave'] else 'back to back'}, pause {s['pause_s']} s, "
        f"seed {s['seed']}, memory {'measured' if s['memory'] else 'not measured'}",
        *(f"measured limit rates {dtype}: " + ", ".join(f"{k} {v:.3g}" for k, v in r.items())
          for dtype, r in m.get("rates", {}).items()),
    ])


def _ran(report: Report, suite: Suite) -> list[str]:
    """Implementations with at least one row in the report that was not skipped for its
    device (paths of another device stay out of the tables)."""
    return [impl.name for impl in suite.implementations
            if any(r["path"] == impl.name and not (r["skipped"] or "").startswith("runs on")
                   for r in report.results)]


def time_table(report: Report, suite: Suite) -> str:
    """Medians, ratios and (with a limit) the first default path's fraction of it."""
    names = _ran(report, suite)
    default = next((i.name for i in suite.implementations
                    if i.role == "default" and i.name in names), names[0])
    ratios_shown = [r for r in suite.ratios if {r.numerator, r.denominator} <= set(names)]
    header = ["n", "d", "dtype", "op", *(f"{n} ms" for n in names),
              *(r.label for r in ratios_shown)]
    if suite.limit is not None:
        header += ["limit ms", f"{default} % of limit"]
    rows = []
    for key in _cases(report):
        ratios = {r["label"]: r["value"] for r in report.ratios
                  if (r["n"], r["d"], r["dtype"], r["op"]) == key}
        times = [_ms(_cell(report, key, n).get("median_ms")) for n in names]
        row = [*map(str, key), *times, *(_ratio(ratios.get(r.label)) for r in ratios_shown)]
        if suite.limit is not None:
            cell = _cell(report, key, default)
            fraction = cell.get("fraction_of_limit")
            row += [_ms(cell.get("limit_ms")), "-" if fraction is None else f"{100 * fraction:.0f}"]
        rows.append(row)
    return markdown_table(header, rows)


def throughput_table(report: Report, suite: Suite) -> str:
    """Achieved exponentials/s and FLOP/s of every timed path, against the measured limits."""
    rates = report.machine.get("rates", {})
    rows = []
    for r in report.results:
        if r.get("exp_per_s") is None:
            continue
        limit = rates.get(r["dtype"], {})
        exp_limit, flop_limit = limit.get("exp_per_s"), limit.get("gemm_gflops")
        rows.append([
            str(r["n"]), str(r["d"]), r["dtype"], str(r["batch"]), r["op"], r["path"],
            _ms(r["median_ms"]), f"{r['exp_per_s'] / 1e9:.1f}",
            "-" if not exp_limit else f"{100 * r['exp_per_s'] / exp_limit:.0f}",
            f"{r['flop_per_s'] / 1e12:.2f}",
            "-" if not flop_limit else f"{100 * r['flop_per_s'] / (1e9 * flop_limit):.0f}",
            _mib(r.get("peak_mib")),
        ])
    return markdown_table(["n", "d", "dtype", "batch", "op", "path", "ms", "G exp/s",
                           "% exp limit", "TFLOP/s", "% GEMM limit", "peak MiB"], rows)


def memory_table(report: Report, suite: Suite) -> str:
    names = _ran(report, suite)
    rows = [[*map(str, key), *(_mib(_cell(report, key, n).get("peak_mib")) for n in names)]
            for key in _cases(report)]
    return markdown_table(["n", "d", "dtype", "op", *(f"{n} MiB" for n in names)], rows)


def check_table(report: Report, suite: Suite) -> str:
    names = _ran(report, suite)
    errors, tolerances = {}, {}
    for r in report.results:
        key = (r["check_n"], r["d"], r["dtype"], r["op"])
        tolerances.setdefault(key, r["tolerance"])
        errors.setdefault((key, r["path"]), r["check_error"])
    rows = [[*map(str, key), *("-" if errors.get((key, n)) is None else f"{errors[key, n]:.1e}"
                               for n in names), f"{tolerance:.1e}"]
            for key, tolerance in tolerances.items()]
    return markdown_table(["n", "d", "dtype", "op", *names, "tolerance"], rows)


def skipped_text(report: Report) -> str:
    """Paths not run, with the reason (paths of another device are left out)."""
    lines = sorted({f"- {r['path']} at n={r['n']} d={r['d']} {r['dtype']}: {r['skipped']}"
                    for r in report.results
                    if r["skipped"] and not r["skipped"].startswith("runs on")})
    return "\n".join(lines) if lines else "- nothing skipped"


def render(report: Report, suite: Suite) -> str:
    worst = {}
    for r in report.results:
        if r["agreement"] is not None:
            worst[r["dtype"]] = max(worst.get(r["dtype"], 0.0), r["agreement"])
    agreement = ", ".join(f"{k} {v:.1e}" for k, v in sorted(worst.items()))
    first = (_ran(report, suite) or [suite.implementations[0].name])[0]
    return "\n\n".join([
        f"# benchmark {suite.name}: {suite.summary}",
        machine_text(report),
        "Median time per call (ms) and ratios of medians:\n" + time_table(report, suite),
        "Peak memory above the warmed-up process (MiB), one fresh process per call (CUDA: "
        "growth of torch's peak allocation over one call):\n" + memory_table(report, suite),
        *(["Achieved rates (exp: n^2 per right-hand side; FLOP: 4 n^2 d) against the "
           "measured limits:\n" + throughput_table(report, suite)]
          if any(r.get("exp_per_s") is not None for r in report.results) else []),
        "Max |error| against the float64 materialised reference, checked before timing:\n"
        + check_table(report, suite),
        f"Agreement at full size (max |difference| from {first}): "
        + (agreement or "-"),
        "Skipped:\n" + skipped_text(report),
    ])


def write_json(report: Report, path: str | Path) -> None:
    Path(path).write_text(json.dumps(dataclasses.asdict(report), indent=1) + "\n")
