"""What a benchmark is: cases, implementations, ratios and suites, registered by name.

* ``Case``           - one problem: ``batch`` groups of ``n`` tokens in R^d, a dtype, the
                       inverse temperature ``beta``, a step ``h`` and a device.
* ``Implementation`` - one way to compute a suite's operations. ``prepare(case, x0)`` gets
                       the initial tokens as a float64 numpy array (batch, n, d) and returns
                       one zero-argument callable per operation, with the inputs already
                       converted to the implementation's backend and dtype (not timed).
* ``Ratio``          - median time of ``numerator`` / median time of ``denominator``.
* ``Suite``          - operations, implementations, the float64 ``reference`` they are
                       checked against, ratios, the full and quick grids (per device where
                       they differ), and optionally ``limit(case, op)``: a lower bound on
                       the seconds per call from rates measured on this machine, with those
                       rates (the roofline), and ``work(case, op)``: the exponentials and
                       FLOPs of one call, for the achieved rates. Paths that exist only on
                       another device (CUDA) come in through ``for_device``.

Suites live in their own modules, named in ``experiments.registry.SUITES`` and imported on
demand (``load_suite``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from experiments.registry import SUITES

DTYPES: dict[str, int] = {"float32": 4, "float64": 8}  # name -> bytes per entry


@dataclass(frozen=True)
class Case:
    """One problem size; tokens are (batch, n, d) in ``dtype`` on ``device``."""

    n: int
    d: int
    dtype: str
    batch: int = 1
    beta: float = 1.0
    h: float = 0.1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        for name in ("n", "d", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def dense_bytes(self) -> int:
        """Bytes of one (batch, n, n) matrix in this dtype."""
        return self.batch * self.n * self.n * DTYPES[self.dtype]


Ops = Mapping[str, Callable[[], Any]]


@dataclass(frozen=True)
class Implementation:
    """A path to time. ``role`` is "default" (what the package runs) or "baseline"."""

    name: str
    role: str
    summary: str
    prepare: Callable[[Case, Any], Ops]
    stores_dense: bool = False  # holds a (batch, n, n) matrix: subject to the memory rule
    devices: tuple[str, ...] = ("cpu",)


@dataclass(frozen=True)
class Ratio:
    """median(numerator) / median(denominator), reported per case and operation."""

    label: str
    numerator: str
    denominator: str
    target: str


@dataclass(frozen=True)
class Grid:
    n: tuple[int, ...]
    d: tuple[int, ...]
    dtypes: tuple[str, ...]


@dataclass(frozen=True)
class Suite:
    """A benchmark: see the module docstring."""

    name: str
    summary: str
    ops: tuple[str, ...]
    implementations: tuple[Implementation, ...]
    reference: Callable[[Case, Any], Mapping[str, Any]]
    inputs: Callable[[Case, int], Any]
    ratios: tuple[Ratio, ...]
    grid: Grid
    quick: Grid
    check_n: int = 1024  # the reference check runs at min(n, check_n)
    limit: Callable[[Case, str], tuple[float, Mapping[str, float]]] | None = None
    device_grids: Mapping[str, tuple[Grid, Grid]] | None = None  # device -> (grid, quick)
    work: Callable[[Case, str], Mapping[str, float]] | None = None
    device_implementations: Mapping[str, tuple[Implementation, ...]] | None = None

    def for_device(self, device: str) -> Suite:
        """The suite as run on ``device``: its paths for that device (the device's own paths
        first), and the device's grids."""
        own = tuple((self.device_implementations or {}).get(device, ()))
        shared = tuple(i for i in self.implementations if device in i.devices)
        return replace(self, implementations=own + shared) if own else self

    def grids(self, device: str) -> tuple[Grid, Grid]:
        """(full grid, quick grid) on ``device``."""
        return (self.device_grids or {}).get(device, (self.grid, self.quick))

    def restricted(self, paths=None, ops=None) -> Suite:
        """This suite with only the named implementations and operations."""
        for name in paths or ():
            self.implementation(name)  # raises for an unknown name
        for op in ops or ():
            if op not in self.ops:
                raise ValueError(f"suite {self.name!r} has no operation {op!r}; it has {self.ops}")
        impls = tuple(i for i in self.implementations if not paths or i.name in paths)
        kept = {i.name for i in impls}
        ratios = tuple(r for r in self.ratios if {r.numerator, r.denominator} <= kept)
        return replace(self, implementations=impls, ops=tuple(ops or self.ops), ratios=ratios)

    def implementation(self, name: str) -> Implementation:
        for impl in self.implementations:
            if impl.name == name:
                return impl
        names = [impl.name for impl in self.implementations]
        raise ValueError(f"suite {self.name!r} has no implementation {name!r}; it has {names}")


def load_suite(name: str) -> Suite:
    """Import the module registered for ``name`` and return its ``SUITE``."""
    if name not in SUITES:
        raise ValueError(f"unknown benchmark suite {name!r}; known: {tuple(SUITES)}")
    return importlib.import_module(SUITES[name]).SUITE
