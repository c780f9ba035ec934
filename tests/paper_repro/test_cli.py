"""The command line, the store every figure is drawn from, checks as data, reproducibility."""

import json

import pytest

import paper_repro.f6_hessian_kernel as f6
from paper_repro import FIGURES, Check, FigureRequest, make
from paper_repro.__main__ import main
from paper_repro.registry import _jsonable


def test_every_issue_figure_is_registered():
    assert {"F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "C1", "C2", "C3", "C4", "C5",
            "C6", "M1", "M2", "M3", "M4", "V1"} <= set(FIGURES)
    # only the closed-form schematic draws without a stored Dataset
    assert [k for k, f in FIGURES.items() if f.compute is None] == ["F2"]


def test_main_runs_a_figure_prints_its_checks_and_replots(tmp_path, capsys):
    assert main(["F6", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[F6]" in out and "F6 beta=2: grid points where g has the wrong sign" in out
    png = (tmp_path / "F6_hessian_kernel.png").read_bytes()
    record = json.loads((tmp_path / "F6_hessian_kernel.json").read_text())
    assert [c["passed"] for c in record["checks"]] == [True] * 4
    assert record["checks"][0]["sense"] == "==" and record["checks"][0]["bound"] == 0
    # --replot draws from <out>/F6.zarr alone: the same bytes
    (tmp_path / "F6_hessian_kernel.png").unlink()
    assert main(["F6", "--replot", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "F6_hessian_kernel.png").read_bytes() == png
    with pytest.raises(SystemExit):
        main(["F99"])


def test_replot_without_a_store_names_it(tmp_path, capsys):
    assert main(["F6", "--replot", "--out", str(tmp_path)]) == 2
    assert str(tmp_path / "F6.zarr") in capsys.readouterr().err


def test_replot_of_every_figure_redraws_those_with_a_store(tmp_path):
    """No ID: figures never made here (F1 without its model, say) are passed over."""
    assert main(["F6", "--out", str(tmp_path)]) == 0
    png = (tmp_path / "F6_hessian_kernel.png").read_bytes()
    (tmp_path / "F6_hessian_kernel.png").unlink()
    assert main(["--replot", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "F6_hessian_kernel.png").read_bytes() == png
    assert not (tmp_path / "F3_phase_diagrams.png").exists()  # no F3 store: not drawn


def test_a_violated_check_fails_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(f6, "ROOT_TOLERANCE", -1.0)
    assert main(["F6", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "F6: F6 beta=6: |beta sin^2 tau* - cos tau*|" in err


def test_check_is_computed_from_value_sense_and_bound():
    assert Check("a", 1.0, 2.0, "<=").passed and not Check("a", 3.0, 2.0, "<=").passed
    assert Check("b", True, True, "==").passed and not Check("c", float("nan"), 1.0, ">").passed
    with pytest.raises(ValueError, match="sense"):
        Check("d", 1.0, 1.0, "~")
    with pytest.raises(TypeError):
        Check("e", 1.0, 1.0, "<=", "", True)  # passed is computed, never given


def test_same_seed_same_bytes(tmp_path):
    """Two runs with the same seed write identical PNG, PDF, JSON and GIF files."""
    for name in ("a", "b"):
        make("C4", FigureRequest(out=tmp_path / name, tiny=True))
    files = sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_file())
    assert {p.rsplit(".", 1)[1] for p in files} == {"png", "pdf", "json", "gif"}
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_json_is_standard():
    import numpy as np

    record = _jsonable({"a": np.array([1.0, np.nan]), "b": (np.int64(2), float("inf"))})
    assert json.loads(json.dumps(record, allow_nan=False)) == {"a": [1.0, None], "b": [2, None]}
