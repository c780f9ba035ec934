"""paper_repro: the figures of arXiv 2312.10794 and its companions, by one command.

Each figure module registers its figure (``registry.register``) when imported, here.
"""

from paper_repro import (  # noqa: F401  (each import registers a figure)
    c1_cluster_geometries,
    c2_boolean_attention,
    c3_staircase,
    c4_metastability,
    c5_renyi_centres,
    c6_normalization,
    f1_albert,
    f2_regime_map,
    f3_phase_diagrams,
    f4_circle_trajectories,
    f5_random_matrices,
    f6_hessian_kernel,
    f7_trajectories,
    f8_equiangular,
    mf_convergence,
    mf_growth,
    mf_noisy,
    mf_synchronisation,
    trained_flows,
    variant_flows,
)
from paper_repro.registry import FIGURES, Check, FigureReport, FigureRequest, make, register

__all__ = ["FIGURES", "Check", "FigureReport", "FigureRequest", "make", "register"]
