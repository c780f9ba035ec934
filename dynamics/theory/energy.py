"""Interaction energies of self-attention dynamics, in every normalisation in use.

SA and USA push tokens towards each other. This raises the interaction energy
sum_{i,j} e^{beta <x_i, x_j>}, which is largest when all tokens coincide. The papers
scale this sum in different ways. Every normalisation below has the form
E = a(beta) sum_{i,j} e^{beta G_ij} + b(beta), with G_ij = <x_i, x_j> (arXiv 2312.10794,
paper section 3 and appendices):

    "particles"       (1/(2 beta n^2)) sum e^{beta G_ij}         Remark 3.8; (3.5) at mu empirical
    "appendix-c"      (1/(2 beta)) sum (e^{beta G_ij} - 1)       App. C; beta = 0: (1/2) sum G_ij
    "metastable"      (1/(2 beta e^beta n^2)) sum e^{beta G_ij}  2410.06833 (USA e^{beta(G-1)}/n)
    "staircase"       (1/n^2) sum e^{beta (G_ij - 1)}            authors' staircase.py (2410.06833)
    "self-attention"  (1/(2 beta)) sum e^{beta <V x_i, x_j>}     section 3.4, V = Q^T K symmetric

The same conventions hold on the circle with G_ij = cos(theta_i - theta_j), which gives
(7.4). At beta = 0 the Kuramoto potential (7.3) is F = (K/(2 n^2)) sum cos(theta_i - theta_j).

Gradient structure (Remark 3.8, section 3.4). The Riemannian gradient on (S^{d-1})^n with
the product metric is grad_i E = 2 beta a P^perp_{x_i} sum_j e^{beta G_ij} V x_j. So

    USA = n grad E_particles,        SA_i = (n^2 / Z_i) grad_i E_particles,

with Z_i = sum_k e^{beta G_ik}. Along the flows this gives (paper section 2.6, derived):

    SA:  dE/dt = (1/n^2) sum_i Z_i |x_i'|^2,      USA: dE/dt = (1/n) sum_i |x_i'|^2.

Shapes: tokens (batch, n, d) or angles (batch, n); energies (batch,). beta is a real
scalar or an array (batch,). Everything runs on numpy, torch and JAX arrays.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from attention.array_api import Array, asarray_like, namespace, to_numpy
from dynamics.fields.base import per_member
from dynamics.validation import (
    check_floating,
    check_real,
    check_sphere_points,
    dtype_name,
    is_traced,
    log_float_max,
)

Convention = Literal["particles", "appendix-c", "metastable", "staircase", "self-attention"]
CONVENTIONS: tuple[str, ...] = (
    "particles",
    "appendix-c",
    "metastable",
    "staircase",
    "self-attention",
)
# Conventions whose energy diverges like 1/beta as beta -> 0; there beta = 0 is an error.
_SINGULAR_AT_ZERO = ("particles", "metastable", "self-attention")


# -- input checks -----------------------------------------------------------------------
def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _check_shape(name: str, x: Array, rank: int) -> None:
    if not hasattr(x, "shape") or len(x.shape) != rank:
        want = "(batch, n, d)" if rank == 3 else "(batch, n)"
        got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"{name} must be an array of shape {want}, got {got}")
    check_floating(name, x)
    if x.shape[1] < 1:
        raise ValueError(f"{name} needs at least one token, got shape {tuple(x.shape)}")


def _beta(beta: Any, like: Array, convention: str) -> Any:
    """beta as a float, or as an array (batch, 1, 1) on like's backend."""
    if hasattr(beta, "shape") and not isinstance(beta, np.ndarray) and not _concrete(beta):
        return per_member(beta, like, rank=3)  # a traced value: no checks
    check_real("beta", beta)
    values = np.asarray(to_numpy(beta) if hasattr(beta, "shape") else beta, dtype=float)
    if convention in _SINGULAR_AT_ZERO and np.any(values == 0):
        raise ValueError(
            f"the {convention!r} energy has a 1/beta prefactor and diverges at beta = 0; "
            "use convention='appendix-c' (finite limit (1/2) sum <x_i, x_j>), "
            "consensus_energy, or kuramoto_energy on the circle"
        )
    if values.ndim == 0:
        return float(values)
    if values.ndim != 1 or values.shape[0] not in (1, like.shape[0]):
        raise ValueError(
            f"beta must be a scalar or have shape (batch,) = ({like.shape[0]},), "
            f"got shape {values.shape}"
        )
    return per_member(values, like, rank=3)


def _concrete(a: Any) -> bool:
    try:
        to_numpy(a)
    except Exception:
        return False
    return True


