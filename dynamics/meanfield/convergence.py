"""Particles -> PDE: the W1 gap between n particles and the mean-field solution, versus n and t.

n particles drawn from rho_0 (i.i.d., or at its quantiles) are integrated with
``dynamics.simulate`` (CircleSA / CircleUSA, adaptive DOPRI5), the density with the spectral
solver, and W1(mu_n(t), rho(t)) is measured on the circle (``wasserstein``). Dobrushin's
estimate (``dobrushin``) bounds it by e^{L t} W1(mu_n(0), rho_0); for i.i.d. starts
E W1(mu_n(0), rho_0) ~ c n^{-1/2} on the circle, and the gap at a fixed t decays at the same
rate, which is what propagation of chaos predicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dynamics.fields.circle import CircleAttention
from dynamics.meanfield.continuity import CircleSolution, check_normalization, solve_circle
from dynamics.meanfield.density import CircleDensity
from dynamics.meanfield.dobrushin import dobrushin_rate
from dynamics.meanfield.wasserstein import w1_circle
from dynamics.simulate import simulate
from dynamics.validation import check_real, check_times


@dataclass(frozen=True)
class MeanFieldGap:
    """times (T,); ns (N,); w1 (N, seeds, T) = W1(mu_n(t), rho(t)); bound (N, seeds, T) =
    e^{L t} W1(mu_n(0), rho_0); rate L; the PDE solution."""

    times: np.ndarray
    ns: np.ndarray
    w1: np.ndarray
    bound: np.ndarray
    rate: float
    solution: CircleSolution

    def slope(self, index: int = -1) -> float:
        """Log-log slope of the seed-mean W1 against n at times[index] (~ -1/2 for i.i.d.)."""
        mean = self.w1[:, :, index].mean(axis=1)
        return float(np.polyfit(np.log(self.ns), np.log(mean), 1)[0])


def mean_field_gap(
    rho0: CircleDensity,
    beta: float,
    normalization: str = "softmax",
    *,
    ns: Any = (100, 400, 1600),
    times: Any = (0.0, 1.0, 2.0),
    seeds: int = 4,
    seed: Any = 0,
    quantiles: bool = False,
    modes: int | None = None,
    rtol: float = 1e-8,
    particle_rtol: float = 1e-6,
) -> MeanFieldGap:
    """W1 between particles and PDE for each n in ``ns`` and each time (module docstring).

    rtol is the spectral solver's tolerance, particle_rtol the particles' (DOPRI5); both
    errors are far below the W1 being measured (~ n^{-1/2}).
    """
    if not isinstance(rho0, CircleDensity):
        raise TypeError(f"rho0 must be a CircleDensity, got {type(rho0).__name__}")
    check_real("beta", beta)
    check_normalization(normalization)
    t = check_times(times)
    sizes = np.asarray(ns)
    if sizes.ndim != 1 or sizes.dtype.kind not in "iu" or np.any(sizes < 1):
        raise ValueError(f"ns must be a 1-d sequence of positive integers, got {ns!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    solution = solve_circle(rho0, t, beta, normalization, modes=modes, rtol=rtol,
                            atol=rtol * 1e-3)
    densities = [solution.density(i) for i in range(t.size)]
    field = CircleAttention(beta=float(beta), normalization=normalization)
    gen = np.random.default_rng(seed)
    w1 = np.zeros((sizes.size, seeds, t.size))
    for i, n in enumerate(sizes):
        x0 = rho0.sample(gen, seeds, int(n), quantiles=quantiles)
        traj = simulate(field, x0, t, method="dopri5", rtol=particle_rtol,
                        atol=particle_rtol * 1e-2)
        states = np.asarray(traj.states)
        for j, density in enumerate(densities):
            w1[i, :, j] = w1_circle(states[:, j], density)
    rate = dobrushin_rate(beta, normalization)
    bound = w1[:, :, :1] * np.exp(rate * (t - t[0]))
    return MeanFieldGap(t, sizes, w1, bound, rate, solution)
