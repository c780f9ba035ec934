"""``python -m experiments verify STORE``: check every chunk of a study store (issue 15).

Prints one line per damaged work chunk (missing data file, corrupt data - checksum or
decode failure -, damaged done flag) and per damaged summary variable or coordinate, then
a summary line. Reads only: a rerun of the study repairs what is found (it clears the
damaged chunks' flags and recomputes them). Exit status: 0 when everything verifies
(chunks not done yet are not damage), 1 when damage was found, 2 when STORE is not a
study store. ``--json PATH`` also writes the report as JSON.

Only argparse is imported at module level (``python -m experiments`` imports every
command module to build its parser).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", metavar="STORE", help="zarr study store (directory)")
    parser.add_argument("--json", metavar="PATH", dest="json_path",
                        help="also write the report as JSON to PATH")


def run(args: argparse.Namespace) -> int:
    """Verify ``args.store``; 0 all ok, 1 damage found, 2 not a study store."""
    from experiments.store import StoreMismatch, verify_store

    store = Path(args.store)
    try:
        report = verify_store(store)
    except (StoreMismatch, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for chunk in report.damaged:
        print(f"chunk {chunk.index}: {chunk.status}: {'; '.join(chunk.problems)}")
    for damage in report.arrays:
        print(f"{damage.role} {damage.name}: {'; '.join(damage.problems)}")
    counts = report.counts()
    state = "complete" if report.complete else "unfinished"
    checks = "crc32c checksums" if report.checksummed else "no checksums (older store: decode only)"
    print(f"{store}: {report.study}, {state}, {len(report.chunks)} chunks: "
          + ", ".join(f"{count} {status}" for status, count in counts.items())
          + f"; {len(report.arrays)} other array(s) damaged; {checks}; "
          + ("OK" if report.ok else "DAMAGED (" + (
              "array metadata unreadable: a rerun refuses; delete the store and start over"
              if any(a.role == "metadata" for a in report.arrays)
              else "a rerun recomputes the damaged chunks") + ")"))
    if args.json_path:
        target = Path(args.json_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0 if report.ok else 1
