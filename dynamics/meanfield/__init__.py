"""Mean field: the continuity equation of attention dynamics, solved spectrally (paper §2.5, §2.7).

As n -> infinity the empirical measure of the tokens follows d_t mu + div(X[mu] mu) = 0.
On the circle (d = 2) this package solves it with a Fourier-Galerkin method, the kernel
e^{beta cos theta} being diagonal with coefficients I_k(beta):

* ``kernel``        Fourier coefficients of the kernels; ``modes_needed`` (resolution criterion)
* ``density``       ``CircleDensity``: densities by Fourier coefficients, CDF, sampling
* ``lawson``        adaptive integrating-factor Dormand-Prince 5(4)
* ``continuity``    ``solve_circle``: SA / USA, any beta, optional noise (Fokker-Planck)
* ``wasserstein``   ``w1_circle``: W1 between particles and a density on the circle
* ``dobrushin``     the Lipschitz rate L of W1(mu_n(t), mu(t)) <= e^{Lt} W1(mu_n(0), mu(0))
* ``instability``   growth rates of the uniform density measured on the PDE
* ``kuramoto``      beta = 0: moment hierarchy and the Ott-Antonsen law
* ``noisy``         kappa_c, the noisy Kuramoto self-consistency r = I_1(kappa r)/I_0(kappa r)
* ``synchronisation``  m-cluster stability (beta < -2/3), classifying final states; the
                       beta-grid study is ``python -m experiments synchronisation``
* ``gegenbauer``, ``zonal``  d >= 3: zonal densities through Gegenbauer moments

Only solvers and theory live here: comparisons that run particle simulations against the PDE
are studies, in ``paper_repro`` (``mf_convergence``, ``mf_growth``, ``mf_noisy``).
"""

from dynamics.meanfield.continuity import (
    CircleMeanField,
    CircleSolution,
    PositivityWarning,
    solve_circle,
)
from dynamics.meanfield.density import CircleDensity
from dynamics.meanfield.dobrushin import dobrushin_bound, dobrushin_rate, lipschitz_constants
from dynamics.meanfield.instability import (
    GrowthMeasurement,
    fit_growth_rates,
    growth_measurement,
    mode_numbers,
    pde_growth,
)
from dynamics.meanfield.kernel import (
    AliasingWarning,
    attention_coefficients,
    modes_needed,
    velocity_coefficients,
)
from dynamics.meanfield.kuramoto import moment_hierarchy, ott_antonsen_order
from dynamics.meanfield.noisy import (
    check_kappa,
    critical_kappa,
    kuramoto_order,
    pde_order_parameter,
)
from dynamics.meanfield.synchronisation import (
    arc_length,
    cluster_state_spectrum,
    diameter,
    synchronisation_outcome,
    three_cluster_eigenvalue,
)
from dynamics.meanfield.wasserstein import w1_circle
from dynamics.meanfield.zonal import (
    ZonalSolution,
    particle_moments,
    ring_points,
    sample_zonal,
    solve_zonal,
    zonal_modes_needed,
    zonal_moments,
    zonal_quantiles,
)

__all__ = [
    "AliasingWarning",
    "CircleDensity",
    "CircleMeanField",
    "CircleSolution",
    "GrowthMeasurement",
    "PositivityWarning",
    "ZonalSolution",
    "arc_length",
    "attention_coefficients",
    "check_kappa",
    "cluster_state_spectrum",
    "critical_kappa",
    "diameter",
    "dobrushin_bound",
    "dobrushin_rate",
    "fit_growth_rates",
    "growth_measurement",
    "kuramoto_order",
    "lipschitz_constants",
    "mode_numbers",
    "modes_needed",
    "moment_hierarchy",
    "ott_antonsen_order",
    "particle_moments",
    "pde_growth",
    "pde_order_parameter",
    "ring_points",
    "sample_zonal",
    "solve_circle",
    "solve_zonal",
    "synchronisation_outcome",
    "three_cluster_eigenvalue",
    "velocity_coefficients",
    "w1_circle",
    "zonal_modes_needed",
    "zonal_moments",
    "zonal_quantiles",
]
