"""The exact theory of attention dynamics: energies, the equiangular ODE, geometry, circle modes.

* ``energy``      - interaction energies in every normalisation, gradients, dissipation
* ``equiangular`` - gamma_beta(t) of Thm 6.8, crossing times, the phase boundary, Thm 6.9 constants
* ``geometry``    - Wendel's theorem, tau*_beta, the causal peak, the long-context single layer
* ``circle``      - growth rates of Fourier modes of the uniform density on the circle
"""

from dynamics.theory.circle import dominant_mode, fourier_coefficients, growth_rates
from dynamics.theory.energy import (
    CONVENTIONS,
    circle_energy,
    circle_energy_gradient,
    consensus_energy,
    energy_gradient,
    energy_rate,
    hessian_kernel,
    interaction_energy,
    kuramoto_energy,
)
from dynamics.theory.equiangular import (
    EquiangularSolution,
    consensus_rate,
    crossing_time,
    crossing_time_beta0,
    equiangular_beta0,
    equiangular_rhs,
    gap_bound_d8,
    pair_bound_d15,
    phase_boundary_betas,
    phase_boundary_times,
    solve_equiangular,
    theorem_6_9_dimension,
    theorem_6_9_rate,
    usa_gap_bound,
)
from dynamics.theory.geometry import (
    beta_for_tau_star,
    causal_peak,
    causal_profile,
    critical_scaling,
    equiangular_layer_cosine,
    hemisphere_probability,
    in_open_hemisphere,
    large_beta_threshold,
    lemma_6_4_rate,
    long_context_cosine,
    long_context_limit,
    tau_star,
    wendel_probability,
)

__all__ = [
    "CONVENTIONS",
    "EquiangularSolution",
    "beta_for_tau_star",
    "causal_peak",
    "causal_profile",
    "circle_energy",
    "circle_energy_gradient",
    "consensus_energy",
    "consensus_rate",
    "critical_scaling",
    "crossing_time",
    "crossing_time_beta0",
    "dominant_mode",
    "energy_gradient",
    "energy_rate",
    "equiangular_beta0",
    "equiangular_layer_cosine",
    "equiangular_rhs",
    "fourier_coefficients",
    "gap_bound_d8",
    "growth_rates",
    "hemisphere_probability",
    "hessian_kernel",
    "in_open_hemisphere",
    "interaction_energy",
    "kuramoto_energy",
    "large_beta_threshold",
    "lemma_6_4_rate",
    "long_context_cosine",
    "long_context_limit",
    "pair_bound_d15",
    "phase_boundary_betas",
    "phase_boundary_times",
    "solve_equiangular",
    "tau_star",
    "theorem_6_9_dimension",
    "theorem_6_9_rate",
    "usa_gap_bound",
    "wendel_probability",
]
