"""The figure registry: every figure is ``compute`` (simulate) -> store -> ``draw``.

A figure registers two functions under its ID (``register``):

* ``compute(request) -> xarray.Dataset``: the arrays the figure shows (variables with
  ``long_name``/``units`` attributes where meaningful) and its parameters as attributes;
* ``draw(dataset, request) -> (files, checks)``: the PNG, PDF and JSON (``save_figure``;
  movies with ``plotting.save_movie``) and the figure's claims as ``Check`` records.

``make`` runs compute, writes the Dataset to ``<out>/<ID>.zarr`` (with the request, package
version and title as attributes), reads it back and draws from what it read, so a normal
run and ``--replot`` (``make(..., replot=True)``: no compute, the stored request) take the
same path. A figure without ``compute`` (a closed-form plot) draws with ``dataset=None``.
Figures made from an experiments study keep that study's store as their cache; their
``compute`` returns what they draw from it. A ``Check`` is ``value sense bound``, its
``passed`` computed from those; the JSON holds the checks as a list of dicts.
"""

from __future__ import annotations

import json
import operator
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

SENSES = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
          "==": operator.eq}


@dataclass(frozen=True)
class FigureRequest:
    """What to make: output folder, size (quick or the papers' full size), integration scheme
    (``schemes.SCHEMES``: "faithful" the authors' Euler-then-normalise at h = 0.1, "exact"
    adaptive Dormand-Prince), device and the base seed every random draw of the figure
    derives from. ``tiny`` asks for the smallest sizes that still show the claim (tests).
    ``model`` is a local model (path or cached name) for the figures that read one (F1)."""

    out: Path
    quick: bool = True
    scheme: str = "faithful"
    device: str = "cpu"
    seed: int = 0
    tiny: bool = False
    model: str | None = None

    @property
    def size(self) -> str:
        """The size asked for by name: tiny, quick or full."""
        return "tiny" if self.tiny else ("quick" if self.quick else "full")

    def pick(self, quick: Any, full: Any, tiny: Any = None) -> Any:
        """The size for this request: tiny (when asked and given), quick or full."""
        if self.tiny and tiny is not None:
            return tiny
        return quick if self.quick else full


@dataclass(frozen=True)
class Check:
    """One claim of a figure as data: ``value sense bound`` (sense one of ``SENSES``);
    ``passed`` is computed from them (NaN never passes). ``note`` gives context."""

    name: str
    value: Any
    bound: Any
    sense: str = "<="
    note: str = ""
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.sense not in SENSES:
            raise ValueError(f"sense must be one of {sorted(SENSES)}, got {self.sense!r}")
        for name in ("value", "bound"):
            value = getattr(self, name)
            object.__setattr__(self, name, value.item() if hasattr(value, "item") else value)
        object.__setattr__(self, "passed", bool(SENSES[self.sense](self.value, self.bound)))

    def row(self) -> str:
        mark = "ok" if self.passed else "FAILED"
        return (f"{mark:<6} {self.name:<58} {_short(self.value):>10} {self.sense:>2} "
                f"{_short(self.bound):<10} {self.note}")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass
class FigureReport:
    """What ``make`` made: files, checks, the Dataset's store, or why the figure was skipped."""

    figure_id: str
    files: list[Path] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    skipped: str | None = None
    store: Path | None = None

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


@dataclass(frozen=True)
class Figure:
    figure_id: str
    title: str
    compute: Callable[[FigureRequest], Any] | None
    draw: Callable[[Any, FigureRequest], tuple[list[Path], list[Check]]]


class Unavailable(RuntimeError):
    """What a figure needs (a model, data, a library) is not available locally: skipped."""


class MissingStore(FileNotFoundError):
    """``--replot`` without a stored Dataset; the message names the store."""


PNG_DPI = 100
FIGURES: dict[str, Figure] = {}


def register(figure_id: str, title: str, compute: Callable | None = None):
    """Decorator on a figure's ``draw``: make it ``python -m paper_repro ID``."""

    def wrap(draw: Callable) -> Callable:
        FIGURES[figure_id] = Figure(figure_id, title, compute, draw)
        return draw

    return wrap


