"""beta = 0: SA = USA = the Kuramoto mean field, its moment hierarchy and the Ott-Antonsen law.

At beta = 0 the velocity is v(theta) = int sin(phi - theta) rho(phi) dphi = Im(z_1 e^{-i theta})
with the moments z_k = int e^{i k theta} rho. Testing the continuity equation against
e^{i k theta} gives the hierarchy

    dz_k/dt = i k int e^{i k theta} v rho = (k/2) (z_1 z_{k-1} - conj(z_1) z_{k+1}).

So the first mode does NOT obey a closed equation in general: dz_1/dt = (z_1 - conj(z_1) z_2)/2
needs z_2. It closes on the Ott-Antonsen manifold z_k = z_1^k (the wrapped Cauchy / Poisson
kernel densities, invariant because the hierarchy maps z_1^k to k z_1^{k-1} dz_1/dt), where

    dz_1/dt = z_1 (1 - |z_1|^2) / 2,   so   r(t)^2 = 1 / (1 + (r0^{-2} - 1) e^{-t}),

a logistic law for r^2 = |z_1|^2, with the phase psi constant. Off that manifold the order
parameter follows no scalar ODE (Watanabe-Strogatz: three variables for identical oscillators).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dynamics.validation import check_real


def ott_antonsen_order(times: Any, r0: float) -> np.ndarray:
    """r(t) = (1 + (r0^{-2} - 1) e^{-t})^{-1/2} from a wrapped Cauchy start with 0 < r0 < 1."""
    check_real("times", times)
    if not (isinstance(r0, (int, float)) and 0 < r0 < 1):
        raise ValueError(f"r0 must lie in (0, 1), got {r0!r}")
    t = np.asarray(times, dtype=float)
    return 1.0 / np.sqrt(1.0 + (r0**-2 - 1.0) * np.exp(-t))


def moment_hierarchy(z: Any) -> np.ndarray:
    """dz_k/dt = (k/2)(z_1 z_{k-1} - conj(z_1) z_{k+1}) for k = 1..K-1, from z_0..z_K (..., K+1).

    Returns (..., K-1): the top moment needs z_{K+1}, which is not given.
    """
    arr = np.asarray(z, dtype=complex)
    if arr.shape[-1] < 3:
        raise ValueError(f"need the moments z_0..z_K with K >= 2, got {arr.shape[-1]} of them")
    k = np.arange(1, arr.shape[-1] - 1)
    z1 = arr[..., 1:2]
    return 0.5 * k * (z1 * arr[..., :-2] - np.conj(z1) * arr[..., 2:])
