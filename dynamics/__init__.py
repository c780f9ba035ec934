"""dynamics: tokens as interacting particles on the sphere; depth is time.

Where each concept lives (a layer imports only the layers below it; pyproject.toml's
import contracts enforce it):

    simulate.py        one call: validate, build a ``Plan`` (reduction, fused route,
                       driver), run it
    gpu.py             the CUDA route: a field's ``fusion()`` as one Triton launch; CUDA graphs
    integrators/       fixed-step schemes, adaptive Runge-Kutta, the diffrax path, recording
    reduced.py         the exact span reduction (V = I, d >= n); gram_space.py: Q = K = V = I
    fields/base.py     the field contract (``Field``, ``Wrapper``, ``Fusion``, ``per_member``)
    fields/            attention, multi-head, normalisation placements, noise, splitting,
                       hardmax, feed-forward, circle fields, operator flows
    space.py           where states live: tangent projection and retraction
    observables.py, initial.py, ensembles.py, theory/, meanfield/ (PDE solvers only: the
                       particle-vs-PDE comparisons are figures, in paper_repro)
"""

from dynamics import theory
from dynamics.animation import animate, principal_projection
from dynamics.ensembles import Weights, authors_weights, figure5_weights, value_2305
from dynamics.fields.attention import SA, USA, MultiHeadAttention, PureSelfAttention, SelfAttention
from dynamics.fields.base import Field, Fusion, Wrapper
from dynamics.fields.circle import CircleAttention, CircleSA, CircleUSA, Kuramoto
from dynamics.fields.feedforward import FeedForward
from dynamics.fields.hardmax import Hardmax
from dynamics.fields.moe import CDMoE
from dynamics.fields.network import (
    Depth,
    NetworkFlow,
    ResidualField,
    StandardizedSublayer,
    model_flow,
)
from dynamics.fields.noise import Noisy
from dynamics.fields.normalization import NormalizedAttention, PeriLN, PreLN, polar
from dynamics.fields.operator import MemberOperators, OperatorField, euclidean_flow, sphere_flow
from dynamics.fields.rescaled import RescaledSelfAttention, from_rescaled, to_rescaled
from dynamics.fields.splitting import LieTrotter
from dynamics.fields.ssd import SSDField
from dynamics.gpu import ENGINES, FusedAttention, GraphedScheme, fuse
from dynamics.initial import (
    cone,
    equiangular,
    hemisphere,
    orthogonal,
    uniform_angles,
    uniform_box,
    uniform_sphere,
)
from dynamics.observables import (
    Clusters,
    Histogram,
    bind,
    cluster_count,
    cluster_gap,
    cluster_labels,
    clustered,
    clustering_time,
    density_histogram,
    first_time,
    fourier_modes,
    fraction_clustered_pairs,
    gram,
    gram_dimension,
    indicator_rank,
    inner_product_histograms,
    min_inner_with,
    min_pairwise_inner,
    order_parameter,
    pairwise_inner_products,
)
from dynamics.simulate import METHODS, Trajectory, simulate, which_engine
from dynamics.space import ANGLES, EUCLIDEAN, SPHERE, angles_to_points, normalize, points_to_angles
from dynamics.validation import NonFiniteStateError

_LAZY = {"diffrax_flow", "DiffraxFlow", "FlowSolution"}


def __getattr__(name: str):
    """The differentiable diffrax flow map loads jax and diffrax on first use only."""
    if name in _LAZY:
        from dynamics.integrators import diffrax_path

        return getattr(diffrax_path, name)
    raise AttributeError(f"module 'dynamics' has no attribute {name!r}")


__all__ = [
    "ANGLES",
    "ENGINES",
    "EUCLIDEAN",
    "METHODS",
    "SA",
    "SPHERE",
    "USA",
    "CDMoE",
    "CircleAttention",
    "CircleSA",
    "CircleUSA",
    "Clusters",
    "Depth",
    "DiffraxFlow",
    "FeedForward",
    "Field",
    "FlowSolution",
    "FusedAttention",
    "Fusion",
    "GraphedScheme",
    "Hardmax",
    "Histogram",
    "Kuramoto",
    "LieTrotter",
    "MemberOperators",
    "MultiHeadAttention",
    "NetworkFlow",
    "Noisy",
    "NonFiniteStateError",
    "NormalizedAttention",
    "OperatorField",
    "PeriLN",
    "PreLN",
    "PureSelfAttention",
    "RescaledSelfAttention",
    "ResidualField",
    "SSDField",
    "SelfAttention",
    "StandardizedSublayer",
    "Trajectory",
    "Weights",
    "Wrapper",
    "angles_to_points",
    "animate",
    "authors_weights",
    "bind",
    "cluster_count",
    "cluster_gap",
    "cluster_labels",
    "clustered",
    "clustering_time",
    "cone",
    "density_histogram",
    "diffrax_flow",
    "equiangular",
    "euclidean_flow",
    "figure5_weights",
    "first_time",
    "fourier_modes",
    "fraction_clustered_pairs",
    "from_rescaled",
    "fuse",
    "gram",
    "gram_dimension",
    "hemisphere",
    "indicator_rank",
    "inner_product_histograms",
    "min_inner_with",
    "min_pairwise_inner",
    "model_flow",
    "normalize",
    "order_parameter",
    "orthogonal",
    "pairwise_inner_products",
    "points_to_angles",
    "polar",
    "principal_projection",
    "simulate",
    "sphere_flow",
    "theory",
    "to_rescaled",
    "uniform_angles",
    "uniform_box",
    "uniform_sphere",
    "value_2305",
    "which_engine",
]
