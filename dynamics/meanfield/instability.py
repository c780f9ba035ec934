"""Linear instability of the uniform density on the circle, measured on the PDE against theory.

Theory (``theory.circle``): a perturbation e^{ik theta} of the uniform density grows at
sigma_k = k^2 I_k(beta)/(beta I_0(beta)) (SA) or k^2 I_k(beta)/beta (USA); the fastest mode is
k* = argmax_k sigma_k ~ sqrt(2 beta). Two measurements of the same rates:

* PDE: the spectral solver from (1/2 pi)(1 + eps sum_k cos(k theta + phi_k)) with eps tiny;
  log|c_k(t)| is linear in t with slope sigma_k up to O(eps) corrections.
* Particles (a study, not this solver package: ``paper_repro.mf_growth.particle_growth``)
  measure the same rates from the empirical modes of n uniform random angles. For beta < 0
  the even modes decay and the fastest mode is odd (sigma_k(-beta) = (-1)^{k+1} sigma_k).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dynamics.meanfield.continuity import check_normalization, solve_circle
from dynamics.meanfield.density import CircleDensity
from dynamics.meanfield.kernel import modes_needed
from dynamics.theory.circle import dominant_mode, growth_rates
from dynamics.validation import check_real, check_times


def fit_growth_rates(times: Any, amplitudes: Any, window: tuple[float, float] | None = None
                     ) -> np.ndarray:
    """Least-squares slopes of log(amplitudes) against t.

    times (T,); amplitudes (T, K) positive (one column per mode); window (t_a, t_b) restricts
    the fit (default: all times). Returns (K,).
    """
    t = check_times(times)
    amp = np.asarray(amplitudes, dtype=float)
    if amp.ndim != 2 or amp.shape[0] != t.size:
        raise ValueError(f"amplitudes must have shape (T, K) = ({t.size}, K), got {amp.shape}")
    mask = np.ones(t.size, bool) if window is None else (t >= window[0]) & (t <= window[1])
    if mask.sum() < 2:
        raise ValueError(f"the window {window} holds fewer than two output times")
    if not np.all(amp[mask] > 0):
        raise ValueError("amplitudes must be positive to take logarithms")
    return np.polyfit(t[mask], np.log(amp[mask]), 1)[0]


@dataclass(frozen=True)
class GrowthMeasurement:
    """modes (K,); predicted and measured rates (K,); amplitudes (T, K) (batch-mean |mode k|);
    window used for the fit; dominant modes: predicted k*, argmax of measured rates, and
    argmax of the amplitudes at the end of the window."""

    modes: np.ndarray
    predicted: np.ndarray
    measured: np.ndarray
    times: np.ndarray
    amplitudes: np.ndarray
    window: tuple[float, float]
    dominant_predicted: int
    dominant_rate: int
    dominant_amplitude: int


def growth_measurement(beta, normalization, ks, times, amplitudes, window) -> GrowthMeasurement:
    """Fit the rates of modes ks from amplitudes (T, K) over window, beside the theory."""
    measured = fit_growth_rates(times, amplitudes, window)
    end = int(np.searchsorted(times, window[1], side="right")) - 1
    return GrowthMeasurement(
        modes=ks,
        predicted=np.asarray(growth_rates(beta, ks, normalization)),
        measured=measured,
        times=times,
        amplitudes=amplitudes,
        window=window,
        dominant_predicted=dominant_mode(beta),
        dominant_rate=int(ks[np.argmax(measured)]),
        dominant_amplitude=int(ks[np.argmax(amplitudes[end])]),
    )


def mode_numbers(kmax: int) -> np.ndarray:
    if isinstance(kmax, bool) or not isinstance(kmax, (int, np.integer)) or kmax < 1:
        raise ValueError(f"kmax must be an integer >= 1, got {kmax!r}")
    return np.arange(1, int(kmax) + 1)


def pde_growth(beta: float, normalization: str = "softmax", *, kmax: int = 12,
               horizon: float | None = None, eps: float = 1e-8, seed: Any = 0,
               outputs: int = 11) -> GrowthMeasurement:
    """Rates of modes 1..kmax from the spectral solver started at a tiny perturbation.

    horizon defaults to 3 / max_k |sigma_k| (growth by ~e^3, still linear at eps = 1e-8).
    """
    check_real("beta", beta)
    check_normalization(normalization)
    ks = mode_numbers(kmax)
    rates = np.asarray(growth_rates(beta, ks, normalization))
    if horizon is None:
        horizon = 3.0 / max(float(np.max(np.abs(rates))), 1e-3)
    check_real("horizon", horizon, positive=True)
    modes = max(2 * int(kmax), 16, modes_needed(beta))
    rho0 = CircleDensity.perturbed_uniform(eps, modes, seed=seed, excited=int(kmax))
    times = np.linspace(0.0, float(horizon), outputs)
    sol = solve_circle(rho0, times, beta, normalization, modes=modes, rtol=1e-10, atol=1e-20)
    amplitudes = np.abs(sol.fourier_modes(ks))
    return growth_measurement(beta, normalization, ks, times, amplitudes, (0.0, float(horizon)))
