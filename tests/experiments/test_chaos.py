"""The chaos test of the store (issue 15, ``experiments.chaos``): real SIGKILLs of
``python -m experiments clustering-time`` at random points, deleted and garbled chunk files,
two writers at once; the store must end bit for bit equal to an uninterrupted run.

The fast subset (one kill, one deleted and one garbled chunk, the two-writer race, local
pool only) runs in every CI job; the full run (several kills alternating the local pool
and dask, more damage) is marked slow.
"""

from __future__ import annotations

import json
import time

import pytest

from experiments.__main__ import main
from experiments.chaos import run_chaos, summary_line


def _check(report) -> None:
    assert report.passed, summary_line(report) + f"\n{report.to_dict()}"
    assert report.identical and report.final_verified
    assert report.kills_survived == report.kills_delivered == report.kills_requested
    assert report.cells_lost == report.cells_wrong == report.cells_duplicated == 0
    assert report.damaged_chunks_detected == report.damaged_chunks_injected >= 1
    assert report.false_alarms == 0 and report.damage_after_kills == 0


def test_chaos_fast_subset(tmp_path, rng):
    start = time.perf_counter()
    report = run_chaos(tmp_path, kills=1, deletes=1, garbage=1, executors=("pool",),
                       seed=int(rng.integers(2**31)), log=lambda s: None)
    _check(report)
    assert report.files_deleted == report.files_garbled == 1
    assert report.writer_refused is True
    print(summary_line(report) + f" in {time.perf_counter() - start:.1f} s")


@pytest.mark.slow
def test_chaos_command_with_kills_on_the_pool_and_on_dask(tmp_path, rng, capsys):
    out = tmp_path / "chaos.json"
    code = main(["chaos", "--kills", "4", "--deletes", "2", "--garbage", "3",
                 "--executors", "pool,dask", "--seed", str(int(rng.integers(2**31))),
                 "--workdir", str(tmp_path / "work"), "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    data = json.loads(out.read_text())
    assert data["passed"] and data["kills_survived"] == 4 and data["writer_refused"]
    assert data["cells_lost"] == data["cells_duplicated"] == 0
    assert data["files_deleted"] == 2 and data["files_garbled"] == 3
    assert any("(dask)" in point for point in data["kill_points"])
    assert "chaos PASSED" in text