def _check_v(v: Any, d: int, like: Array, convention: str) -> Array | None:
    if v is None:
        return None
    if convention != "self-attention":
        raise ValueError("V enters only the 'self-attention' energy (paper section 3.4)")
    m = np.asarray(to_numpy(v) if hasattr(v, "shape") else v, dtype=float)
    if m.shape != (d, d):
        raise ValueError(f"V must have shape ({d}, {d}), got {m.shape}")
    if not np.allclose(m, m.T, rtol=1e-12, atol=1e-12 * max(1.0, float(np.abs(m).max()))):
        raise ValueError(
            "the self-attention energy needs a symmetric V = Q^T K (paper section 3.4); "
            "for a non-symmetric bilinear form SA is not a gradient flow"
        )
    return asarray_like(m, like)


# -- the shared core: energies as functions of the Gram matrix --------------------------
def _log_prefactor(beta: Any, n: int, convention: str, xp) -> tuple[Any, Any]:
    """(sign, log|a|) with E = a sum_{ij} e^{beta G_ij}: the prefactor of the convention."""
    scalar = isinstance(beta, float)
    log, absolute = (math.log, abs) if scalar else (xp.log, xp.abs)
    if convention == "staircase":  # (1/n^2) e^{-beta}
        return 1.0, -beta - 2.0 * math.log(n)
    sign = math.copysign(1.0, beta) if scalar else xp.sign(beta)
    log_a = -log(2.0 * absolute(beta))
    if convention == "particles":  # 1/(2 beta n^2)
        return sign, log_a - 2.0 * math.log(n)
    if convention == "metastable":  # e^{-beta}/(2 beta n^2)
        return sign, log_a - beta - 2.0 * math.log(n)
    return sign, log_a  # self-attention: 1/(2 beta)


def _check_representable(log_size: Any, g: Array, beta: Any, convention: str) -> None:
    """OverflowError when an energy of size e^log_size is beyond g's dtype."""
    if is_traced(log_size):
        return
    top = float(np.max(to_numpy(log_size)))
    limit = log_float_max(g)
    if top > limit:
        raise OverflowError(
            f"the {convention!r} interaction energy is about e^{top:.6g} here (beta = "
            f"{_describe(beta)}), beyond the largest {dtype_name(g)} (e^{limit:.6g}); use "
            "convention='metastable' (e^-beta times 'particles') or 'staircase' "
            "((1/n^2) sum e^{beta (G_ij - 1)}), which stay finite for every beta > 0"
        )


def _describe(beta: Any) -> str:
    if isinstance(beta, float):
        return f"{beta:g}"
    return f"up to {float(np.max(np.abs(to_numpy(beta)))):g} in magnitude"


def _energy_from_gram(g: Array, beta: Any, convention: str) -> Array:
    """The energy of the module docstring for a Gram matrix g (batch, n, n).

    Log-sum-exp: with m = max_ij beta G_ij (per member), E = a e^m sum e^{beta G_ij - m}
    computed as sign(a) exp(log|a| + m + log sum ...), so no term overflows or
    underflows before the end; OverflowError when E itself is beyond the dtype.
    """
    xp = namespace(g)
    n = g.shape[-1]
    e = beta * g
    top = xp.max(e, axis=(-2, -1), keepdims=True)
    if convention == "appendix-c":
        # (1/(2 beta)) sum (e^{beta G} - 1); the expm1 form is exact as beta -> 0.
        _check_representable(top + 2.0 * math.log(n) - _log_two_beta(beta, xp), g, beta,
                             convention)
        if isinstance(beta, float):
            terms = g / 2 if beta == 0 else xp.expm1(beta * g) / (2 * beta)
        else:
            safe = xp.where(beta == 0, xp.ones_like(beta), beta)
            terms = xp.where(beta == 0, g / 2, xp.expm1(safe * g) / (2 * safe))
        return xp.sum(terms, axis=(-2, -1))
    sign, log_a = _log_prefactor(beta, n, convention, xp)
    total = xp.sum(xp.exp(e - top), axis=(-2, -1), keepdims=True)  # in [1, n^2]
    log_size = log_a + top + xp.log(total)
    _check_representable(log_size, g, beta, convention)
    return (sign * xp.exp(log_size))[..., 0, 0]


def _log_two_beta(beta: Any, xp) -> Any:
    """log(2 |beta|), 0 where beta = 0 (appendix-c's beta -> 0 limit has no 1/beta)."""
    if isinstance(beta, float):
        return math.log(2.0 * abs(beta)) if beta != 0 else 0.0
    b = xp.abs(beta)
    return xp.where(b == 0, xp.zeros_like(b), xp.log(xp.where(b == 0, xp.ones_like(b), 2 * b)))


