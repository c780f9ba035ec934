"""The figure registry: every reproduced figure is a function registered under its ID.

A figure function takes a :class:`FigureRequest` and writes a PNG, a PDF and a JSON file
(the numbers the figure shows, its parameters, seed, scheme and package version) into
``request.out``. It returns a :class:`FigureReport` whose ``checks`` compare the
figure's claim with theory; the command line prints them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FigureRequest:
    out: Path
    quick: bool = True
    scheme: str = "faithful"
    device: str = "cpu"
    seed: int = 0


@dataclass
class FigureReport:
    figure_id: str
    files: list[Path] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


FIGURES: dict[str, tuple[str, Callable[[FigureRequest], FigureReport]]] = {}


def register(figure_id: str, title: str):
    """Decorator: make a figure function available as ``python -m paper_repro ID``."""

    def wrap(fn: Callable[[FigureRequest], FigureReport]):
        FIGURES[figure_id] = (title, fn)
        return fn

    return wrap


def package_version() -> str:
    try:
        return version("attention-flows")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "unknown"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def save_figure(fig, request: FigureRequest, stem: str, data: dict[str, Any]) -> list[Path]:
    """Write ``stem``.png, .pdf and .json (data + request + version) into request.out."""
    request.out.mkdir(parents=True, exist_ok=True)
    paths = [request.out / f"{stem}.png", request.out / f"{stem}.pdf", request.out / f"{stem}.json"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    record = {
        "figure": stem,
        "version": package_version(),
        "quick": request.quick,
        "scheme": request.scheme,
        "seed": request.seed,
        **data,
    }
    paths[2].write_text(json.dumps(_jsonable(record), indent=1))
    return paths
