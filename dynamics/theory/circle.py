"""Linear instability of the uniform distribution on the circle (d = 2).

With h_beta(theta) = e^{beta cos theta} = sum_k I_k(beta) e^{i k theta}, where I_k is the
modified Bessel function of the first kind, the mean-field velocity fields are
(paper (7.1) and its continuity equation on T)

    USA: X[nu] = (1/beta) h_beta' * nu,        SA: X[nu] = (1/beta) (h_beta' * nu) / (h_beta * nu),

with (f * nu)(theta) = int f(theta - phi) nu(phi) dphi. The uniform density
nu_0 = 1/(2 pi) is stationary, because h' * nu_0 = 0. Take a perturbation eta = e^{i k theta}.
Then h' * eta = 2 pi i k I_k(beta) eta, and the denominator of SA is I_0(beta) + O(eta).
So the linearised continuity equation d_t eta = -d_theta(nu_0 X[eta]) gives
d_t eta = sigma_k eta, with

    USA: sigma_k = k^2 I_k(beta) / beta,        SA: sigma_k = k^2 I_k(beta) / (beta I_0(beta)).

Both rates have their maximum at the same mode k* = argmax_k k^2 I_k(beta), which is close
to sqrt(2 beta) for large beta (paper section 6.5). As beta -> 0, sigma_1 -> 1/2, the Kuramoto
rate K/2 with K = 1, and sigma_k -> 0 for k >= 2. Negative beta (V = I still attracts,
but the weights favour distant tokens) is covered by I_k(-beta) = (-1)^k I_k(beta):
sigma_k(-beta) = (-1)^{k+1} sigma_k(beta), so the odd modes still grow and the even modes decay.
Rates are evaluated with the scaled Bessel function ive, which does not overflow for large beta.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import ive

from dynamics.validation import check_real


def _modes(k: Any) -> np.ndarray:
    arr = np.asarray(k)
    if arr.dtype.kind not in "iu" or np.any(arr < 0):
        raise ValueError(f"modes k must be non-negative integers, got {k!r}")
    return arr.astype(int)


def _check_normalization(normalization: str) -> None:
    if normalization not in ("softmax", "usa"):
        raise ValueError(f"normalization must be 'softmax' or 'usa', got {normalization!r}")


def _signed_ive(k: np.ndarray, beta: float) -> np.ndarray:
    """e^{-|beta|} I_k(beta), with I_k(-beta) = (-1)^k I_k(beta)."""
    sign = np.where(k % 2 == 1, math.copysign(1.0, beta), 1.0)
    return sign * ive(k, abs(beta))


def fourier_coefficients(beta: float, kmax: int, *, scaled: bool = False) -> np.ndarray:
    """I_k(beta) for k = 0..kmax, the Fourier coefficients of h_beta(theta) = e^{beta cos theta}.

    h_beta(theta) = sum_{k in Z} I_k(beta) e^{i k theta} with I_{-k} = I_k. With scaled=True
    the result is e^{-|beta|} I_k(beta), finite for every beta. Without scaling it overflows
    for |beta| > ~700. Shape (kmax + 1,).
    """
    check_real("beta", beta)
    if isinstance(kmax, bool) or not isinstance(kmax, (int, np.integer)) or kmax < 0:
        raise ValueError(f"kmax must be a non-negative integer, got {kmax!r}")
    values = _signed_ive(np.arange(int(kmax) + 1), float(beta))
    if scaled:
        return values
    with np.errstate(over="ignore"):
        return values * math.exp(abs(beta))


def growth_rates(beta: float, k: Any, normalization: str = "softmax") -> Any:
    """sigma_k of the uniform density on the circle, as derived in the module docstring.

    "softmax" (SA): k^2 I_k(beta) / (beta I_0(beta));  "usa" (USA): k^2 I_k(beta) / beta.
    beta = 0 gives the limit: sigma_1 = 1/2, and 0 for every other k (sigma_0 = 0 always:
    mass is conserved). k is an int or an integer array. Returns a float or an array.
    USA rates overflow to inf for |beta| > ~700.
    """
    check_real("beta", beta)
    _check_normalization(normalization)
    modes = _modes(k)
    beta = float(beta)
    if beta == 0.0:
        out = np.where(modes == 1, 0.5, 0.0)
    else:
        scaled = _signed_ive(modes, beta)
        if normalization == "softmax":
            out = modes**2 * scaled / (beta * ive(0, abs(beta)))
        else:
            with np.errstate(over="ignore"):
                out = modes**2 * scaled * math.exp(abs(beta)) / beta
    return float(out) if np.ndim(out) == 0 else out


def dominant_mode(beta: float, kmax: int | None = None) -> int:
    """k* = argmax_{k >= 1} sigma_k(beta), the same for SA and USA (about sqrt(2 beta)).

    The search runs over k = 1..kmax, by default 4 sqrt(|beta|) + 8, well past the maximum
    of k^2 e^{-k^2/(2 beta)}. beta = 0 gives 1.
    """
    check_real("beta", beta)
    if kmax is None:
        kmax = math.ceil(4 * math.sqrt(abs(beta))) + 8
    if isinstance(kmax, bool) or not isinstance(kmax, (int, np.integer)) or kmax < 1:
        raise ValueError(f"kmax must be an integer >= 1, got {kmax!r}")
    modes = np.arange(1, int(kmax) + 1)
    return int(modes[np.argmax(growth_rates(beta, modes, "softmax"))])
