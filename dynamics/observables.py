"""What one measures on a configuration of tokens (batch, n, d).

Clustering (functions of the Gram matrix G_ij = <x_i, x_j> only, hence invariant
under rotations; they carry the ``rotation_invariant`` mark, so the reduced solver may
evaluate them in the coordinates of the span of the initial tokens):

* ``gram``                      G, shape (batch, n, n)
* ``min_pairwise_inner``        min_{i != j} G_ij, shape (batch,), in O(n) memory per row block
* ``fraction_clustered_pairs``  mean over i != j of 1{G_ij >= 1 - delta}  (the Fig. 3 statistic)
* ``cluster_labels`` / ``cluster_count``  connected components of the graph
                                 {G_ij >= 1 - delta} (clusters joined through chains count once)
* ``indicator_rank``            rank 1{G > 1 - delta}, the authors' ``--cluster_sizes`` count
* ``gram_dimension``            #{eigenvalues of G > threshold}, the authors' ``--plotdim``
* ``pairwise_inner_products``   {G_ij}_{i != j} flattened, for the Fig. 1 histograms

Along a recorded trajectory: ``clustering_time`` (first output time at which all pairs,
or a given fraction of them, are within 1 - delta) and ``first_time``.

Not rotation invariant (no mark): ``min_inner_with`` (min_i <x_i, w>, the cone of
Lemma 6.4), and on the circle ``fourier_modes`` (1/n) sum_j e^{-ik theta_j} and the
Kuramoto ``order_parameter`` r e^{i psi} = (1/n) sum_j e^{i theta_j}.

Inputs are checked at this boundary (``dynamics.validation.check_sphere_points``): points
must be real floating arrays, finite, on the unit sphere to within the tolerance of their
dtype, and delta must lie in (0, 2); a bad input raises ValueError (TypeError for a
complex or integer dtype) naming it. ``gram`` and ``cluster_gap`` are the solvers'
per-step primitives and check only delta there.

Host-side (numpy) results: graph components (scipy) and histograms; every other
observable returns an array of the input's backend (and traces under ``jax.jit``).
``bind(fn, **params)`` turns an observable with parameters into a hook for
``simulate(..., observe=...)``; host-side hooks cannot run inside the traced JAX
adaptive path: record the states there and apply them afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from attention.array_api import Array, asarray_like, backend_of, is_torch, namespace, to_numpy
from dynamics.space import angles_to_points
from dynamics.validation import (
    check_delta,
    check_finite,
    check_floating,
    check_sphere_points,
    is_traced,
)

GRAM_BLOCK = 4096


def rotation_invariant(fn: Callable) -> Callable:
    """Mark an observable as a function of the Gram matrix only."""
    fn.rotation_invariant = True
    return fn


def is_rotation_invariant(fn: Callable) -> bool:
    """Whether ``fn`` carries the :func:`rotation_invariant` mark."""
    return getattr(fn, "rotation_invariant", False) is True


@rotation_invariant
def gram(x: Array) -> Array:
    """G_ij = <x_i, x_j>, shape (batch, n, n)."""
    xp = namespace(x)
    return x @ xp.matrix_transpose(x)


def _offdiag_extreme(x: Array, *, reduce: str) -> Array:
    xp = namespace(x)
    n = x.shape[-2]
    if n == 1:
        return xp.ones(x.shape[:-2], dtype=x.dtype)
    op = xp.min if reduce == "min" else xp.max
    fill = 2.0 if reduce == "min" else -2.0
    xt = xp.matrix_transpose(x)
    backend = backend_of(x)
    if n > GRAM_BLOCK and backend == "torch" and x.device.type == "cuda":
        try:  # the fused kernel: never the 4096 x n blocks (16 GiB each at n = 2^20)
            from attention.triton import pairwise_extreme
        except ImportError:
            pass
        else:
            return pairwise_extreme(x, largest=reduce == "max")
    if n <= GRAM_BLOCK and backend in ("numpy", "torch"):
        g = x @ xt  # a fresh array: its diagonal is overwritten in place
        if backend == "numpy":
            np.einsum("...ii->...i", g)[...] = fill
        else:
            g.diagonal(dim1=-2, dim2=-1).fill_(fill)
        return op(g, axis=(-2, -1))
    best = None
    for start in range(0, n, GRAM_BLOCK):
        stop = min(start + GRAM_BLOCK, n)
        g = x[..., start:stop, :] @ xt
        rows = xp.arange(start, stop)[:, None]
        cols = xp.arange(n)[None, :]
        diag = rows == cols
        if hasattr(g, "device") and not isinstance(g.device, str):
            diag = xp.asarray(diag, device=g.device)
        g = xp.where(diag, xp.full_like(g, fill), g)
        part = op(g, axis=(-2, -1))
        best = part if best is None else (xp.minimum if reduce == "min" else xp.maximum)(
            best, part
        )
    return best


@rotation_invariant
def min_pairwise_inner(x: Array) -> Array:
    """min_{i != j} <x_i, x_j>, shape (batch,) (1 when n = 1). Never stores more than
    4096 x n entries per batch element."""
    _check_points(x)
    return _offdiag_extreme(x, reduce="min")


def clustered_pair_fraction(g: Array, delta: float) -> Array:
    """The fraction of ordered pairs i != j with G_ij >= 1 - delta, from a Gram matrix
    g (batch, n, n); shape (batch,) (1 when n = 1)."""
    xp = namespace(g)
    n = g.shape[-1]
    if n == 1:
        return xp.ones(g.shape[:-2], dtype=g.dtype)
    if isinstance(g, np.ndarray):
        count = np.count_nonzero(g >= 1.0 - delta, axis=(-2, -1)).astype(g.dtype)
    else:
        count = xp.sum(xp.astype(g >= 1.0 - delta, g.dtype), axis=(-2, -1))
    return (count - n) / (n * (n - 1))


def fraction_clustered_pairs(delta: float) -> Callable[[Array], Array]:
    """Observable: the fraction of ordered pairs i != j with <x_i, x_j> >= 1 - delta."""
    delta = check_delta(delta)

    @rotation_invariant
    def fraction(x: Array) -> Array:
        _check_points(x)
        return clustered_pair_fraction(gram(x), delta)

    fraction.__name__ = f"fraction_clustered_pairs(delta={delta:g})"
    return fraction


def clustered(x: Array, delta: float) -> Array:
    """(batch,) booleans: all pairwise inner products >= 1 - delta."""
    delta = check_delta(delta)
    return min_pairwise_inner(x) >= 1.0 - delta


def cluster_gap(x: Array, delta: float) -> Array:
    """min_{i != j} <x_i, x_j> - (1 - delta), shape (batch,): >= 0 iff the member clustered.

    For n > 4096 it first computes the O(n d) bound min_i <x_i, x_1> - (1 - delta); the
    full O(n^2 d) minimum is taken only once some member passes that bound. The solvers'
    clustering event calls it every step: it checks delta, not the points.
    """
    delta = check_delta(delta)
    xp = namespace(x)
    n = x.shape[-2]
    if n > GRAM_BLOCK:
        bound = xp.min(xp.sum(x * x[..., :1, :], axis=-1), axis=-1) - (1.0 - delta)
        if not bool(xp.any(bound >= 0)):
            return bound
    return _offdiag_extreme(x, reduce="min") - (1.0 - delta)


# -- binding parameters: observables as simulate hooks -------------------------------


def bind(fn: Callable[..., Any], **params: Any) -> Callable[[Array], Any]:
    """``x -> fn(x, **params)``, keeping fn's ``rotation_invariant`` mark.

    Example: ``simulate(field, x0, times, observe=bind(cluster_count, delta=1e-3))``.
    """

    def observable(x: Array) -> Any:
        return fn(x, **params)

    if is_rotation_invariant(fn):
        rotation_invariant(observable)
    args = ", ".join(f"{k}={v!r}" for k, v in params.items())
    observable.__name__ = f"{getattr(fn, '__name__', 'observable')}({args})"
    return observable


def _check_points(x: Array, name: str = "x", rank: int = 3) -> None:
    """Points (batch, n, d) of the unit sphere: real, finite, |x_i| = 1 (module docstring)."""
    check_sphere_points(x, name=name, rank=rank)


# -- clusters as connected components -------------------------------------------------


def _components(adjacency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of a batch of graphs, adjacency (batch, n, n) booleans.

    One scipy call on the block-diagonal union of the graphs; labels are renumbered
    per member 0, 1, ... in order of first appearance along the tokens.
    """
    batch, n, _ = adjacency.shape
    b, i, j = np.nonzero(adjacency)
    graph = coo_matrix(
        (np.ones(b.size, dtype=np.int8), (b * n + i, b * n + j)), shape=(batch * n, batch * n)
    )
    _, flat = connected_components(graph, directed=False)
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    order = np.argsort(first)  # components in order of first appearance (member-major)
    member = first[order] // n
    local_sorted = np.arange(order.size) - np.searchsorted(member, member, side="left")
    local = np.empty_like(local_sorted)
    local[order] = local_sorted
    labels = local[inverse.ravel()].reshape(batch, n)
    counts = np.bincount(member, minlength=batch)
    return counts, labels


