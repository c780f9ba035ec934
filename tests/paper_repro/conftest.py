"""Fixtures for the figure tests: run a figure at tiny size into tmp_path and load its JSON."""

import json

import pytest

from paper_repro import FigureRequest
from paper_repro.registry import make as make_figure


@pytest.fixture
def make(tmp_path):
    """make(figure_id, stem, **request) -> (report, data): the figure at tiny size, through
    its store (compute -> <ID>.zarr -> draw), with its JSON."""

    def run(figure_id: str, stem: str, **options):
        report = make_figure(figure_id, FigureRequest(out=tmp_path, tiny=True, **options))
        assert not report.failed, [c.row() for c in report.failed]
        data = json.loads((tmp_path / f"{stem}.json").read_text())
        return report, data

    return run