def interaction_energy(
    x: Array, beta: Any, convention: Convention = "particles", *, V: Any = None
) -> Array:
    """The interaction energy of tokens x (batch, n, d) in a named normalisation; (batch,).

    See the module docstring for the conventions. beta = 0 is allowed where the energy
    has a limit ("appendix-c": (1/2) sum G_ij; "staircase": 1) and is an error where it
    diverges. V (d, d), symmetric, is used by the "self-attention" convention only.

    Large beta: the sums are taken in log-sum-exp form (shifted by max_ij beta G_ij), so
    nothing overflows or underflows on the way. The value returned is the energy itself,
    never a rescaled one: where it is beyond the dtype ("particles", "appendix-c" and
    "self-attention" grow like e^beta / beta: past beta ~ 700 in float64) an
    OverflowError names the limit. The scaled conventions are finite for every beta > 0
    on the sphere: "metastable" (e^-beta times "particles") lies in (0, 1/(2 beta)] and
    "staircase" in (0, 1], with the maxima at consensus.
    """
    _check_convention(convention)
    _check_shape("x", x, 3)
    check_sphere_points(x)
    b = _beta(beta, x, convention)
    xp = namespace(x)
    v = _check_v(V, x.shape[-1], x, convention)
    g = x @ xp.matrix_transpose(x) if v is None else (x @ v) @ xp.matrix_transpose(x)
    return _energy_from_gram(g, b, convention)


def circle_energy(theta: Array, beta: Any, convention: Convention = "particles") -> Array:
    """The energy of angles theta (batch, n), G_ij = cos(theta_i - theta_j); (batch,).

    The default convention is (7.4): E = (1/(2 beta n^2)) sum_{i,j} e^{beta cos(theta_i - theta_j)}.
    """
    _check_convention(convention)
    if convention == "self-attention":
        raise ValueError("the 'self-attention' energy needs tokens; use interaction_energy")
    _check_shape("theta", theta, 2)
    b = _beta(beta, theta, convention)
    xp = namespace(theta)
    g = xp.cos(theta[..., :, None] - theta[..., None, :])
    return _energy_from_gram(g, b, convention)


def kuramoto_energy(theta: Array, coupling: float = 1.0) -> Array:
    """Kuramoto potential (7.3): F = (K/(2 n^2)) sum_{i,j} cos(theta_i - theta_j) = (K/2) r^2.

    r = |(1/n) sum_j e^{i theta_j}| is the order parameter. For equal frequencies in the
    rotating frame, theta' = n grad F. theta (batch, n) -> (batch,).
    """
    _check_shape("theta", theta, 2)
    check_real("coupling", coupling)
    xp = namespace(theta)
    c, s = xp.mean(xp.cos(theta), axis=-1), xp.mean(xp.sin(theta), axis=-1)
    return (coupling / 2) * (c**2 + s**2)


def consensus_energy(x: Array) -> Array:
    """E_0(X) = (1/n) sum_{i,j} <x_i, x_j> = n |mean_i x_i|^2 (App. A, the beta = 0 energy).

    Its gradient flow is (4.1) up to a factor: x_i' = (1/2) grad_i E_0. Note that the
    beta -> 0 limit of the "appendix-c" energy is (1/2) sum G_ij = (n/2) E_0: the two
    differ by a constant factor, which rescales time but does not move critical points.
    x (batch, n, d) -> (batch,).
    """
    _check_shape("x", x, 3)
    xp = namespace(x)
    m = xp.mean(x, axis=-2)
    return x.shape[-2] * xp.sum(m * m, axis=-1)


# -- gradients and dissipation ------------------------------------------------------------
def _gradient_factor(beta: Any, n: int, convention: str, xp) -> tuple[Any, Any]:
    """(w, s) with grad_i E = w P^perp sum_j e^{beta G_ij - s} V x_j (w = 2 beta a e^s)."""
    s = abs(beta) if isinstance(beta, float) else xp.abs(beta)
    exp = math.exp if isinstance(beta, float) else xp.exp
    if convention == "particles":
        return exp(s) / n**2, s
    if convention == "metastable":
        return exp(s - beta) / n**2, s
    if convention == "staircase":
        return 2 * beta * exp(s - beta) / n**2, s
    return exp(s), s  # appendix-c and self-attention


