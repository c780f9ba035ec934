"""Noise on the circle: Fokker-Planck, its stationary states and the kappa = 2 bifurcation.

The noisy Transformer on angles, d theta_i = v_i dt + sqrt(2/kappa) dW_i (``Noisy``), has the
mean-field Fokker-Planck equation (sign as it must be for a diffusion; paper.md §9 item 8)

    d_t rho + d_theta(v[rho] rho) = (1/kappa) d_theta^2 rho.

Linear stability of the uniform density: mode k grows at sigma_k - k^2/kappa, with sigma_k the
noiseless rate (``theory.circle.growth_rates``). Since |I_k(beta)| decreases in k, mode 1
destabilises first, at

    kappa_c = 1/sigma_1 = beta / I_1(beta) (USA),   beta I_0(beta) / I_1(beta) (SA),

both -> 2 as beta -> 0. Stationary states: v is a gradient, v = d_theta Phi with
Phi = (1/beta) h_beta * rho (USA) or (1/beta) log(h_beta * rho) (SA) (Phi -> int cos(theta - phi)
rho(phi) dphi at beta = 0), and zero flux gives rho ~ e^{kappa Phi}. At beta = 0,
Phi = r cos(theta - psi) with r e^{i psi} = int e^{i theta} rho, so rho is von Mises with
concentration kappa r and the order parameter solves the self-consistency equation

    r = I_1(kappa r) / I_0(kappa r):   r = 0 for kappa <= 2, one branch r > 0 for kappa > 2,

a supercritical pitchfork at kappa = 2 (I_1(x)/I_0(x) = x/2 - x^3/16 + ..., so
r^2 ~ 8 (kappa - 2) / kappa^3 near threshold).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import ive

from dynamics.meanfield.continuity import solve_circle
from dynamics.meanfield.density import CircleDensity
from dynamics.theory.circle import growth_rates


def critical_kappa(beta: float, normalization: str = "softmax") -> float:
    """kappa_c = 1/sigma_1(beta): the uniform density is linearly stable iff kappa < kappa_c."""
    return 1.0 / growth_rates(beta, 1, normalization)


def check_kappa(kappa: Any) -> float:
    if isinstance(kappa, bool) or not isinstance(kappa, (int, float)):
        raise TypeError(f"kappa must be a real number > 0, got {kappa!r}")
    if not (math.isfinite(kappa) and kappa > 0):
        raise ValueError(f"kappa must be finite and > 0, got {kappa!r}")
    return float(kappa)


def bessel_ratio(x: Any) -> np.ndarray:
    """I_1(x) / I_0(x), computed with scaled Bessel functions (no overflow)."""
    arr = np.asarray(x, dtype=float)
    return ive(1, arr) / ive(0, arr)


def kuramoto_order(kappa: float) -> float:
    """The stationary order parameter of the noisy Kuramoto mean field (beta = 0):
    the largest root of r = I_1(kappa r)/I_0(kappa r); 0 for kappa <= 2."""
    kappa = check_kappa(kappa)
    if kappa <= 2.0:
        return 0.0
    return float(brentq(lambda r: float(bessel_ratio(kappa * r)) - r, 1e-12, 1.0, xtol=1e-14))


def pde_order_parameter(kappa: float, beta: float = 0.0, normalization: str = "softmax", *,
                        horizon: float = 150.0, modes: int = 32, seed: Any = 0) -> float:
    """|int e^{i theta} rho(T)| from the Fokker-Planck solver started near uniform
    (von Mises with concentration 0.2, plus small random modes), at T = horizon."""
    kappa = check_kappa(kappa)
    start = CircleDensity.von_mises(0.2, 0.0, modes=modes).coefficients
    wiggle = CircleDensity.perturbed_uniform(1e-3, modes, seed=seed, excited=4).coefficients
    wiggle[0] = 0.0
    rho0 = CircleDensity(start + wiggle)
    sol = solve_circle(rho0, [0.0, horizon], beta, normalization, modes=modes, kappa=kappa)
    return float(np.abs(sol.order_parameter()[-1]))
