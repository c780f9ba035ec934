"""The study benchmark (``bench --suite study``) on a tiny case: the loop of one simulate call
per seed reproduces the times the study stored, and the report carries its documented fields
(no timing asserted)."""

import json

from experiments.__main__ import main


def test_bench_study_loop_reproduces_the_study(tmp_path, capsys):
    out = tmp_path / "bench.json"
    status = main(["bench", "--suite", "study", "--seeds", "6", "--chunk", "6",
                   "--loop-seeds", "3", "--n", "8", "--beta", "1.5", "--horizon", "30",
                   "--compact-every", "3", "--json", str(out)])
    assert status == 0
    result = json.loads(out.read_text())
    assert result["loop_seeds"] == 3 and result["study_chunks"] == 1
    assert result["same_censoring"] and result["max_abs_time_difference"] < 1e-12
    assert result["ratio"] == result["study_seeds_per_s"] / result["loop_seeds_per_s"]
    assert 0 < result["median_time"] < 30
    assert "ratio:" in capsys.readouterr().out
