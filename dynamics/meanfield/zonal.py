"""Mean field on S^{d-1} for zonal (axially symmetric) densities, through Gegenbauer moments.

If mu(0) is invariant under the rotations fixing a pole e, so is mu(t) (SA and USA commute
with rotations), so mu(t) is described by the law of s = <x, e>, or by the moments

    a_l(t) = int P_l(<x, e>) dmu_t(x),   l = 0..L,   a_0 = 1,

with P_l the Gegenbauer polynomials normalised by P_l(1) = 1 (``gegenbauer``); the density
w.r.t. the uniform measure is f(s) = sum_l N_l a_l P_l(s). By Funk-Hecke the two
convolutions are zonal and diagonal:

    Z(s) = int e^{beta <x,y>} dmu(y) = sum_l N_l a_l G_l P_l(s),
    Phi(s) = int e^{beta <x,y>}/beta dmu(y) = sum_l N_l a_l (G_l/beta) P_l(s) + const,

and both fields are gradients of zonal functions: X = A(s) (e - s x), with
A = Phi' (USA, Lemma 3.6) or A = Phi'/Z (SA, (3.7)). Testing the continuity equation with
P_m(<x, e>) (grad P_m = P_m'(s)(e - s x), |e - s x|^2 = 1 - s^2) gives the closed system

    da_m/dt = int (1 - s^2) P_m'(s) A(s) f(s) dsigma(s) - (m (m + d - 2)/kappa) a_m,

the last term for noise sqrt(2/kappa) (Delta P_m = -m(m+d-2) P_m). Exactness: this weak form
is exact for both SA and USA; nothing is lost by symmetry. For USA the integrand is a
polynomial of degree 3L, so Gauss-Jacobi quadrature with ceil((3L+2)/2) nodes evaluates the
Galerkin truncation exactly (dealiased). SA's 1/Z is not a polynomial: the quotient is taken
pointwise at 2L + 2 nodes, accurate to the decay of the moments but not exact (the same
caveat as on the circle). The truncation itself (L moments) is the only approximation, and
fails, like any spectral method, once the density concentrates at the poles (clusters):
min f is reported at each output. d = 2 is the circle restricted to even densities.

Checking against particles: i.i.d. particles are only zonal on average, and their
non-zonal fluctuations grow (the same instability as on the circle), so their moments agree
with the PDE only to ~e^{Lt} n^{-1/2}. On S^2 ``ring_points`` at the ``zonal_quantiles`` of
f gives particles whose zonal law stays exactly that of m latitudes (symmetry); they
converge to the PDE as m grows, deterministically.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from attention.array_api import rng as make_rng
from attention.array_api import to_numpy
from dynamics.meanfield.continuity import PositivityWarning, check_kappa, check_normalization
from dynamics.meanfield.gegenbauer import (
    check_dimension,
    funk_hecke_exponential,
    harmonic_dimension,
    polynomials,
    quadrature,
)
from dynamics.meanfield.kernel import DEFAULT_TOL, AliasingWarning
from dynamics.meanfield.lawson import integrate_lawson
from dynamics.validation import check_real, check_times


def zonal_modes_needed(beta: float, d: int, tol: float = DEFAULT_TOL) -> int:
    """The smallest L >= 1 with |G_l| <= tol G_0 for l > L (kernel e^{beta t} resolved)."""
    check_real("tol", tol, positive=True)
    lmax = math.ceil(2 * math.sqrt(2 * abs(beta) * math.log(1 / tol)) + 2 * math.log(1 / tol)) + 10
    mu, _ = funk_hecke_exponential(beta, lmax, d, scaled=True)
    above = np.nonzero(np.abs(mu) > tol * abs(mu[0]))[0]
    return max(1, int(above[-1]))


def zonal_moments(f: Callable[[np.ndarray], Any], lmax: int, d: int, *, nodes: int = 200
                  ) -> np.ndarray:
    """a_l = int f(<x, e>) P_l dsigma for a zonal density f(s) (w.r.t. the uniform measure).

    f is checked: finite and >= 0 at the quadrature nodes, integrating to 1. Shape (lmax+1,).
    """
    if not callable(f):
        raise TypeError(f"f must be a callable s -> density, got {f!r}")
    s, w = quadrature(max(nodes, lmax + 1), d)
    values = np.asarray(f(s), dtype=float)
    if values.shape != s.shape:
        raise ValueError(
            f"f must map {s.size} values of s to {s.size} densities, got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("the zonal density has NaN or infinite values")
    if values.min() < 0:
        raise ValueError(f"the zonal density must be nonnegative, got {values.min():.3g}")
    mass = float(w @ values)
    if abs(mass - 1) > 1e-6:
        raise ValueError(
            f"the zonal density integrates to {mass:.8g} against the uniform measure, expected "
            f"1: divide it by {mass:.8g}"
        )
    P, _ = polynomials(lmax, d, s)
    return P @ (w * values)


def check_moments(moments: Any) -> np.ndarray:
    a = np.asarray(moments)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"moments must be real, got dtype {a.dtype}")
    a = a.astype(float)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"moments must be a 1-d array a_0..a_L with L >= 1, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("moments contain NaN or infinite values")
    if abs(a[0] - 1) > 1e-6:
        raise ValueError(f"a_0 is the mass and must be 1 (a probability measure), got {a[0]:.8g}")
    if np.any(np.abs(a) > 1 + 1e-9):
        raise ValueError("moments of a probability measure satisfy |a_l| <= |P_l| <= 1")
    return a


def particle_moments(x: Any, lmax: int, pole: Any | None = None) -> np.ndarray:
    """a_l = (1/n) sum_i P_l(<x_i, e>) for points x (..., n, d); pole e defaults to e_d."""
    pts = np.asarray(to_numpy(x), dtype=float)
    d = pts.shape[-1]
    e = np.eye(d)[-1] if pole is None else np.asarray(pole, dtype=float)
    P, _ = polynomials(lmax, d, np.clip(pts @ e, -1.0, 1.0))
    return np.moveaxis(P.mean(axis=-1), 0, -1)


def sample_zonal(f: Callable[[np.ndarray], Any], seed: Any, batch: int, n: int, d: int,
                 bound: float) -> np.ndarray:
    """(batch, n, d) points i.i.d. with zonal density f(<x, e_d>) by rejection from uniform
    points (accept with probability f(s)/bound; bound >= max f)."""
    d = check_dimension(d)
    check_real("bound", bound, positive=True)
    gen = make_rng(seed)
    out = np.empty((batch * n, d))
    filled = 0
    while filled < batch * n:
        z = gen.standard_normal((2 * (batch * n - filled) + 16, d))
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        ratio = np.asarray(f(z[:, -1]), dtype=float) / bound
        if np.any(ratio > 1 + 1e-12):
            raise ValueError(f"bound {bound:g} is below max f = {bound * ratio.max():.6g}")
        keep = z[gen.uniform(size=ratio.size) < ratio][: batch * n - filled]
        out[filled : filled + len(keep)] = keep
        filled += len(keep)
    return out.reshape(batch, n, d)


def zonal_quantiles(f: Callable[[np.ndarray], Any], m: int, d: int, *, size: int = 1 << 14
                    ) -> np.ndarray:
    """s_j = G^{-1}((j - 1/2) / m), j = 1..m: the quantiles of s = <x, e> under the zonal
    density f(s) (w.r.t. the uniform measure), ascending, shape (m,).

    G is integrated in the polar angle phi (s = cos phi), where the law of phi has the
    bounded density ~ f(cos phi) sin^{d-2} phi (trapezoid rule on ``size`` intervals).
    """
    d = check_dimension(d)
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    if not callable(f):
        raise TypeError(f"f must be a callable s -> density, got {f!r}")
    phi = np.linspace(math.pi, 0.0, size + 1)  # s = cos phi ascending from -1 to 1
    values = np.asarray(f(np.cos(phi)), dtype=float)
    if values.shape != phi.shape or not np.all(np.isfinite(values)) or values.min() < 0:
        raise ValueError("f must map s to finite, nonnegative densities of the same shape")
    weight = values * np.sin(phi) ** (d - 2)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (weight[1:] + weight[:-1]))])
    if not cdf[-1] > 0:
        raise ValueError("the zonal density f vanishes everywhere")
    u = (np.arange(m) + 0.5) / m
    return np.cos(np.interp(u, cdf / cdf[-1], phi))


def ring_points(s: Any, p: int) -> np.ndarray:
    """Points on S^2 (pole e = e_3): p equally spaced points on each circle <x, e> = s_j.

    s (m,) in [-1, 1] -> (m p, 3). The rotations by 2 pi/p about e and the reflection
    x_2 -> -x_2 map the set to itself, and SA and USA commute with them, so the set stays a
    union of such p-gons at common latitudes s_j(t): its zonal law is exactly
    (1/m) sum_j delta_{s_j(t)}. Each p-gon acts like the whole circle up to the kernel's
    azimuthal Fourier modes >= p, |I_p(beta sin sin')| / I_0 <= (|beta|/2)^p / p!.
    """
    lat = np.asarray(s, dtype=float)
    if lat.ndim != 1 or not np.all(np.abs(lat) <= 1):
        raise ValueError(f"s must be a 1-d array of latitudes in [-1, 1], got shape {lat.shape}")
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1:
        raise ValueError(f"p must be an integer >= 1 points per ring, got {p!r}")
    psi = 2 * math.pi * np.arange(p) / p
    r = np.sqrt(1 - lat**2)[:, None]
    height = np.broadcast_to(lat[:, None], (lat.size, p))
    return np.stack([r * np.cos(psi), r * np.sin(psi), height], axis=-1).reshape(-1, 3)


@dataclass(frozen=True)
class ZonalMeanField:
    """d a / dt = N(a) - L a for the moments a_0..a_L on S^{d-1} (module docstring)."""

    beta: float
    d: int
    normalization: str
    lmax: int
    kappa: float | None = None

    def __post_init__(self) -> None:
        check_real("beta", self.beta)
        check_dimension(self.d)
        check_normalization(self.normalization)
        check_kappa(self.kappa)
        sa = self.normalization == "softmax"
        nodes = 2 * self.lmax + 2 if sa else math.ceil((3 * self.lmax + 2) / 2)
        s, w = quadrature(nodes, self.d)
        P, dP = polynomials(self.lmax, self.d, s)
        mu, nu = funk_hecke_exponential(self.beta, self.lmax, self.d, scaled=sa)
        dims = harmonic_dimension(np.arange(self.lmax + 1), self.d)
        object.__setattr__(self, "_s", s)
        object.__setattr__(self, "_P", P)
        object.__setattr__(self, "_density_rows", dims[:, None] * P)  # f = a @ rows
        object.__setattr__(self, "_potential_slope", (dims * nu)[:, None] * dP)
        object.__setattr__(self, "_normaliser", (dims * mu)[:, None] * P if sa else None)
        object.__setattr__(self, "_test", dP * (w * (1 - s * s)))

    @property
    def linear(self) -> np.ndarray | None:
        ell = np.arange(self.lmax + 1, dtype=float)
        return None if self.kappa is None else -ell * (ell + self.d - 2) / self.kappa

    def drift(self, a: np.ndarray) -> np.ndarray:
        """A(s) at the nodes: the field is A(s)(e - s x)."""
        slope = a @ self._potential_slope
        if self._normaliser is None:
            return slope
        z = a @ self._normaliser
        if z.min() <= 0:
            raise RuntimeError("the SA normaliser became <= 0: the zonal density is unresolved")
        return slope / z

    def __call__(self, a: np.ndarray) -> np.ndarray:
        f = a @ self._density_rows
        return self._test @ (f * self.drift(a))


@dataclass(frozen=True)
class ZonalSolution:
    """times (T,); moments (T, L+1); min_density (T,) min f on a 401-point s grid; d, beta."""

    times: np.ndarray
    moments: np.ndarray
    min_density: np.ndarray
    d: int
    beta: float
    normalization: str
    kappa: float | None
    accepted_steps: int
    rejected_steps: int

    def density(self, s: Any) -> np.ndarray:
        """f(t, s) = sum_l N_l a_l(t) P_l(s), shape (T, *s.shape)."""
        lmax = self.moments.shape[1] - 1
        P, _ = polynomials(lmax, self.d, np.asarray(s, dtype=float))
        dims = harmonic_dimension(np.arange(lmax + 1), self.d)
        return np.tensordot(self.moments * dims, P, axes=(1, 0))


def solve_zonal(
    moments: Any,
    times: Any,
    beta: float,
    d: int,
    normalization: str = "softmax",
    *,
    kappa: float | None = None,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    alias_tol: float = DEFAULT_TOL,
    max_steps: int = 100_000,
) -> ZonalSolution:
    """Evolve zonal moments a_0..a_L (module docstring) and report them at ``times``.

    moments: (L+1,) with a_0 = 1 (e.g. from ``zonal_moments``). Warns (AliasingWarning)
    when L < zonal_modes_needed(beta, d), and (PositivityWarning) when f < 0 at an output.
    """
    a0 = check_moments(moments)
    check_real("beta", beta)
    d = check_dimension(d)
    check_normalization(normalization)
    kappa = check_kappa(kappa)
    t = check_times([0.0, times] if np.ndim(times) == 0 else times)
    lmax = a0.size - 1
    probe_s = np.linspace(-1, 1, 401)
    probe, _ = polynomials(lmax, d, probe_s)
    rows = harmonic_dimension(np.arange(lmax + 1), d)[:, None] * probe
    start = a0 @ rows
    if start.min() < -1e-8:
        raise ValueError(
            f"the initial zonal density must be nonnegative, but sum_l N_l a_l P_l(s) = "
            f"{start.min():.3g} at s = {probe_s[int(np.argmin(start))]:.3f}"
        )
    needed = zonal_modes_needed(float(beta), d, alias_tol)
    if lmax < needed:
        warnings.warn(
            f"{lmax} Gegenbauer moments do not resolve e^(beta t) on S^{d - 1} at beta = "
            f"{beta:g}: |G_l|/G_0 > {alias_tol:g} up to l = {needed}; use at least {needed}",
            AliasingWarning, stacklevel=2,
        )
    field = ZonalMeanField(float(beta), d, normalization, lmax, kappa)
    minima: list[float] = []

    def record(time: float, a: np.ndarray) -> None:
        low = float((a @ rows).min())
        if low < -1e-8 and not any(m < -1e-8 for m in minima):
            warnings.warn(
                f"the zonal density is negative at t = {time:.4g} (min f = {low:.3g}): it has "
                f"concentrated beyond {lmax} moments; use more or stop earlier",
                PositivityWarning, stacklevel=4,
            )
        minima.append(low)

    result = integrate_lawson(field, field.linear, a0, t, rtol=rtol, atol=atol,
                              max_steps=max_steps, on_output=record)
    return ZonalSolution(t, result.values, np.asarray(minima), d, float(beta), normalization,
                         kappa, result.accepted, result.rejected)
