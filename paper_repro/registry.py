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
    """What to make: output folder, size (quick or the papers' full size), integration scheme
    ("faithful": the authors' Euler-then-normalise at h = 0.1; "exact": an accurate
    integrator), device and the base seed every random draw of the figure derives from.
    ``tiny`` asks for the smallest sizes that still show the claim (the tests use it)."""

    out: Path
    quick: bool = True
    scheme: str = "faithful"
    device: str = "cpu"
    seed: int = 0
    tiny: bool = False

    def pick(self, quick: Any, full: Any, tiny: Any = None) -> Any:
        """The size for this request: tiny (when asked and given), quick or full."""
        if self.tiny and tiny is not None:
            return tiny
        return quick if self.quick else full


@dataclass
class FigureReport:
    figure_id: str
    files: list[Path] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


PNG_DPI = 100

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
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return _jsonable(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def save_figure(fig, request: FigureRequest, stem: str, data: dict[str, Any]) -> list[Path]:
    """Write ``stem``.png, .pdf and .json (data + request + version) into request.out.

    The JSON holds ``data`` (the numbers the figure shows and its parameters) with the
    figure name, package version, quick flag, scheme and seed. NaN and infinities are
    written as null, so the file is standard JSON.
    """
    request.out.mkdir(parents=True, exist_ok=True)
    paths = [request.out / f"{stem}.png", request.out / f"{stem}.pdf", request.out / f"{stem}.json"]
    fig.savefig(paths[0], dpi=PNG_DPI, bbox_inches="tight")
    # no creation date in the PDF: the same seed gives the same bytes
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})
    record = {
        "figure": stem,
        "version": package_version(),
        "quick": request.quick,
        "tiny": request.tiny,
        "scheme": request.scheme,
        "seed": request.seed,
        **data,
    }
    paths[2].write_text(json.dumps(_jsonable(record), indent=1, allow_nan=False))
    return paths
