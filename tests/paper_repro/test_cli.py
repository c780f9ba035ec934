"""The command line and the reproducibility of the output files."""

import json

import pytest

from paper_repro import FIGURES, FigureRequest
from paper_repro.__main__ import main
from paper_repro.registry import _jsonable


def test_every_issue_figure_is_registered():
    assert {"F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "C1", "C2", "C3", "C4", "C5",
            "C6", "M1", "M2", "M3", "M4", "V1"} <= set(FIGURES)


def test_main_runs_a_figure_and_prints_its_check(tmp_path, capsys):
    assert main(["F6", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[F6]" in out and "ok" in out
    assert (tmp_path / "F6_hessian_kernel.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        main(["F99"])


def test_same_seed_same_bytes(tmp_path):
    """Two runs with the same seed write identical PNG, PDF, JSON and GIF files."""
    for name in ("a", "b"):
        FIGURES["C4"][1](FigureRequest(out=tmp_path / name, tiny=True))
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert {p.rsplit(".", 1)[1] for p in files} == {"png", "pdf", "json", "gif"}
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_json_is_standard():
    import numpy as np

    record = _jsonable({"a": np.array([1.0, np.nan]), "b": (np.int64(2), float("inf"))})
    assert json.loads(json.dumps(record, allow_nan=False)) == {"a": [1.0, None], "b": [2, None]}
