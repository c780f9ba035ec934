"""Probability densities on the circle, stored by their Fourier coefficients.

A density rho on T = R / 2 pi Z (int rho = 1, rho >= 0) is kept as

    c_k = (1/2 pi) int rho(theta) e^{-i k theta} dtheta,   k = 0..K,   c_{-k} = conj(c_k),

so rho(theta) = sum_{|k|<=K} c_k e^{i k theta} and c_0 = 1/(2 pi) is the mass. The
coefficients match the empirical ones of ``dynamics.fourier_modes`` up to 2 pi:
(1/n) sum_j e^{-i k theta_j} <-> 2 pi c_k, and the Kuramoto order parameter
int e^{i theta} rho = 2 pi conj(c_1). Point values come from an inverse FFT on a uniform
grid theta_j = 2 pi j / M, the cumulative distribution from integrating the series term by
term, and samples (i.i.d. or quantiles) from inverting it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ive

from attention.array_api import rng as make_rng
from dynamics.validation import check_real

MASS_TOL = 1e-6
TWO_PI = 2 * math.pi


def _check_modes(modes: Any) -> int:
    if isinstance(modes, bool) or not isinstance(modes, (int, np.integer)) or modes < 1:
        raise ValueError(f"modes must be an integer >= 1, got {modes!r}")
    return int(modes)


def grid(size: int) -> np.ndarray:
    """The uniform grid theta_j = 2 pi j / size, j = 0..size-1."""
    return TWO_PI * np.arange(size) / size


def synthesize(coefficients: np.ndarray, size: int) -> np.ndarray:
    """Values sum_{|k|<=K} c_k e^{ik theta_j} on ``grid(size)``; c (..., K+1), size > 2K."""
    kmax = coefficients.shape[-1] - 1
    if size <= 2 * kmax:
        raise ValueError(f"a grid of {size} points cannot carry {kmax} modes (needs > {2 * kmax})")
    spectrum = np.zeros((*coefficients.shape[:-1], size // 2 + 1), dtype=complex)
    spectrum[..., : kmax + 1] = coefficients * size
    return np.fft.irfft(spectrum, n=size, axis=-1)


def analyse(values: np.ndarray, kmax: int) -> np.ndarray:
    """Coefficients c_0..c_kmax of grid values (..., M); exact for band-limited data, M > 2 kmax."""
    size = values.shape[-1]
    return (np.fft.rfft(values, axis=-1) / size)[..., : kmax + 1]


def check_density_values(values: Any, name: str = "rho0") -> np.ndarray:
    """Grid values of a probability density: real, finite, >= 0, integrating to 1."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be real density values, got dtype {arr.dtype}")
    arr = arr.astype(float)
    if arr.ndim != 1 or arr.size < 3:
        raise ValueError(
            f"{name} must be a 1-d array of density values on the uniform grid "
            f"theta_j = 2 pi j / M (M >= 3), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if arr.min() < 0:
        j = int(np.argmin(arr))
        raise ValueError(
            f"{name} must be a nonnegative density, got {arr[j]:.3g} at theta = "
            f"{TWO_PI * j / arr.size:.4g}"
        )
    mass = TWO_PI * float(arr.mean())
    if abs(mass - 1.0) > MASS_TOL:
        raise ValueError(
            f"{name} integrates to {mass:.8g} over the circle (rectangle rule on its grid), "
            f"expected 1: divide the values by {mass:.8g}"
        )
    return arr


@dataclass(frozen=True)
class CircleDensity:
    """A density on the circle by its coefficients c_0..c_K (module docstring); complex (K+1,)."""

    coefficients: np.ndarray

    def __post_init__(self) -> None:
        c = np.asarray(self.coefficients)
        if c.ndim != 1 or c.size < 2:
            raise ValueError(f"coefficients must be a 1-d array c_0..c_K, K >= 1, got {c.shape}")
        if c.dtype.kind not in "fiuc":
            raise TypeError(f"coefficients must be numeric, got dtype {c.dtype}")
        c = c.astype(complex)
        if not np.all(np.isfinite(c)):
            raise ValueError("coefficients contain NaN or infinite values")
        mass = TWO_PI * c[0]
        if abs(mass - 1.0) > MASS_TOL:
            raise ValueError(
                f"the density has mass 2 pi c_0 = {mass:.8g}, expected 1 (a probability density)"
            )
        object.__setattr__(self, "coefficients", c)

    @property
    def modes(self) -> int:
        """K, the highest Fourier mode kept."""
        return self.coefficients.size - 1

    @property
    def mass(self) -> float:
        return float(TWO_PI * self.coefficients[0].real)

    def values(self, size: int | None = None) -> np.ndarray:
        """rho on ``grid(size)`` (default 4 K, at least 256)."""
        return synthesize(self.coefficients, size or max(4 * self.modes, 256))

    def minimum(self, size: int | None = None) -> float:
        """min rho on a grid (4 K points by default): negative means Gibbs undershoot."""
        return float(self.values(size).min())

    def order_parameter(self) -> complex:
        """int e^{i theta} rho = r e^{i psi}."""
        return complex(TWO_PI * np.conj(self.coefficients[1]))

    def with_modes(self, modes: int) -> CircleDensity:
        """Truncated or zero-padded to K = modes."""
        modes = _check_modes(modes)
        c = np.zeros(modes + 1, dtype=complex)
        keep = min(modes, self.modes) + 1
        c[:keep] = self.coefficients[:keep]
        return CircleDensity(c)

    def cdf(self, theta: Any) -> np.ndarray:
        """G(theta) = int_0^theta rho for theta in [0, 2 pi] (any shape)."""
        t = np.asarray(theta, dtype=float)
        k = np.arange(1, self.modes + 1)
        c = self.coefficients[1:]
        phase = np.exp(1j * t[..., None] * k)
        series = 2.0 * np.real(np.sum(c * (phase - 1.0) / (1j * k), axis=-1))
        return self.coefficients[0].real * t + series

    def density_at(self, theta: Any) -> np.ndarray:
        """rho(theta) at arbitrary angles (any shape)."""
        t = np.asarray(theta, dtype=float)
        k = np.arange(1, self.modes + 1)
        series = 2.0 * np.real(np.sum(self.coefficients[1:] * np.exp(1j * t[..., None] * k), -1))
        return self.coefficients[0].real + series

    def quantile(self, u: Any, newton_steps: int = 3) -> np.ndarray:
        """G^{-1}(u) in [0, 2 pi) for u in [0, 1): interpolation on a fine grid, then Newton.

        Needs rho >= 0 (G monotone); raises if the density is negative somewhere.
        """
        size = max(16 * self.modes, 4096)
        if self.minimum(size) < -1e-12:
            raise ValueError("cannot sample a density that is negative somewhere")
        nodes = np.append(grid(size), TWO_PI)
        table = np.maximum.accumulate(self.cdf(nodes))
        theta = np.interp(np.asarray(u, dtype=float), table, nodes)
        for _ in range(newton_steps):
            slope = np.maximum(self.density_at(theta), 1e-12)
            theta = np.clip(theta - (self.cdf(theta) - u) / slope, 0.0, TWO_PI)
        return np.mod(theta, TWO_PI)

    def sample(self, seed: Any, batch: int, n: int, *, quantiles: bool = False) -> np.ndarray:
        """(batch, n) angles in [-pi, pi) distributed as rho.

        quantiles=False: i.i.d. by inverse transform (W1 to rho ~ n^{-1/2});
        quantiles=True: theta_i = G^{-1}((i - 1/2)/n) for every member (W1 <= pi/n ... O(1/n)).
        """
        for name, value in (("batch", batch), ("n", n)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if quantiles:
            u = np.broadcast_to((np.arange(n) + 0.5) / n, (batch, n))
        else:
            u = make_rng(seed).uniform(0.0, 1.0, (batch, n))
        return np.mod(self.quantile(u) + math.pi, TWO_PI) - math.pi

    # constructors ---------------------------------------------------------------------

    @classmethod
    def uniform(cls, modes: int) -> CircleDensity:
        """rho = 1/(2 pi)."""
        c = np.zeros(_check_modes(modes) + 1, dtype=complex)
        c[0] = 1 / TWO_PI
        return cls(c)

    @classmethod
    def from_values(cls, values: Any, modes: int | None = None) -> CircleDensity:
        """From values on theta_j = 2 pi j / M (checked: finite, >= 0, mass 1); K <= (M-1)//2."""
        arr = check_density_values(values)
        top = (arr.size - 1) // 2
        kmax = top if modes is None else min(_check_modes(modes), top)
        c = np.zeros((top if modes is None else _check_modes(modes)) + 1, dtype=complex)
        c[: kmax + 1] = analyse(arr, kmax)
        c[0] = 1 / TWO_PI  # the rectangle rule's mass, within MASS_TOL of 1, made exact
        return cls(c)

    @classmethod
    def from_function(cls, f: Callable[[np.ndarray], Any], modes: int,
                      size: int | None = None) -> CircleDensity:
        """From a callable rho(theta), sampled on a grid of ``size`` (default 8 K, >= 1024)."""
        if not callable(f):
            raise TypeError(f"expected a callable density theta -> rho(theta), got {f!r}")
        modes = _check_modes(modes)
        size = size or max(8 * modes, 1024)
        values = np.asarray(f(grid(size)))
        if values.shape != (size,):
            raise ValueError(
                f"the density function must map an array of {size} angles to {size} values, "
                f"got shape {values.shape}"
            )
        return cls.from_values(values, modes)

    @classmethod
    def von_mises(cls, concentration: float, mean: float = 0.0, *, modes: int) -> CircleDensity:
        """e^{kappa cos(theta - mu)} / (2 pi I_0(kappa)): c_k = I_k(kappa) e^{-ik mu}/(2 pi I_0)."""
        check_real("concentration", concentration, nonnegative=True)
        check_real("mean", mean)
        k = np.arange(_check_modes(modes) + 1)
        ratio = ive(k, concentration) / ive(0, concentration)
        return cls(ratio * np.exp(-1j * k * mean) / TWO_PI)

    @classmethod
    def wrapped_cauchy(cls, r: float, mean: float = 0.0, *, modes: int) -> CircleDensity:
        """(1/2 pi) (1 - r^2) / (1 - 2 r cos(theta - mu) + r^2): c_k = r^k e^{-ik mu} / (2 pi).

        The Ott-Antonsen (Poisson kernel) family, 0 <= r < 1.
        """
        check_real("mean", mean)
        if not (isinstance(r, (int, float)) and 0 <= r < 1):
            raise ValueError(f"the wrapped Cauchy parameter r must lie in [0, 1), got {r!r}")
        k = np.arange(_check_modes(modes) + 1)
        return cls(float(r) ** k * np.exp(-1j * k * mean) / TWO_PI)

    @classmethod
    def perturbed_uniform(cls, amplitude: float, modes: int, *, seed: Any = 0,
                          excited: int | None = None) -> CircleDensity:
        """(1/2 pi)(1 + amplitude sum_{k=1}^{excited} cos(k theta + phi_k)), random phases phi_k.

        excited defaults to ``modes``; |amplitude| * excited < 1 keeps it positive.
        """
        check_real("amplitude", amplitude)
        modes = _check_modes(modes)
        excited = modes if excited is None else min(_check_modes(excited), modes)
        if abs(amplitude) * excited >= 1:
            raise ValueError(
                f"amplitude {amplitude!r} times {excited} excited modes must be < 1 in absolute "
                "value (the density would not be positive)"
            )
        phases = make_rng(seed).uniform(0, TWO_PI, excited)
        c = np.zeros(modes + 1, dtype=complex)
        c[0] = 1.0
        c[1 : excited + 1] = 0.5 * amplitude * np.exp(1j * phases)
        return cls(c / TWO_PI)