def energy_gradient(
    x: Array, beta: Any, convention: Convention = "particles", *, V: Any = None
) -> Array:
    """Riemannian gradient of ``interaction_energy`` on (S^{d-1})^n, product metric.

    grad_i E = 2 beta a(beta) P^perp_{x_i} sum_j e^{beta <V x_i, x_j>} V x_j, shape
    (batch, n, d); finite at beta = 0 for every convention. USA(beta)(t, x) equals
    n * energy_gradient(x, beta) (Remark 3.8). Tokens must lie on the unit sphere.
    """
    _check_convention(convention)
    _check_shape("x", x, 3)
    xp = namespace(x)
    b = _beta(beta, x, "appendix-c")  # the gradient has a limit at beta = 0 for all conventions
    v = _check_v(V, x.shape[-1], x, convention)
    w, s = _gradient_factor(b, x.shape[-2], convention, xp)
    vx = x if v is None else x @ v
    kernel = xp.exp(b * (vx @ xp.matrix_transpose(x)) - s)
    drive = w * (kernel @ vx)
    return drive - xp.sum(x * drive, axis=-1, keepdims=True) * x


def energy_rate(x: Array, beta: Any, normalization: str = "softmax") -> Array:
    """dE/dt of the particle energy along SA or USA (Q = K = V = I); shape (batch,).

    "softmax" (SA):  (1/n^2) sum_i Z_i |x_i'|^2,  x_i' = (n^2 / Z_i) grad_i E
    "usa"    (USA):  (1/n)   sum_i |x_i'|^2,      x_i' = n grad_i E
    with Z_i = sum_k e^{beta G_ik}.
    Both are >= 0: E never decreases (paper (3.6) and Lemma 3.7 for particles).
    """
    if normalization not in ("softmax", "usa"):
        raise ValueError(f"normalization must be 'softmax' or 'usa', got {normalization!r}")
    grad = energy_gradient(x, beta)
    xp = namespace(x)
    n = x.shape[-2]
    if normalization == "usa":
        velocity = n * grad
        return xp.sum(velocity * velocity, axis=(-2, -1)) / n
    b = _beta(beta, x, "appendix-c")
    z = xp.sum(xp.exp(b * (x @ xp.matrix_transpose(x))), axis=-1)  # (batch, n)
    velocity = (n**2) * grad / z[..., None]
    return xp.sum(z * xp.sum(velocity * velocity, axis=-1), axis=-1) / n**2


def circle_energy_gradient(
    theta: Array, beta: Any, convention: Convention = "particles"
) -> Array:
    """dE/dtheta_i of ``circle_energy``, shape (batch, n).

    For (7.4): dE/dtheta_i = -(1/n^2) sum_j e^{beta cos(theta_i - theta_j)} sin(theta_i - theta_j),
    so the USA angle dynamics (7.1) is theta' = n grad E.
    """
    _check_convention(convention)
    if convention == "self-attention":
        raise ValueError("the 'self-attention' energy needs tokens; use energy_gradient")
    _check_shape("theta", theta, 2)
    xp = namespace(theta)
    b = _beta(beta, theta, "appendix-c")
    diff = theta[..., :, None] - theta[..., None, :]
    w, s = _gradient_factor(b, theta.shape[-1], convention, xp)
    terms = w * xp.exp(b * xp.cos(diff) - s) * xp.sin(diff)
    return -xp.sum(terms, axis=-1)


def hessian_kernel(zeta: Any, beta: float, d: int = 2) -> Any:
    """g(zeta) = e^{beta cos zeta} ((d - 1) cos zeta - beta sin^2 zeta) (App. B, Fig. 6).

    On T^n the Hessian of (7.4) is d^2E/dtheta_i dtheta_j = (1/n^2) g(theta_i - theta_j)
    for i != j, and d^2E/dtheta_i^2 = -(1/n^2) sum_{m != i} g(theta_i - theta_m) (d = 2).
    zeta: a scalar or array of any backend; returns the same kind.
    """
    check_real("beta", beta)
    if not (isinstance(d, int) and d >= 2):
        raise ValueError(f"d must be an integer >= 2, got {d!r}")
    if isinstance(zeta, (int, float)) or isinstance(zeta, np.ndarray) or np.isscalar(zeta):
        z = np.asarray(zeta, dtype=float)
        out = np.exp(beta * np.cos(z)) * ((d - 1) * np.cos(z) - beta * np.sin(z) ** 2)
        return float(out) if out.ndim == 0 else out
    xp = namespace(zeta)
    return xp.exp(beta * xp.cos(zeta)) * ((d - 1) * xp.cos(zeta) - beta * xp.sin(zeta) ** 2)