class Clusters(NamedTuple):
    """counts (batch,) number of clusters; labels (batch, n) cluster index of each token."""

    counts: np.ndarray
    labels: np.ndarray


@rotation_invariant
def cluster_labels(x: Array, delta: float) -> Clusters:
    """Clusters = connected components of the graph with edges <x_i, x_j> >= 1 - delta.

    Two tokens share a cluster when a chain of delta-close pairs joins them (the
    relation is made transitive). Host-side: returns numpy arrays (scipy.sparse.csgraph).
    """
    _check_points(x)
    delta = check_delta(delta)
    adjacency = to_numpy(gram(x) >= 1.0 - delta)
    return Clusters(*_components(np.asarray(adjacency, dtype=bool)))


@rotation_invariant
def cluster_count(x: Array, delta: float) -> np.ndarray:
    """Number of clusters (connected components of {<x_i, x_j> >= 1 - delta}), numpy (batch,)."""
    return cluster_labels(x, delta).counts


@rotation_invariant
def indicator_rank(x: Array, delta: float = 1e-4) -> Array:
    """rank of the 0/1 matrix 1{G_ij > 1 - delta}, shape (batch,) (the authors' statistic).

    The rotf phase-diagram code (``--cluster_sizes``) uses delta = 1e-4 and reports the
    median over the batch. For k well-separated tight clusters the matrix is, up to a
    permutation, block diagonal with all-ones blocks and its rank is k; for clusters
    joined only through chains it can differ from ``cluster_count``.
    """
    _check_points(x)
    delta = check_delta(delta)
    xp = namespace(x)
    indicator = xp.astype(gram(x) > 1.0 - delta, x.dtype)
    return xp.linalg.matrix_rank(indicator)


