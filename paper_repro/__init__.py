"""paper_repro: the figures of arXiv 2312.10794 and its companions, by one command.

Importing a figure module registers its figure (``registry.register``); one line each.
"""

from paper_repro.c1_cluster_geometries import figure_c1  # noqa: F401
from paper_repro.c2_boolean_attention import figure_c2  # noqa: F401
from paper_repro.c3_staircase import figure_c3  # noqa: F401
from paper_repro.c4_metastability import figure_c4  # noqa: F401
from paper_repro.c5_renyi_centres import figure_c5  # noqa: F401
from paper_repro.c6_normalization import figure_c6  # noqa: F401
from paper_repro.f1_albert import figure_f1  # noqa: F401
from paper_repro.f2_regime_map import figure_f2  # noqa: F401
from paper_repro.f3_phase_diagrams import figure_f3  # noqa: F401
from paper_repro.f4_circle_trajectories import figure_f4  # noqa: F401
from paper_repro.f5_random_matrices import figure_f5  # noqa: F401
from paper_repro.f6_hessian_kernel import figure_f6  # noqa: F401
from paper_repro.f7_trajectories import figure_f7  # noqa: F401
from paper_repro.f8_equiangular import figure_f8  # noqa: F401
from paper_repro.mf_convergence import figure_m1  # noqa: F401
from paper_repro.mf_growth import figure_m2  # noqa: F401
from paper_repro.mf_noisy import figure_m4  # noqa: F401
from paper_repro.mf_synchronisation import figure_m3  # noqa: F401
from paper_repro.registry import FIGURES, FigureReport, FigureRequest, register
from paper_repro.variant_flows import figure_v1  # noqa: F401

__all__ = ["FIGURES", "FigureReport", "FigureRequest", "register"]
