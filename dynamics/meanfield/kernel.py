"""The attention kernel on the circle in Fourier space, and how many modes resolve it.

On the circle (paper §2.7) the mean-field velocity is built from two convolutions,

    h_beta(theta) = e^{beta cos theta}       = sum_k I_k(beta) e^{i k theta},
    K_beta(theta) = -sin theta e^{beta cos theta} = h_beta'(theta) / beta
                  = sum_k (i/2) (I_{k-1}(beta) - I_{k+1}(beta)) e^{i k theta},

the second because -sin theta = (i/2)(e^{i theta} - e^{-i theta}). By the Bessel recurrence
I_{k-1} - I_{k+1} = (2k/beta) I_k this equals i k I_k(beta) / beta, but the difference form
has no 1/beta: at beta = 0 it is the Kuramoto kernel -sin theta (coefficient i/2 at k = 1).
USA moves mass with v = K * rho, SA with v = (K * rho) / (h * rho), where
(f * rho)(theta) = int f(theta - phi) rho(phi) dphi has coefficients 2 pi f_k rho_k.

Resolution criterion. A Galerkin truncation at |k| <= K drops the kernel's coefficients above
K. For fixed beta, |I_k(beta)| / I_0(beta) decreases in k, like e^{-k^2 / (2|beta|)} while
k << |beta| and like (|beta|/2)^k / k! beyond, so the kernel is resolved to relative accuracy
tol once K >= K_tol(beta) ~ sqrt(2 |beta| ln(1/tol)). ``modes_needed`` returns the exact
smallest such K; solvers warn with :class:`AliasingWarning` below it. The solution itself must
also be resolved (it concentrates into clusters); solvers report its spectral tail.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.special import ive

from dynamics.theory.circle import fourier_coefficients
from dynamics.validation import check_real

DEFAULT_TOL = 1e-10


class AliasingWarning(UserWarning):
    """Too few Fourier (or Gegenbauer) modes for the requested inverse temperature."""


def _check_kmax(kmax: int) -> int:
    if isinstance(kmax, bool) or not isinstance(kmax, (int, np.integer)) or kmax < 0:
        raise ValueError(f"kmax must be a non-negative integer, got {kmax!r}")
    return int(kmax)


def attention_coefficients(beta: float, kmax: int, *, scaled: bool = True) -> np.ndarray:
    """I_k(beta), k = 0..kmax: the Fourier coefficients of h_beta = e^{beta cos theta}.

    With scaled=True (default) multiplied by e^{-|beta|} (finite for every beta). Shape (kmax+1,).
    """
    return fourier_coefficients(beta, _check_kmax(kmax), scaled=scaled)


def velocity_coefficients(beta: float, kmax: int, *, scaled: bool = True) -> np.ndarray:
    """The Fourier coefficients of K_beta = -sin theta e^{beta cos theta}, k = 0..kmax.

    (i/2)(I_{k-1}(beta) - I_{k+1}(beta)) = i k I_k(beta)/beta, finite at beta = 0 (module
    docstring). scaled=True multiplies by e^{-|beta|}. Complex, shape (kmax+1,).
    """
    kmax = _check_kmax(kmax)
    bessel = fourier_coefficients(beta, kmax + 1, scaled=scaled)
    below = np.concatenate([bessel[1:2], bessel[:-2]])  # I_{k-1}, with I_{-1} = I_1
    return 0.5j * (below - bessel[1:])


def modes_needed(beta: float, tol: float = DEFAULT_TOL) -> int:
    """The smallest K >= 1 with |I_k(beta)| <= tol I_0(beta) for every k > K.

    Both kernels h_beta and K_beta are then resolved to relative accuracy tol
    (|K_k| <= I_{k-1}/2). About sqrt(2 |beta| ln(1/tol)) for large |beta|.
    """
    check_real("beta", beta)
    check_real("tol", tol, positive=True)
    if not tol < 1:
        raise ValueError(f"tol must lie in (0, 1), got {tol!r}")
    b = abs(float(beta))
    if b == 0.0:
        return 1
    kmax = math.ceil(2 * math.sqrt(2 * b * math.log(1 / tol)) + 2 * math.log(1 / tol) + 10)
    ratios = ive(np.arange(kmax + 1), b) / ive(0, b)
    above = np.nonzero(ratios > tol)[0]
    return max(1, int(above[-1]))


def check_modes(beta: float, modes: int, tol: float = DEFAULT_TOL, *, stacklevel: int = 3) -> int:
    """Warn (AliasingWarning) when ``modes`` < modes_needed(beta, tol); return the number needed."""
    needed = modes_needed(beta, tol)
    if modes < needed:
        warnings.warn(
            f"{modes} Fourier modes do not resolve the attention kernel e^(beta cos theta) at "
            f"beta = {beta:g}: |I_k(beta)|/I_0(beta) > {tol:g} up to k = {needed}; use "
            f"modes >= {needed} (about sqrt(2 |beta| ln(1/tol)))",
            AliasingWarning,
            stacklevel=stacklevel,
        )
    return needed
