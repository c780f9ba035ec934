"""Observables: cluster counts, clustering times, histograms, circle modes, cone quantity."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from dynamics import SA, simulate
from dynamics.observables import (
    bind,
    cluster_count,
    cluster_labels,
    clustered,
    clustering_time,
    density_histogram,
    first_time,
    fourier_modes,
    fraction_clustered_pairs,
    freedman_diaconis_edges,
    gram,
    gram_dimension,
    indicator_rank,
    inner_product_histograms,
    min_inner_with,
    min_pairwise_inner,
    order_parameter,
    pairwise_inner_products,
)

CONVERT = {"numpy": np.asarray, "torch": torch.as_tensor, "jax": jnp.asarray}


def unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def tight_clusters(rng, sizes, d, delta):
    """Tokens in len(sizes) tight clusters around orthonormal centres, shuffled.

    Within a cluster every pair has <x_i, x_j> >= 1 - delta/10; across clusters the inner
    products are about 0. Returns (tokens (n, d), cluster index of each token)."""
    centres = ortho_group.rvs(d, random_state=rng)[: len(sizes)]
    owner = np.repeat(np.arange(len(sizes)), sizes)
    # perturbations of norm <= eps move inner products by at most ~2 eps
    eps = delta / 40
    noise = rng.standard_normal((owner.size, d))
    noise *= eps * rng.uniform(0, 1, (owner.size, 1)) / np.linalg.norm(noise, axis=1, keepdims=True)
    x = unit(centres[owner] + noise)
    perm = rng.permutation(owner.size)
    return x[perm], owner[perm]


def same_partition(a, b):
    return np.array_equal(a[:, None] == a[None, :], b[:, None] == b[None, :])


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_cluster_count_of_separated_tight_clusters(rng, backend):
    delta = 1e-3
    sizes = ([3, 1, 4, 2], [5, 5], [2, 2, 2, 2, 1, 1])  # 10 tokens each
    configs = [tight_clusters(rng, s, 8, delta) for s in sizes]
    x = np.stack([c[0] for c in configs])
    truth = [c[1] for c in configs]
    result = cluster_labels(CONVERT[backend](x), delta)
    np.testing.assert_array_equal(result.counts, [4, 2, 6])
    for labels, owner in zip(result.labels, truth, strict=True):
        assert same_partition(labels, owner)
        # labels are numbered in order of first appearance along the tokens
        _, first = np.unique(labels, return_index=True)
        assert np.all(np.diff(first) > 0) and labels[0] == 0
    np.testing.assert_array_equal(cluster_count(CONVERT[backend](x), delta), [4, 2, 6])
    # for disjoint all-ones blocks the authors' rank statistic is the same count
    np.testing.assert_array_equal(np.asarray(indicator_rank(CONVERT[backend](x), delta)), [4, 2, 6])


def test_chains_are_one_cluster_but_not_clustered(rng):
    """Points on a great circle spaced by phi with cos(phi) >= 1 - delta > cos(2 phi): one
    component (transitively connected), although the end points are not delta-close."""
    delta = 1e-3
    phi = 0.9 * math.acos(1 - delta)
    frame = ortho_group.rvs(5, random_state=rng)[:2]
    angles = np.array([0.0, phi, 2 * phi, 2.0, 2.0 + phi, 2 + 2 * phi])
    x = (np.cos(angles)[:, None] * frame[0] + np.sin(angles)[:, None] * frame[1])[None]
    x = x[:, rng.permutation(6)]
    assert cluster_count(x, delta)[0] == 2
    assert not clustered(x, delta)[0]
    # one chain alone: a single cluster, yet 1{G > 1 - delta} = tridiagonal ones has rank 3
    chain = x[:, np.abs(np.arccos(np.clip(x[0] @ frame[0], -1, 1))) < 1.0]
    assert chain.shape[1] == 3
    assert cluster_count(chain, delta)[0] == 1
    assert int(indicator_rank(chain, delta)[0]) == 3
    assert float(fraction_clustered_pairs(delta)(chain)[0]) == pytest.approx(4 / 6)


def test_gram_dimension_counts_the_span(rng):
    n, d, r = 7, 6, 3
    basis = ortho_group.rvs(d, random_state=rng)[:r]
    x = unit(rng.standard_normal((2, n, r)) @ basis)
    np.testing.assert_array_equal(np.asarray(gram_dimension(x)), [r, r])
    y = unit(rng.standard_normal((2, n, d)))
    np.testing.assert_array_equal(np.asarray(gram_dimension(y)), [d, d])


def _invariant_observables(delta):
    return [
        gram,
        min_pairwise_inner,
        fraction_clustered_pairs(delta),
        bind(cluster_count, delta=delta),
        bind(indicator_rank, delta=delta),
        gram_dimension,
        pairwise_inner_products,
    ]


def test_marked_observables_are_functions_of_the_gram_matrix(rng):
    """The reduced solver evaluates marked observables in span coordinates y = x U."""
    batch, n, r, d = 3, 5, 5, 9
    delta = 0.3
    y = unit(rng.standard_normal((batch, n, r)))
    embed = ortho_group.rvs(d, random_state=rng)[:r]  # orthonormal rows: an isometry R^r -> R^d
    x = y @ embed
    for fn in _invariant_observables(delta):
        assert getattr(fn, "rotation_invariant", False), fn.__name__
        np.testing.assert_allclose(np.asarray(fn(x)), np.asarray(fn(y)), atol=1e-12)
    for fn in (min_inner_with, fourier_modes, order_parameter, clustering_time, first_time):
        assert not getattr(fn, "rotation_invariant", False), fn.__name__
    # and indeed the circle modes are not invariant: a rotation by a multiplies them by e^{-ika}
    theta = rng.uniform(-np.pi, np.pi, (2, 6))
    a = rng.uniform(0.1, 1.0)
    factor = np.exp(-1j * a * np.array([1, 3]))
    rotated = fourier_modes(theta + a, [1, 3])
    np.testing.assert_allclose(rotated, fourier_modes(theta, [1, 3]) * factor)


def test_bound_observable_as_a_simulate_hook_on_the_reduced_path(rng):
    x0 = unit(rng.standard_normal((3, 4, 6)))
    times = [0.0, 1.0, 6.0]
    delta = 0.05
    field = SA(beta=1.0)
    hook = bind(cluster_count, delta=delta)
    hooked = simulate(field, x0, times, method="rk4", dt=0.1, observe=hook)
    assert hooked.reduced
    states = simulate(field, x0, times, method="rk4", dt=0.1).states
    expected = np.stack([cluster_count(states[:, k], delta) for k in range(3)], axis=1)
    np.testing.assert_array_equal(np.asarray(hooked.values), expected)


# -- clustering times ---------------------------------------------------------------------


def test_clustering_time_on_a_contracting_circle_trajectory(rng):
    """theta_j(t) = e^{-t} u_j: <x_i, x_j> = cos(e^{-t}(u_i - u_j)) >= 1 - delta iff
    e^{-t} |u_i - u_j| <= arccos(1 - delta)."""
    batch, n, delta = 4, 6, 1e-2
    u = rng.uniform(-1.0, 1.0, (batch, n))
    times = np.linspace(0.0, 4.0, 81)
    theta = np.exp(-times)[None, :, None] * u[:, None, :]
    gap = np.abs(u[:, :, None] - u[:, None, :])[:, ~np.eye(n, dtype=bool)]  # (batch, n(n-1))
    close = np.exp(-times)[None, :, None] * gap[:, None, :] <= math.acos(1 - delta)

    def expected(frac):
        ok = close.mean(axis=-1) >= frac
        return np.array([times[np.argmax(row)] if row.any() else np.nan for row in ok])

    assert np.isfinite(expected(1.0)).any()
    for states in (theta, np.stack([np.cos(theta), np.sin(theta)], axis=-1)):
        np.testing.assert_array_equal(clustering_time(times, states, delta), expected(1.0))
        np.testing.assert_array_equal(
            clustering_time(times, states, delta, fraction=0.5), expected(0.5)
        )
    # never clustered within the horizon: NaN
    short = clustering_time(times[:3], theta[:, :3] * 50, delta)
    assert np.all(np.isnan(short))


def test_first_time_and_errors():
    times = np.array([0.0, 0.5, 1.5])
    cond = np.array([[False, True, True], [False, False, False], [True, False, True]])
    np.testing.assert_array_equal(first_time(times, cond), [0.5, np.nan, 0.0])
    with pytest.raises(ValueError, match=r"condition \(batch, T\)"):
        first_time(times, cond[:, :2])
    states = np.ones((1, 3, 2, 2)) / math.sqrt(2)
    with pytest.raises(ValueError, match="fraction"):
        clustering_time(times, states, 1e-3, fraction=0.0)
    with pytest.raises(ValueError, match="delta"):
        clustering_time(times, states, 2.5)
    with pytest.raises(ValueError, match=r"\(batch, T, n, d\)"):
        clustering_time(times, states[0, 0], 1e-3)


# -- histograms -------------------------------------------------------------------------


def test_pairwise_values_with_and_without_diagonal(rng):
    n = 7
    x = unit(rng.standard_normal((2, n, 4)))
    off = np.asarray(pairwise_inner_products(x))
    full = np.asarray(pairwise_inner_products(x, include_diagonal=True))
    assert off.shape == (2, n * (n - 1)) and full.shape == (2, n * n)
    g = np.einsum("bid,bjd->bij", x, x)
    np.testing.assert_allclose(np.sort(off, axis=1), np.sort(g[:, ~np.eye(n, dtype=bool)], axis=1))
    # the diagonal adds exactly n values, all equal to 1
    with_ones = np.concatenate([off, np.ones((2, n))], axis=1)
    np.testing.assert_allclose(np.sort(full, axis=1), np.sort(with_ones, axis=1), atol=1e-12)
    for backend in ("torch", "jax"):
        np.testing.assert_allclose(np.asarray(pairwise_inner_products(CONVERT[backend](x))), off)


def test_histogram_density_and_freedman_diaconis_width(rng):
    x = unit(rng.standard_normal((3, 40, 5)))
    for include_diagonal in (False, True):
        hists = inner_product_histograms(x, include_diagonal=include_diagonal)
        values = np.asarray(pairwise_inner_products(x, include_diagonal=include_diagonal))
        for hist, v in zip(hists, values, strict=True):
            assert np.sum(hist.density * np.diff(hist.edges)) == pytest.approx(1.0, abs=1e-12)
            q75, q25 = np.percentile(v, [75, 25])
            h = 2 * (q75 - q25) * v.size ** (-1 / 3)
            bins = hist.density.size
            assert bins == math.ceil((v.max() - v.min()) / h)
            np.testing.assert_allclose(np.diff(hist.edges), (v.max() - v.min()) / bins)
            assert np.all(np.diff(hist.edges) <= h + 1e-15)
            # the same rule as numpy's independent implementation
            np.testing.assert_allclose(hist.edges, np.histogram_bin_edges(v, bins="fd"))
    pooled = inner_product_histograms(x, pooled=True)
    assert len(pooled) == 1
    assert np.sum(pooled[0].density * np.diff(pooled[0].edges)) == pytest.approx(1.0)


def test_histogram_degenerate_values():
    # IQR = 0: one bin; all values equal: the unit interval around them
    np.testing.assert_allclose(freedman_diaconis_edges([1.0] * 5 + [0.2]), [0.2, 1.0])
    hist = density_histogram([0.7, 0.7, 0.7])
    np.testing.assert_allclose(hist.edges, [0.2, 1.2])
    np.testing.assert_allclose(hist.density, [1.0])
    with pytest.raises(ValueError, match="finite"):
        density_histogram([0.1, np.nan])


# -- circle -----------------------------------------------------------------------------


def test_fourier_modes_on_known_configurations(rng):
    n = 12
    same = np.full((1, n), rng.uniform(-np.pi, np.pi))
    assert abs(complex(order_parameter(same)[0])) == pytest.approx(1.0)
    np.testing.assert_allclose(np.abs(fourier_modes(same, [1, 2, 5])), 1.0)
    for k in (2, 3, 4, 6):
        theta = rng.uniform(-np.pi, np.pi) + 2 * np.pi * np.arange(n)[None] / k
        modes = fourier_modes(theta, list(range(1, k + 1)))
        np.testing.assert_allclose(np.abs(modes[0, :-1]), 0.0, atol=1e-13)
        assert abs(modes[0, -1]) == pytest.approx(1.0)
        assert abs(order_parameter(theta)[0]) < 1e-13


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_fourier_modes_agree_with_direct_sums(rng, backend):
    theta = rng.uniform(-np.pi, np.pi, (3, 9))
    ks = [0, 1, 2, 7, -3]
    direct = np.exp(-1j * theta[:, :, None] * np.array(ks)).mean(axis=1)
    points = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    for x in (theta, points):
        got = np.asarray(fourier_modes(CONVERT[backend](x), ks))
        np.testing.assert_allclose(got, direct, atol=1e-13)
        single = np.asarray(fourier_modes(CONVERT[backend](x), 2))
        np.testing.assert_allclose(single, direct[:, 2], atol=1e-13)
        r_psi = np.asarray(order_parameter(CONVERT[backend](x)))
        np.testing.assert_allclose(r_psi, np.conj(direct[:, 1]), atol=1e-13)


def test_circle_observables_reject_bad_input(rng):
    with pytest.raises(ValueError, match=r"\(batch, n, 2\)"):
        fourier_modes(unit(rng.standard_normal((1, 4, 3))), 1)
    with pytest.raises(TypeError, match="integers"):
        fourier_modes(rng.uniform(size=(1, 4)), 1.5)


# -- cone quantity -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_min_inner_with(rng, backend):
    x = unit(rng.standard_normal((3, 5, 4)))
    w = unit(rng.standard_normal(4))
    ws = unit(rng.standard_normal((3, 4)))
    xb = CONVERT[backend](x)
    np.testing.assert_allclose(np.asarray(min_inner_with(xb, w)), np.min(x @ w, axis=1))
    np.testing.assert_allclose(
        np.asarray(min_inner_with(xb, ws)), np.min(np.einsum("bnd,bd->bn", x, ws), axis=1)
    )
    with pytest.raises(ValueError, match=r"w must have shape \(4,\)"):
        min_inner_with(xb, np.ones(3))


def test_cluster_observables_reject_bad_input(rng):
    x = unit(rng.standard_normal((2, 3, 3)))
    with pytest.raises(ValueError, match="delta"):
        cluster_count(x, 0.0)
    with pytest.raises(ValueError, match=r"\(batch, n, d\)"):
        cluster_count(x[0], 0.1)