def store_path(request: FigureRequest, figure_id: str) -> Path:
    return request.out / f"{figure_id}.zarr"


def make(figure_id: str, request: FigureRequest, *, replot: bool = False) -> FigureReport:
    """compute -> ``<out>/<ID>.zarr`` -> draw from the store (module docstring)."""
    import xarray as xr

    figure, ds, path = FIGURES[figure_id], None, store_path(request, figure_id)
    if figure.compute is not None:
        if not replot:
            try:
                computed = figure.compute(request)
            except Unavailable as reason:
                return FigureReport(figure_id, skipped=str(reason))
            write_store(computed, path, figure, request)
        elif not (path / "zarr.json").exists() and not (path / ".zgroup").exists():
            raise MissingStore(f"{figure_id}: no stored data at {path}; run "
                               f"`python -m paper_repro {figure_id} --out {request.out}` first")
        ds = xr.open_zarr(path, consolidated=False).load()
        # draw with the request the Dataset was computed for
        request = replace(request, **{f.name: ds.attrs[f.name] for f in fields(request)
                                      if f.name in ds.attrs})
    files, checks = figure.draw(ds, request)
    return FigureReport(figure_id, files, checks, store=None if ds is None else path)


def write_store(ds: Any, path: Path, figure: Figure, request: FigureRequest) -> None:
    """Write ``ds`` with the request, title and package version as attributes."""
    ds = ds.copy()
    for name, var in list(ds.variables.items()):
        var.encoding = {}
        if var.dtype.kind == "U":  # variable-length strings: zarr v3 has a spec for those
            ds[name] = var.astype(object)
    request_attrs = {f.name: getattr(request, f.name) for f in fields(request) if f.name != "out"}
    ds.attrs = {k: _jsonable(v) for k, v in {**ds.attrs, "figure": figure.figure_id,
                "title": figure.title, "package_version": package_version(),
                **request_attrs}.items()}
    shutil.rmtree(path, ignore_errors=True)
    ds.to_zarr(path, mode="w", consolidated=False)


def dataset(data_vars: dict[str, Any], coords: dict[str, Any] | None = None,
            **params: Any) -> Any:
    """A figure's Dataset: ``data_vars``/``coords`` as for ``xarray.Dataset`` ((dims, array,
    {long_name, units}) tuples), ``params`` as the JSON attribute ``parameters``."""
    import xarray as xr

    return xr.Dataset(data_vars, coords, attrs={"parameters": json.dumps(_jsonable(params))})


def parameters(ds: Any) -> dict[str, Any]:
    """The ``parameters`` attribute of a figure Dataset (JSON in the store)."""
    value = ds.attrs["parameters"]
    return json.loads(value) if isinstance(value, str) else value


def package_version() -> str:
    try:
        return version("attention-flows")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "unknown"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Check):
        return _jsonable(asdict(value))
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


def save_figure(fig, request: FigureRequest, stem: str, data: dict[str, Any],
                checks: list[Check] = ()) -> list[Path]:
    """Write ``stem``.png, .pdf and .json (data, checks, request, version) into request.out
    and close ``fig``.

    The JSON holds ``data`` (the numbers the figure shows and its parameters) with the
    figure name, package version, quick flag, scheme, seed and the checks as dicts. NaN and
    infinities are written as null, so the file is standard JSON.
    """
    import matplotlib.pyplot as plt

    request.out.mkdir(parents=True, exist_ok=True)
    paths = [request.out / f"{stem}.png", request.out / f"{stem}.pdf", request.out / f"{stem}.json"]
    fig.savefig(paths[0], dpi=PNG_DPI, bbox_inches="tight")
    # no creation date in the PDF: the same seed gives the same bytes
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})
    record = {"figure": stem, "version": package_version(), "quick": request.quick,
              "tiny": request.tiny, "scheme": request.scheme, "seed": request.seed,
              **data, "checks": list(checks)}
    paths[2].write_text(json.dumps(_jsonable(record), indent=1, allow_nan=False))
    plt.close(fig)
    return paths
