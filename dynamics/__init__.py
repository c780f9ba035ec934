"""dynamics: tokens as interacting particles on the sphere; depth is time."""

from dynamics.fields.attention import (
    SA,
    USA,
    MultiHeadAttention,
    PureSelfAttention,
    SelfAttention,
)
from dynamics.fields.splitting import LieTrotter
from dynamics.observables import (
    cluster_gap,
    clustered,
    fraction_clustered_pairs,
    gram,
    min_pairwise_inner,
)
from dynamics.simulate import METHODS, Trajectory, simulate
from dynamics.space import ANGLES, EUCLIDEAN, SPHERE, angles_to_points, normalize, points_to_angles

__all__ = [
    "ANGLES",
    "EUCLIDEAN",
    "METHODS",
    "SA",
    "SPHERE",
    "USA",
    "LieTrotter",
    "MultiHeadAttention",
    "PureSelfAttention",
    "SelfAttention",
    "Trajectory",
    "angles_to_points",
    "cluster_gap",
    "clustered",
    "fraction_clustered_pairs",
    "gram",
    "min_pairwise_inner",
    "normalize",
    "points_to_angles",
    "simulate",
]