@rotation_invariant
def gram_dimension(x: Array, threshold: float = 1e-3) -> Array:
    """#{eigenvalues of G > threshold}, shape (batch,) (the authors' ``--plotdim`` statistic).

    The eigenvalues of G = X X^T are the squared singular values of X, so this is a
    numerical dimension of span{x_i}; the rotf code averages it over the batch.
    """
    _check_points(x)
    xp = namespace(x)
    eigenvalues = xp.linalg.eigvalsh(gram(x))
    return xp.count_nonzero(eigenvalues > threshold, axis=-1)


# -- times along a recorded trajectory -------------------------------------------------


def first_time(times: Any, condition: Any) -> np.ndarray:
    """First times[k] with condition[:, k] true, per member; NaN where never. numpy (batch,).

    times (T,), condition (batch, T) booleans (any backend).
    """
    t = np.asarray(times, dtype=float)
    cond = np.asarray(to_numpy(condition), dtype=bool)
    if t.ndim != 1 or cond.ndim != 2 or cond.shape[1] != t.size:
        raise ValueError(
            f"expected times (T,) and condition (batch, T), got {t.shape} and {cond.shape}"
        )
    hit = cond.any(axis=1)
    first = np.argmax(cond, axis=1)
    return np.where(hit, t[first], np.nan)


