"""paper_repro: the figures of arXiv 2312.10794 and its companions, by one command."""

from paper_repro import f7_trajectories  # noqa: F401  (registers the figure)
from paper_repro.registry import FIGURES, FigureReport, FigureRequest, register

__all__ = ["FIGURES", "FigureReport", "FigureRequest", "register"]
