"""Fixtures for the figure tests: run a figure at tiny size into tmp_path and load its JSON."""

import json

import pytest

from paper_repro import FIGURES, FigureRequest


@pytest.fixture
def make(tmp_path):
    """make(figure_id, stem, **request) -> (report, data): the figure at tiny size."""

    def run(figure_id: str, stem: str, **options):
        _, figure = FIGURES[figure_id]
        report = figure(FigureRequest(out=tmp_path, tiny=True, **options))
        data = json.loads((tmp_path / f"{stem}.json").read_text())
        return report, data

    return run
