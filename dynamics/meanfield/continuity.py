"""Spectral solver of the mean-field (continuity / Fokker-Planck) equation on the circle.

    d_t rho + d_theta( v[rho] rho ) = (1/kappa) d_theta^2 rho,
    USA: v = K_beta * rho,     SA: v = (K_beta * rho) / (h_beta * rho),

with h_beta = e^{beta cos}, K_beta = -sin e^{beta cos} = h_beta'/beta (paper §2.7; see
``kernel``). The right-hand side is the noise of ``Noisy(field, kappa)``: angles diffuse
with d theta = v dt + sqrt(2/kappa) dW, generator (1/kappa) d^2, so the diffusion enters
with a PLUS sign on the right (the Survey's ``d_t mu + kappa^{-1} Delta mu = ...`` has it on
the wrong side; paper.md §9 item 8). kappa = None is the noiseless continuity equation.

Discretisation (Fourier-Galerkin). rho is kept by c_0..c_K (``density``). Convolutions are
diagonal: (f * rho)_k = 2 pi f_k c_k. The flux v rho is formed on a padded grid of M points
and truncated back to |k| <= K: for USA, v and rho carry K modes, the product 2K, and
M > 3K (the 3/2 rule) removes all aliasing; SA divides by h * rho, which is not band-limited,
so it uses M >= 4K (factor 2) and the quotient is resolved as long as the density is.
Then d_t c_k = -i k (v rho)_k - (k^2/kappa) c_k. The k = 0 flux term is exactly zero, so the
mass 2 pi c_0 is conserved to round-off by construction.

Time stepping: adaptive Lawson-Dormand-Prince 5(4) (``lawson``), diffusion exact.

Positivity is not preserved by a spectral method: when the density concentrates into
clusters narrower than ~2 pi / K, the truncated series undershoots (Gibbs). Nothing is
clipped (that would break mass conservation and spectral accuracy); instead every output
records min rho on a grid of 4K points and the spectral tail (share of sum |c_k| in the top
third of the modes), and a :class:`PositivityWarning` (or an error, ``on_negative="raise"``)
says when min rho < -negative_tol: the solution is no longer resolved, so add modes or
stop earlier.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.fft import next_fast_len

from dynamics.meanfield.density import TWO_PI, CircleDensity, analyse, synthesize
from dynamics.meanfield.kernel import (
    DEFAULT_TOL,
    attention_coefficients,
    check_modes,
    modes_needed,
    velocity_coefficients,
)
from dynamics.meanfield.lawson import integrate_lawson
from dynamics.validation import check_real, check_times

NORMALIZATIONS = ("softmax", "usa")
USA_BETA_MAX = 700.0


class PositivityWarning(RuntimeWarning):
    """The spectral density went negative: the solution is no longer resolved."""


def check_normalization(normalization: str) -> str:
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization must be 'softmax' (SA) or 'usa' (USA), got {normalization!r}"
        )
    return normalization


def check_kappa(kappa: Any) -> float | None:
    """None (no noise) or a finite kappa > 0 (noise sqrt(2/kappa))."""
    if kappa is None:
        return None
    if isinstance(kappa, bool) or not isinstance(kappa, (int, float)):
        raise TypeError(f"kappa must be None or a real number > 0, got {kappa!r}")
    if not (math.isfinite(kappa) and kappa > 0):
        raise ValueError(f"kappa must be finite and > 0 (noise sqrt(2/kappa)), got {kappa!r}")
    return float(kappa)


def as_density(rho0: Any, modes: int, negative_tol: float = 1e-8) -> CircleDensity:
    """A CircleDensity with K = modes from a density, grid values or a callable.

    Grid values and callables are checked (finite, >= 0, mass 1) by ``CircleDensity``;
    a density given by coefficients must also be nonnegative: min rho on a fine grid
    below -negative_tol is a ValueError (a Fourier series can be negative).
    """
    if isinstance(rho0, CircleDensity):
        density = rho0.with_modes(modes)
    elif callable(rho0):
        density = CircleDensity.from_function(rho0, modes)
    else:
        density = CircleDensity.from_values(rho0, modes)
    size = max(8 * density.modes, 1024)
    values = density.values(size)
    low = int(np.argmin(values))
    if values[low] < -negative_tol:
        raise ValueError(
            f"the initial density must be nonnegative, but its Fourier series is "
            f"{values[low]:.3g} at theta = {TWO_PI * low / size:.4g} (with {density.modes} modes)"
        )
    return density


def default_modes(beta: float) -> int:
    """max(64, modes_needed(beta)): the kernel resolved, room for the solution to sharpen."""
    return max(64, modes_needed(beta))


@dataclass(frozen=True)
class CircleMeanField:
    """The right-hand side N(c) = -i k (v[rho] rho)_k of the Galerkin system, and L_k = -k^2/kappa.

    modes K, grid size M (padded), normalization 'softmax' or 'usa'.
    """

    beta: float
    normalization: str
    modes: int
    kappa: float | None = None
    grid_size: int | None = None

    def __post_init__(self) -> None:
        check_real("beta", self.beta)
        check_normalization(self.normalization)
        check_kappa(self.kappa)
        if self.normalization == "usa" and abs(self.beta) > USA_BETA_MAX:
            raise ValueError(
                f"USA velocities grow like e^|beta| and overflow for |beta| > {USA_BETA_MAX:g}; "
                "use normalization='softmax' or rescale time"
            )
        factor = 4 if self.normalization == "softmax" else 3
        size = next_fast_len(factor * self.modes + 2, real=True)
        if self.grid_size is not None:
            if self.grid_size <= 3 * self.modes:
                raise ValueError(
                    f"grid_size {self.grid_size} does not dealias {self.modes} modes: need > "
                    f"{3 * self.modes} (the 3/2 rule)"
                )
            size = int(self.grid_size)
        object.__setattr__(self, "grid_size", size)
        scaled = self.normalization == "softmax"
        object.__setattr__(self, "_k", np.arange(self.modes + 1))
        object.__setattr__(
            self, "_kernel", TWO_PI * velocity_coefficients(self.beta, self.modes, scaled=scaled)
        )
        object.__setattr__(
            self, "_attention",
            TWO_PI * attention_coefficients(self.beta, self.modes, scaled=True) if scaled else None,
        )

    @property
    def linear(self) -> np.ndarray | None:
        """Diagonal of L: -k^2 / kappa, or None without noise."""
        return None if self.kappa is None else -(self._k.astype(float) ** 2) / self.kappa

    def velocity(self, c: np.ndarray) -> np.ndarray:
        """v[rho] on the padded grid (M,)."""
        num = synthesize(self._kernel * c, self.grid_size)
        if self._attention is None:
            return num
        den = synthesize(self._attention * c, self.grid_size)
        if den.min() <= 0:
            raise RuntimeError(
                "the SA normaliser h_beta * rho became <= 0: the density lost positivity badly "
                "(under-resolved); use more modes or stop earlier"
            )
        return num / den

    def __call__(self, c: np.ndarray) -> np.ndarray:
        """N(c) = -i k (v rho)_k, k = 0..K."""
        flux = self.velocity(c) * synthesize(c, self.grid_size)
        return -1j * self._k * analyse(flux, self.modes)


@dataclass(frozen=True)
class CircleSolution:
    """The spectral solution at the output times.

    times (T,); coefficients (T, K+1) complex c_k(t); mass (T,) = 2 pi c_0;
    min_density (T,) min rho on a 4K grid; tail (T,) share of sum_k |c_k| in k > 2K/3;
    accepted_steps, rejected_steps; the equation's beta, normalization, kappa.
    """

    times: np.ndarray
    coefficients: np.ndarray
    mass: np.ndarray
    min_density: np.ndarray
    tail: np.ndarray
    accepted_steps: int
    rejected_steps: int
    beta: float
    normalization: str
    kappa: float | None

    @property
    def modes(self) -> int:
        return self.coefficients.shape[1] - 1

    def density(self, index: int) -> CircleDensity:
        """The density at times[index]."""
        c = self.coefficients[index].copy()
        c[0] = 1 / TWO_PI  # round-off only; mass is conserved exactly
        return CircleDensity(c)

    def values(self, size: int | None = None) -> np.ndarray:
        """rho(t, theta_j) on ``density.grid(size)``, shape (T, size); default 4K points."""
        return synthesize(self.coefficients, size or max(4 * self.modes, 256))

    def fourier_modes(self, k: Any) -> np.ndarray:
        """2 pi c_k(t), the analogue of ``dynamics.fourier_modes`` (1/n) sum e^{-ik theta_j}."""
        return TWO_PI * self.coefficients[:, np.asarray(k)]

    def order_parameter(self) -> np.ndarray:
        """int e^{i theta} rho(t) = r e^{i psi}, complex (T,)."""
        return TWO_PI * np.conj(self.coefficients[:, 1])


def spectral_tail(c: np.ndarray) -> np.ndarray:
    """sum_{k > 2K/3} |c_k| / sum_{k >= 1} |c_k| along the last axis (0 for the uniform density)."""
    kmax = c.shape[-1] - 1
    mags = np.abs(c[..., 1:])
    total = mags.sum(axis=-1)
    top = mags[..., (2 * kmax) // 3 :].sum(axis=-1)
    return np.divide(top, total, out=np.zeros_like(total), where=total > 0)


def solve_circle(
    rho0: CircleDensity | np.ndarray | Callable[[np.ndarray], Any],
    times: Any,
    beta: float,
    normalization: str = "softmax",
    *,
    modes: int | None = None,
    kappa: float | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-11,
    grid_size: int | None = None,
    on_negative: str = "warn",
    negative_tol: float = 1e-8,
    alias_tol: float = DEFAULT_TOL,
    max_steps: int = 100_000,
) -> CircleSolution:
    """Solve the mean-field equation on the circle (module docstring) at ``times``.

    rho0: a CircleDensity, grid values on theta_j = 2 pi j / M or a callable
    theta -> rho(theta); checked: finite, nonnegative (also its K-mode series), mass 1.
    modes: K (default max(64, modes_needed(beta), rho0.modes)); an AliasingWarning says
    how many are needed when K is too small for beta.
    kappa: None or the noise parameter (diffusion 1/kappa). on_negative: 'warn', 'raise'
    or 'ignore' when min rho < -negative_tol at an output.
    """
    check_real("beta", beta)
    beta = float(beta)
    check_normalization(normalization)
    kappa = check_kappa(kappa)
    times = check_times([0.0, times] if np.ndim(times) == 0 else times)
    if modes is None:
        given = rho0.modes if isinstance(rho0, CircleDensity) else 0
        modes = max(default_modes(beta), given)
    if isinstance(modes, bool) or not isinstance(modes, (int, np.integer)) or modes < 1:
        raise ValueError(f"modes must be an integer >= 1, got {modes!r}")
    if on_negative not in ("warn", "raise", "ignore"):
        raise ValueError(f"on_negative must be 'warn', 'raise' or 'ignore', got {on_negative!r}")
    check_real("rtol", rtol, positive=True)
    check_real("atol", atol, positive=True)
    check_real("negative_tol", negative_tol, nonnegative=True)
    density = as_density(rho0, int(modes), negative_tol)
    check_modes(beta, int(modes), alias_tol)
    field = CircleMeanField(beta, normalization, int(modes), kappa, grid_size)

    probe = 4 * field.modes + 4
    minima: list[float] = []
    warned = [False]

    def record(t: float, c: np.ndarray) -> None:
        low = float(synthesize(c, probe).min())
        minima.append(low)
        if low < -negative_tol and on_negative != "ignore":
            message = (
                f"the spectral density is negative at t = {t:.4g} (min rho = {low:.3g}): it has "
                f"concentrated beyond {field.modes} Fourier modes and is no longer resolved; "
                "increase modes or stop earlier"
            )
            if on_negative == "raise":
                raise RuntimeError(message)
            if not warned[0]:
                warnings.warn(message, PositivityWarning, stacklevel=4)
                warned[0] = True

    result = integrate_lawson(
        field, field.linear, density.coefficients, times, rtol=rtol, atol=atol,
        max_steps=max_steps, on_output=record,
    )
    coefficients = result.values
    return CircleSolution(
        times=times,
        coefficients=coefficients,
        mass=TWO_PI * coefficients[:, 0].real,
        min_density=np.asarray(minima),
        tail=spectral_tail(coefficients),
        accepted_steps=result.accepted,
        rejected_steps=result.rejected,
        beta=beta,
        normalization=normalization,
        kappa=kappa,
    )