def clustering_time(
    times: Any, states: Array, delta: float, *, fraction: float = 1.0
) -> np.ndarray:
    """First output time at which a fraction >= ``fraction`` of the ordered pairs i != j has
    <x_i, x_j> >= 1 - delta (fraction = 1: all pairs, i.e. ``clustered``); NaN if never.

    times (T,); states (batch, T, n, d) as in ``Trajectory.values``, or angles (batch, T, n).
    The time is that of the first *recorded* state, so its resolution is the output grid;
    ``simulate(..., stop_when_clustered=delta)`` locates the crossing inside a step instead.
    Returns numpy (batch,).
    """
    delta = check_delta(delta)
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    if getattr(states, "ndim", None) == 3:
        states = angles_to_points(states)
    if getattr(states, "ndim", None) != 4:
        raise ValueError(
            "states must have shape (batch, T, n, d) (or (batch, T, n) for angles), "
            f"got {tuple(getattr(states, 'shape', ()))}"
        )
    _check_points(states, "states", rank=4)
    batch, steps, n, d = states.shape
    xp = namespace(states)
    flat = xp.reshape(states, (batch * steps, n, d))
    if fraction == 1.0:
        ok = clustered(flat, delta)
    else:
        ok = fraction_clustered_pairs(delta)(flat) >= fraction
    return first_time(times, xp.reshape(ok, (batch, steps)))


# -- histograms of inner products (Fig. 1) ----------------------------------------------


@rotation_invariant
def pairwise_inner_products(x: Array, *, include_diagonal: bool = False) -> Array:
    """{<x_i, x_j>} flattened per member: (batch, n(n-1)) over ordered pairs i != j, or
    (batch, n^2) with the diagonal (the authors' ALBERT notebook flattened the whole G)."""
    _check_points(x)
    xp = namespace(x)
    g = gram(x)
    batch, n = g.shape[0], g.shape[-1]
    flat = xp.reshape(g, (batch, n * n))
    if include_diagonal:
        return flat
    keep = np.flatnonzero(~np.eye(n, dtype=bool))
    return xp.take(flat, _index(keep, flat), axis=1)


def _index(indices: np.ndarray, like: Array) -> Array:
    """An integer index array on the backend and device of ``like``."""
    if is_torch(like):
        import torch

        return torch.as_tensor(indices, device=like.device)
    return namespace(like).asarray(indices)


class Histogram(NamedTuple):
    """A density histogram: ``density`` (bins,) integrates to 1 against ``edges`` (bins + 1,)."""

    density: np.ndarray
    edges: np.ndarray

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def freedman_diaconis_edges(values: Any) -> np.ndarray:
    """Bin edges of width at most h = 2 IQR N^{-1/3} (Freedman-Diaconis) over [min, max].

    The number of bins is ceil((max - min)/h), at least 1 (a single bin when IQR = 0);
    equal values get the unit interval around them. Same rule as numpy's ``bins="fd"``.
    """
    v = np.asarray(to_numpy(values), dtype=float).ravel()
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError("a histogram needs at least one value, all finite")
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    q75, q25 = np.percentile(v, [75, 25])
    width = 2.0 * (q75 - q25) * v.size ** (-1.0 / 3.0)
    bins = max(1, math.ceil((hi - lo) / width)) if width > 0 else 1
    return np.linspace(lo, hi, bins + 1)


