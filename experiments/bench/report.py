"""Render a ``runner.Report``: machine header, time/ratio, memory and check tables, JSON.

Tables are Markdown (pipes, one header rule), readable on a terminal and pasteable
into BENCHMARKS.md unchanged.
"""

from __future__ import annotations

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


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _cases(report: Report) -> list[tuple]:
    keys = []
    for r in report.results:
        key = (r["n"], r["d"], r["dtype"], r["op"])
        if key not in keys:
            keys.append(key)
    return keys


def _cell(report: Report, key: tuple, path: str) -> dict[str, Any]:
    for r in report.results:
        if (r["n"], r["d"], r["dtype"], r["op"]) == key and r["path"] == path:
            return r
    return {}


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
        f"repeats {s['repeats']} (at most 3 for calls over 2 s), warm-up {s['warmup']}, "
        f"{'interleaved' if s['interleave'] else 'back to back'}, pause {s['pause_s']} s, "
        f"seed {s['seed']}, memory {'measured' if s['memory'] else 'not measured'}",
        *(f"measured limit rates {dtype}: " + ", ".join(f"{k} {v:.3g}" for k, v in r.items())
          for dtype, r in m.get("rates", {}).items()),
    ])


def time_table(report: Report, suite: Suite) -> str:
    """Medians, ratios and (with a limit) the first default path's fraction of it."""
    names = [impl.name for impl in suite.implementations]
    default = next(i.name for i in suite.implementations if i.role == "default")
    header = ["n", "d", "dtype", "op", *(f"{n} ms" for n in names),
              *(r.label for r in suite.ratios)]
    if suite.limit is not None:
        header += ["limit ms", f"{default} % of limit"]
    rows = []
    for key in _cases(report):
        ratios = {r["label"]: r["value"] for r in report.ratios
                  if (r["n"], r["d"], r["dtype"], r["op"]) == key}
        times = [_ms(_cell(report, key, n).get("median_ms")) for n in names]
        row = [*map(str, key), *times, *(_ratio(ratios.get(r.label)) for r in suite.ratios)]
        if suite.limit is not None:
            cell = _cell(report, key, default)
            fraction = cell.get("fraction_of_limit")
            row += [_ms(cell.get("limit_ms")), "-" if fraction is None else f"{100 * fraction:.0f}"]
        rows.append(row)
    return markdown_table(header, rows)


def memory_table(report: Report, suite: Suite) -> str:
    names = [impl.name for impl in suite.implementations]
    rows = [[*map(str, key), *(_mib(_cell(report, key, n).get("peak_mib")) for n in names)]
            for key in _cases(report)]
    return markdown_table(["n", "d", "dtype", "op", *(f"{n} MiB" for n in names)], rows)


def check_table(report: Report, suite: Suite) -> str:
    names = [impl.name for impl in suite.implementations]
    seen, rows = set(), []
    for r in report.results:
        key = (r["check_n"], r["d"], r["dtype"], r["op"])
        if key in seen:
            continue
        seen.add(key)
        errors = []
        for n in names:
            err = next((x["check_error"] for x in report.results if x["path"] == n and
                        (x["check_n"], x["d"], x["dtype"], x["op"]) == key), None)
            errors.append("-" if err is None else f"{err:.1e}")
        rows.append([*map(str, key), *errors, f"{r['tolerance']:.1e}"])
    return markdown_table(["n", "d", "dtype", "op", *names, "tolerance"], rows)


def skipped_text(report: Report) -> str:
    lines = sorted({f"- {r['path']} at n={r['n']} d={r['d']} {r['dtype']}: {r['skipped']}"
                    for r in report.results if r["skipped"]})
    return "\n".join(lines) if lines else "- nothing skipped"


def render(report: Report, suite: Suite) -> str:
    worst = {}
    for r in report.results:
        if r["agreement"] is not None:
            worst[r["dtype"]] = max(worst.get(r["dtype"], 0.0), r["agreement"])
    agreement = ", ".join(f"{k} {v:.1e}" for k, v in sorted(worst.items()))
    return "\n\n".join([
        f"# benchmark {suite.name}: {suite.summary}",
        machine_text(report),
        "Median time per call (ms) and ratios of medians:\n" + time_table(report, suite),
        "Peak memory above the warmed-up process (MiB), one fresh process per call:\n"
        + memory_table(report, suite),
        "Max |error| against the float64 materialised reference, checked before timing:\n"
        + check_table(report, suite),
        f"Agreement at full size (max |difference| from {suite.implementations[0].name}): "
        + (agreement or "-"),
        "Skipped:\n" + skipped_text(report),
    ])


def write_json(report: Report, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report.to_json(), indent=1) + "\n")
