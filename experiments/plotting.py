"""``python -m experiments plot STORE``: the standard figures of a stored study.

Everything comes from the store itself (a zarr directory or a netCDF file): the config
is read back from its ``config_json`` attribute, the summary variables from the store (or
recomputed from the per-seed data when the store has none yet, e.g. a netCDF exported
before), and the study kind's ``plot`` draws PNG and PDF files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.registry import STUDY_KINDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", metavar="STORE", help="a study store (.zarr directory or .nc)")
    parser.add_argument("--out-dir", metavar="DIR",
                        help="where to write the figures (default: STORE's name + '-figures')")


def plot_store(store: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Draw the study's figures; returns the written files."""
    import matplotlib

    matplotlib.use("Agg")
    from experiments.runner import load_study

    store = Path(store)
    ds, config = load_study(store)
    if "chunk_done" in ds and not bool(ds["chunk_done"].values.all()):
        missing = int((~ds["chunk_done"].values.astype(bool)).sum())
        raise ValueError(f"{store} is incomplete ({missing} chunks missing): rerun the study "
                         "with the same command to finish it")
    kind = STUDY_KINDS[config.study]
    ds = ds.load()
    summary = kind.summarize(ds, config)
    merged = ds.drop_vars([v for v in summary.data_vars if v in ds]).merge(summary)
    target = Path(out_dir) if out_dir else store.with_name(store.stem + "-figures")
    return kind.plot(merged, config, target)


def run(args: argparse.Namespace) -> int:
    try:
        paths = plot_store(args.store, args.out_dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"figure: {path}")
    return 0