def density_histogram(values: Any) -> Histogram:
    """Density-normalised histogram of 1-d values with Freedman-Diaconis bins."""
    v = np.asarray(to_numpy(values), dtype=float).ravel()
    edges = freedman_diaconis_edges(v)
    counts, _ = np.histogram(v, bins=edges)
    return Histogram(counts / (v.size * np.diff(edges)), edges)


def inner_product_histograms(
    x: Array, *, include_diagonal: bool = False, pooled: bool = False
) -> list[Histogram]:
    """Fig. 1: density histograms (FD bins) of {<x_i, x_j>}_{i != j}, one per member
    (or one over the whole batch when ``pooled``). Host-side (numpy).

    ``include_diagonal=True`` adds the n values <x_i, x_i> = 1, as the authors' notebook did
    (the caption says i != j; paper.md erratum 5).
    """
    values = to_numpy(pairwise_inner_products(x, include_diagonal=include_diagonal))
    if pooled:
        return [density_histogram(values)]
    return [density_histogram(row) for row in values]


# -- the cone of Lemma 6.4 ----------------------------------------------------------


def min_inner_with(x: Array, w: Any) -> Array:
    """min_i <x_i, w>, shape (batch,); w is (d,) or (batch, d). Not rotation invariant.

    If all tokens start in the open hemisphere {<x, w> > 0}, Lemma 6.4 says this is
    non-decreasing along SA/USA with V = I.
    """
    _check_points(x)
    xp = namespace(x)
    w = asarray_like(w, x)
    if w.ndim not in (1, 2) or w.shape[-1] != x.shape[-1]:
        d = x.shape[-1]
        raise ValueError(f"w must have shape ({d},) or (batch, {d}), got {tuple(w.shape)}")
    w = w[None, None, :] if w.ndim == 1 else w[:, None, :]
    return xp.min(xp.sum(x * w, axis=-1), axis=-1)


# -- the circle: Fourier modes and the Kuramoto order parameter -------------------------


def _circle_angles(x: Array) -> Array:
    xp = namespace(x)
    if getattr(x, "ndim", None) == 2:
        check_floating("x", x)
        if not is_traced(x):
            check_finite("x", x)
        return x
    if getattr(x, "ndim", None) == 3 and x.shape[-1] == 2:
        _check_points(x)
        return xp.atan2(x[..., 1], x[..., 0])
    raise ValueError(
        f"expected angles (batch, n) or points of the circle (batch, n, 2), got {tuple(x.shape)}"
    )


def fourier_modes(x: Array, k: int | Any) -> Array:
    """Fourier coefficients of the empirical measure, hat mu(k) = (1/n) sum_j e^{-i k theta_j}.

    x: angles (batch, n) or points (batch, n, 2). k: an integer (result (batch,)) or a
    sequence of integers (result (batch, len(k))). Complex, on x's backend. |hat mu(k)| = 1
    iff k theta_j is the same angle for every j; a k-fold symmetric configuration has
    hat mu(m) = 0 for 0 < m < k.
    """
    theta = _circle_angles(x)
    xp = namespace(theta)
    scalar_k = np.ndim(k) == 0
    ks = np.atleast_1d(np.asarray(k))
    if ks.dtype.kind not in "iu":
        raise TypeError(f"Fourier modes k must be integers, got {k!r}")
    phase = theta[..., None] * asarray_like(ks.astype(float), theta)
    modes = xp.mean(xp.cos(phase), axis=-2) - 1j * xp.mean(xp.sin(phase), axis=-2)
    return modes[..., 0] if scalar_k else modes


def order_parameter(x: Array) -> Array:
    """Kuramoto order parameter r e^{i psi} = (1/n) sum_j e^{i theta_j}, complex (batch,).

    x: angles (batch, n) or points (batch, n, 2). r = 1 iff all angles coincide; it is the
    complex conjugate of ``fourier_modes(x, 1)``.
    """
    theta = _circle_angles(x)
    xp = namespace(theta)
    return xp.mean(xp.cos(theta), axis=-1) + 1j * xp.mean(xp.sin(theta), axis=-1)
