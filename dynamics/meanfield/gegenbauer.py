"""Zonal functions on S^{d-1}: normalised Gegenbauer polynomials, quadrature and Funk-Hecke.

A zonal function depends on x only through s = <x, e>, e a fixed pole. Under the uniform
probability measure sigma_d, s has density w(s) ~ (1 - s^2)^{(d-3)/2} on [-1, 1], and the
orthogonal polynomials for w are the Gegenbauer polynomials C_l^{lambda}, lambda = (d-2)/2,
i.e. Jacobi P_l^{(alpha, alpha)} with alpha = (d-3)/2. We use them normalised at the pole,

    P_l(s) = P_l^{(alpha,alpha)}(s) / P_l^{(alpha,alpha)}(1),   P_l(1) = 1,
    int P_l P_m dsigma_d = delta_lm / N_l,   N_l = (2l + d - 2)(l + d - 3)! / (l! (d - 2)!),

N_l the dimension of the degree-l spherical harmonics (N_l = 2 on the circle, 2l + 1 on S^2).
d = 2 is included (alpha = -1/2: Chebyshev, zonal = even in theta).

Funk-Hecke: int G(<x, y>) P_l(<y, e>) dsigma_d(y) = G_l P_l(<x, e>), with
G_l = int G(t) P_l(t) w(t) dt / int w. For G(t) = e^{beta t},

    G_l = Gamma(lambda + 1) (2/beta)^lambda I_{l+lambda}(beta)
        = Gamma(lambda + 1) (beta/2)^l sum_j (beta^2/4)^j / (j! Gamma(l + lambda + j + 1)),

the series being finite at beta = 0 and fine for beta < 0; and for G(t) = e^{beta t}/beta
(USA's potential, l >= 1) the coefficient G_l / beta = Gamma(lambda + 1)(1/2)(beta/2)^{l-1}
sum_j ..., which at beta = 0 is 1/d for l = 1 and 0 above.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import eval_jacobi, gammaln, ive, roots_jacobi

from dynamics.validation import check_real

SERIES_BETA = 1.0  # |beta| below which the power series is used (converges for all beta)
SERIES_TERMS = 30


def check_dimension(d: int) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 2:
        raise ValueError(
            f"the ambient dimension d must be an integer >= 2 (sphere S^(d-1)), got {d!r}"
        )
    return int(d)


def _check_degree(lmax: int) -> int:
    if isinstance(lmax, bool) or not isinstance(lmax, (int, np.integer)) or lmax < 1:
        raise ValueError(f"lmax must be an integer >= 1, got {lmax!r}")
    return int(lmax)


def harmonic_dimension(l: np.ndarray | int, d: int) -> np.ndarray:
    """N_l, the dimension of the degree-l spherical harmonics on S^{d-1}."""
    d = check_dimension(d)
    ell = np.asarray(l, dtype=float)
    if d == 2:
        return np.where(ell == 0, 1.0, 2.0)
    logs = gammaln(ell + d - 1) - gammaln(ell + 1) - gammaln(d - 1)  # log C(l + d - 2, l)
    return np.where(ell == 0, 1.0, (2 * ell + d - 2) / (ell + d - 2) * np.exp(logs))


def polynomials(lmax: int, d: int, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P_l(s), P_l'(s)) for l = 0..lmax, each of shape (lmax+1, *s.shape)."""
    d = check_dimension(d)
    alpha = (d - 3) / 2
    s = np.asarray(s, dtype=float)
    values, slopes = [], []
    for ell in range(_check_degree(lmax) + 1):
        at_pole = math.exp(gammaln(ell + alpha + 1) - gammaln(ell + 1) - gammaln(alpha + 1))
        values.append(eval_jacobi(ell, alpha, alpha, s) / at_pole)
        if ell == 0:
            slopes.append(np.zeros_like(s))
        else:
            inner = eval_jacobi(ell - 1, alpha + 1, alpha + 1, s)
            slopes.append((ell + 2 * alpha + 1) / 2 * inner / at_pole)
    return np.stack(values), np.stack(slopes)


def quadrature(nodes: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Jacobi nodes s_j and weights w_j for the law of s = <x, e> (weights sum to 1).

    Exact for polynomials of degree <= 2 nodes - 1.
    """
    d = check_dimension(d)
    alpha = (d - 3) / 2
    s, w = roots_jacobi(int(nodes), alpha, alpha)
    return s, w / w.sum()


def funk_hecke_exponential(beta: float, lmax: int, d: int, *, scaled: bool = True
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(G_l, G_l / beta) for G(t) = e^{beta t}, l = 0..lmax (module docstring).

    The second has 0 at l = 0 (a constant potential moves nothing). scaled=True multiplies
    both by e^{-|beta|}. Shapes (lmax+1,).
    """
    check_real("beta", beta)
    d = check_dimension(d)
    lmax = _check_degree(lmax)
    b = float(beta)
    lam = (d - 2) / 2
    ell = np.arange(lmax + 1)
    if abs(b) <= SERIES_BETA:
        j = np.arange(SERIES_TERMS)[:, None]
        if b == 0:
            terms = np.where(j == 0, np.exp(-gammaln(ell + lam + 1)), 0.0)
        else:
            terms = np.exp(j * math.log(b * b / 4) - gammaln(j + 1) - gammaln(ell + lam + j + 1))
        series = math.exp(gammaln(lam + 1)) * terms.sum(axis=0)
        mu = series * (b / 2) ** ell
        nu = np.where(ell == 0, 0.0, 0.5 * series * (b / 2) ** np.maximum(ell - 1, 0))
        if scaled:
            mu, nu = mu * math.exp(-abs(b)), nu * math.exp(-abs(b))
    else:
        sign = np.where(ell % 2 == 1, math.copysign(1.0, b), 1.0)
        mu = sign * math.exp(gammaln(lam + 1)) * (2 / abs(b)) ** lam * ive(ell + lam, abs(b))
        nu = np.where(ell == 0, 0.0, mu / b)
        if not scaled:
            with np.errstate(over="ignore"):
                mu, nu = mu * math.exp(abs(b)), nu * math.exp(abs(b))
    return mu, nu
