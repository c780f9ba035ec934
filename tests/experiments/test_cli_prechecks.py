"""Failures of the command lines (issue 15): checked before any store is created, reported
as one line ``error: ...`` with status 2 (usage, config) or 1, and a full traceback only
with ``--debug``; for ``python -m experiments`` and ``python -m paper_repro``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments.__main__ import main
from experiments.cli import UsageError, error_line
from paper_repro.__main__ import main as paper_main

from .test_store import SMALL

ROOT = Path(__file__).parents[2]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def nothing_under(folder: Path, *keep: Path) -> bool:
    return sorted(folder.iterdir()) == sorted(keep)


@NO_CUDA
def test_device_cuda_without_cuda_is_one_line_and_creates_no_store(config, tmp_path, capsys):
    out = tmp_path / "gpu.zarr"
    code = main(["clustering-time", "--config", str(config), "--out", str(out), "--device",
                 "cuda", "--quiet"])
    line = one_error_line(capsys)
    assert code == 2 and "CUDA is not available" in line and "--device" in line
    assert nothing_under(tmp_path, config)  # no store, no lock file


@NO_CUDA
def test_a_config_asking_for_cuda_is_refused_the_same_way(tmp_path, capsys):
    path = tmp_path / "gpu.toml"
    path.write_text(SMALL.replace("[integrator]",
                                  '[compute]\nbackend = "torch"\ndevice = "cuda"\n[integrator]'))
    out = tmp_path / "gpu.zarr"
    assert main(["clustering-time", "--config", str(path), "--out", str(out)]) == 2
    assert "CUDA is not available" in one_error_line(capsys)
    assert nothing_under(tmp_path, path)


def test_out_under_a_file_is_one_line(config, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    out = blocker / "sub" / "s.zarr"
    assert main(["clustering-time", "--config", str(config), "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert str(blocker) in line and "not a directory" in line
    assert nothing_under(tmp_path, config, blocker)


def test_out_that_cannot_be_created_is_one_line(config, tmp_path, capsys):
    """/proc takes no new folders, not even from root."""
    out = Path("/proc/no-such-folder/s.zarr")
    assert main(["clustering-time", "--config", str(config), "--out", str(out)]) == 2
    assert "cannot create /proc/no-such-folder" in one_error_line(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder_is_one_line(config, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert main(["clustering-time", "--config", str(config), "--out",
                     str(folder / "s.zarr")]) == 2
        assert "cannot write in" in one_error_line(capsys)
        assert not list(folder.iterdir())
    finally:
        folder.chmod(0o755)


def test_out_that_is_a_file_is_one_line(config, tmp_path, capsys):
    out = tmp_path / "s.zarr"
    out.write_text("a file")
    assert main(["clustering-time", "--config", str(config), "--out", str(out)]) == 2
    assert "a file is in the way" in one_error_line(capsys)


def test_config_errors_are_one_line_with_status_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL.replace("n = [6]", "n = [-6]"))
    out = tmp_path / "s.zarr"
    assert main(["clustering-time", "--config", str(bad), "--out", str(out)]) == 2
    assert one_error_line(capsys).startswith(f"error: bad config {bad}: grid.n")
    assert main(["clustering-time", "--config", str(tmp_path / "missing.toml"),
                 "--out", str(out)]) == 2
    assert "does not exist" in one_error_line(capsys)
    assert not out.exists()


def test_a_multi_line_message_becomes_one_line():
    err = ValueError("first line.\n  second: a\n  third: b\n")
    assert error_line(err) == "error: ValueError: first line.; second: a; third: b"
    assert error_line(UsageError("plain")) == "error: plain"
    assert error_line(KeyError()) == "error: KeyError"


def test_unexpected_failures_are_one_line_with_status_1(config, tmp_path, capsys,
                                                        monkeypatch):
    import experiments.runner

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(experiments.runner, "run_study", broken)
    assert main(["clustering-time", "--config", str(config), "--out",
                 str(tmp_path / "s.zarr")]) == 1
    assert one_error_line(capsys) == "error: OSError: [Errno 28] No space left on device"
    with pytest.raises(OSError):  # --debug: the exception itself, so its traceback
        main(["clustering-time", "--config", str(config), "--out", str(tmp_path / "s.zarr"),
              "--debug"])


def test_debug_shows_the_traceback(config, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    args = ["clustering-time", "--config", str(config), "--out", str(blocker / "s.zarr")]
    assert main(args) == 2 and "not a directory" in one_error_line(capsys)
    with pytest.raises(UsageError):  # in front of the command as well
        main(["--debug", *args])
    debug = subprocess.run([sys.executable, "-m", "experiments", *args, "--debug"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback (most recent call last)" in debug.stderr
    assert "UsageError" in debug.stderr and "not a directory" in debug.stderr


# -- python -m paper_repro -------------------------------------------------------------------


def test_paper_repro_out_under_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    assert paper_main(["F6", "--out", str(blocker / "figs")]) == 2
    assert "not a directory" in one_error_line(capsys)
    with pytest.raises(UsageError):
        paper_main(["F6", "--out", str(blocker / "figs"), "--debug"])


@NO_CUDA
def test_paper_repro_device_cuda_without_cuda_is_one_line(tmp_path, capsys):
    out = tmp_path / "figs"
    assert paper_main(["F6", "--out", str(out), "--device", "cuda"]) == 2
    assert "CUDA is not available" in one_error_line(capsys)
    assert not out.exists()


def test_paper_repro_failures_are_one_line_naming_the_figure(tmp_path, capsys, monkeypatch):
    import paper_repro.__main__ as cli

    def broken(figure_id, request, replot=False):
        raise RuntimeError("the solver diverged\nat t = 3")

    monkeypatch.setattr(cli, "make", broken)
    assert paper_main(["F6", "--out", str(tmp_path)]) == 1
    assert one_error_line(capsys) == "error: [F6] RuntimeError: the solver diverged; at t = 3"
