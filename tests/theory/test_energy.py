"""Interaction energies: conventions, limits, gradient structure, dissipation, backends."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from dynamics import SA, USA, angles_to_points, normalize, simulate
from dynamics.theory import (
    CONVENTIONS,
    circle_energy,
    circle_energy_gradient,
    consensus_energy,
    energy_gradient,
    energy_rate,
    hessian_kernel,
    interaction_energy,
    kuramoto_energy,
)


def sphere_points(rng, batch, n, d):
    return normalize(rng.standard_normal((batch, n, d)))


def symmetric(rng, d):
    a = rng.standard_normal((d, d)) / math.sqrt(d)
    return (a + a.T) / 2


def tangent(rng, x):
    v = rng.standard_normal(x.shape)
    return v - np.sum(x * v, axis=-1, keepdims=True) * x


def direct_sum(x, beta, V=None):
    """sum_{i,j} e^{beta <V x_i, x_j>} by explicit loops (independent of the module)."""
    batch, n, _ = x.shape
    V = np.eye(x.shape[-1]) if V is None else V
    out = np.zeros(batch)
    for b in range(batch):
        for i in range(n):
            for j in range(n):
                out[b] += math.exp(beta * float((V @ x[b, i]) @ x[b, j]))
    return out


def test_conventions_match_their_definitions(rng):
    x = sphere_points(rng, 3, 6, 4)
    beta, n = 1.7, 6
    s = direct_sum(x, beta)
    expected = {
        "particles": s / (2 * beta * n**2),
        "appendix-c": (s - n**2) / (2 * beta),
        "metastable": s / (2 * beta * math.exp(beta) * n**2),
        "staircase": s * math.exp(-beta) / n**2,
        "self-attention": s / (2 * beta),
    }
    for convention in CONVENTIONS:
        got = interaction_energy(x, beta, convention)
        np.testing.assert_allclose(got, expected[convention], rtol=1e-13)
    V = symmetric(rng, 4)
    np.testing.assert_allclose(
        interaction_energy(x, beta, "self-attention", V=V),
        direct_sum(x, beta, V) / (2 * beta),
        rtol=1e-13,
    )


def test_conventions_are_rescalings_of_one_another(rng):
    x = sphere_points(rng, 4, 9, 3)
    n = 9
    for beta in (0.3, 2.5, -1.2):
        e = interaction_energy(x, beta)
        np.testing.assert_allclose(
            interaction_energy(x, beta, "metastable"), math.exp(-beta) * e, rtol=1e-13
        )
        np.testing.assert_allclose(
            interaction_energy(x, beta, "staircase"), 2 * beta * math.exp(-beta) * e, rtol=1e-13
        )
        np.testing.assert_allclose(
            interaction_energy(x, beta, "appendix-c"), n**2 * e - n**2 / (2 * beta), rtol=1e-12
        )


def test_maximum_is_reached_at_consensus(rng):
    beta, n, d = 3.0, 8, 5
    point = normalize(rng.standard_normal((1, 1, d)))
    clustered = np.repeat(point, n, axis=1)
    top = math.exp(beta) / (2 * beta)
    np.testing.assert_allclose(interaction_energy(clustered, beta), top, rtol=1e-14)
    np.testing.assert_allclose(interaction_energy(clustered, beta, "staircase"), 1.0, rtol=1e-14)
    spread = sphere_points(rng, 50, n, d)
    assert np.all(interaction_energy(spread, beta) < top)
    # Large beta: the shifted sums do not overflow where the energy itself is finite.
    np.testing.assert_allclose(interaction_energy(clustered, 4000.0, "staircase"), 1.0)
    np.testing.assert_allclose(
        interaction_energy(clustered, 600.0), math.exp(600.0) / 1200.0, rtol=1e-12
    )


def test_appendix_c_is_e0_plus_beta_remainder(rng):
    x = sphere_points(rng, 3, 7, 3)
    n = 7
    g = x @ np.swapaxes(x, -1, -2)
    limit = interaction_energy(x, 0.0, "appendix-c")
    np.testing.assert_allclose(limit, g.sum(axis=(-2, -1)) / 2, rtol=1e-13)
    # E_0 of App. A is (1/n) sum G = n |mean|^2; the beta -> 0 limit is (n/2) E_0.
    np.testing.assert_allclose(consensus_energy(x), g.sum(axis=(-2, -1)) / n, rtol=1e-13)
    np.testing.assert_allclose(limit, n / 2 * consensus_energy(x), rtol=1e-13)
    r0 = (g**2).sum(axis=(-2, -1)) / 4  # R_beta -> (1/4) sum G^2
    for beta in (1e-2, 1e-3, 1e-4):
        remainder = (interaction_energy(x, beta, "appendix-c") - limit) / beta
        assert np.all(remainder > 0)
        np.testing.assert_allclose(remainder, r0, rtol=2 * beta)
    # continuity at beta = 0 from the array path (beta per batch member)
    betas = np.array([0.0, 1e-9, 0.5])
    got = interaction_energy(x, betas, "appendix-c")
    np.testing.assert_allclose(got[:2], limit[:2], rtol=1e-8)
    np.testing.assert_allclose(got[2], interaction_energy(x[2:], 0.5, "appendix-c")[0], rtol=1e-14)


def test_riemannian_gradient_matches_finite_differences(rng):
    x = sphere_points(rng, 2, 6, 4)
    v = tangent(rng, x)
    h = 1e-5
    V = symmetric(rng, 4)
    for convention, kwargs in [
        ("particles", {}),
        ("metastable", {}),
        ("staircase", {}),
        ("appendix-c", {}),
        ("self-attention", {"V": V}),
    ]:
        beta = 1.3
        plus = interaction_energy(normalize(x + h * v), beta, convention, **kwargs)
        minus = interaction_energy(normalize(x - h * v), beta, convention, **kwargs)
        numeric = (plus - minus) / (2 * h)
        grad = energy_gradient(x, beta, convention, **kwargs)
        np.testing.assert_allclose(np.sum(grad * x, axis=-1), 0.0, atol=1e-14)
        np.testing.assert_allclose(np.sum(grad * v, axis=(-2, -1)), numeric, rtol=1e-7)
        # autodiff: the projected Euclidean gradient is the Riemannian one
        xt = torch.from_numpy(x).requires_grad_(True)
        kw = {"V": torch.from_numpy(V)} if kwargs else {}
        interaction_energy(xt, beta, convention, **kw).sum().backward()
        euclid = xt.grad.numpy()
        projected = euclid - np.sum(euclid * x, axis=-1, keepdims=True) * x
        np.testing.assert_allclose(projected, grad, rtol=1e-12, atol=1e-14)


def test_usa_is_n_times_the_gradient_and_sa_is_the_attention_metric_gradient(rng):
    n, d = 7, 3
    x = sphere_points(rng, 2, n, d)
    for beta in (0.0, 0.8, 4.0):
        grad = energy_gradient(x, beta)
        np.testing.assert_allclose(USA(beta)(0.0, x), n * grad, rtol=1e-12, atol=1e-14)
        z = np.exp(beta * x @ np.swapaxes(x, -1, -2)).sum(axis=-1, keepdims=True)
        np.testing.assert_allclose(SA(beta)(0.0, x), n**2 * grad / z, rtol=1e-12, atol=1e-14)
    # section 3.4: with V = Q^T K symmetric, SA is the gradient of (1/(2 beta)) sum e^{beta <Vx,x>}
    # for the metric sum_i Z_i <a_i, b_i>, Z_i = sum_j e^{beta <V x_i, x_j>}.
    V = symmetric(rng, d)
    beta = 1.1
    grad = energy_gradient(x, beta, "self-attention", V=V)
    z = np.exp(beta * (x @ V) @ np.swapaxes(x, -1, -2)).sum(axis=-1, keepdims=True)
    field = SA(beta, QK=V, V=V)
    np.testing.assert_allclose(field(0.0, x), grad / z, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_dissipation_identity_along_the_flow(rng, normalization):
    beta, n, d, h = 1.5, 6, 3, 2e-3
    x0 = sphere_points(rng, 2, n, d)
    field = SA(beta) if normalization == "softmax" else USA(beta)
    traj = simulate(field, x0, np.array([0.0, h, 2 * h]), method="rk4", dt=h / 4)
    energies = interaction_energy(traj.values[:, [0, 2]].reshape(-1, n, d), beta).reshape(2, 2)
    numeric = (energies[:, 1] - energies[:, 0]) / (2 * h)
    exact = energy_rate(traj.values[:, 1], beta, normalization)
    assert np.all(exact > 0)
    np.testing.assert_allclose(numeric, exact, rtol=1e-5)


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_energy_is_monotone_along_attractive_and_repulsive_flows(rng, normalization):
    beta, n, d = 2.0, 8, 3
    x0 = sphere_points(rng, 2, n, d)
    times = np.linspace(0.0, 3.0, 61)
    make = SA if normalization == "softmax" else USA
    for V, sign in [(None, 1.0), (-np.eye(d), -1.0)]:
        field = make(beta) if V is None else make(beta, V=V)
        traj = simulate(field, x0, times, method="rk4", dt=0.01)
        e = interaction_energy(traj.values.reshape(-1, n, d), beta).reshape(2, -1)
        steps = sign * np.diff(e, axis=1)
        assert np.all(steps >= -1e-12)
        assert np.all(sign * (e[:, -1] - e[:, 0]) > 1e-3)  # the energy really moves


def test_backends_agree(rng):
    x = sphere_points(rng, 3, 5, 4)
    theta = rng.uniform(-np.pi, np.pi, size=(3, 5))
    betas = np.array([0.5, 1.0, 3.0])
    # torch for every convention; JAX (slow to dispatch eagerly) for the distinct code paths
    cases = [(torch.from_numpy, c) for c in ("particles", "appendix-c", "metastable", "staircase")]
    cases += [(jnp.asarray, "particles"), (jnp.asarray, "appendix-c")]
    for convert, convention in cases:
        for beta in (1.7, betas):
            np.testing.assert_allclose(
                np.asarray(interaction_energy(convert(x), beta, convention)),
                interaction_energy(x, beta, convention),
                rtol=1e-12,
            )
        np.testing.assert_allclose(
            np.asarray(circle_energy(convert(theta), 1.7, convention)),
            circle_energy(theta, 1.7, convention),
            rtol=1e-12,
        )
    for convert in (torch.from_numpy, jnp.asarray):
        np.testing.assert_allclose(
            np.asarray(energy_gradient(convert(x), 1.7)), energy_gradient(x, 1.7), rtol=1e-12
        )
        np.testing.assert_allclose(
            np.asarray(energy_rate(convert(x), 1.7)), energy_rate(x, 1.7), rtol=1e-12
        )


def test_circle_energy_and_kuramoto_potential(rng):
    n = 9
    theta = rng.uniform(-np.pi, np.pi, size=(4, n))
    points = angles_to_points(theta)
    for convention in ("particles", "appendix-c", "metastable", "staircase"):
        np.testing.assert_allclose(
            circle_energy(theta, 2.2, convention),
            interaction_energy(points, 2.2, convention),
            rtol=1e-13,
        )
    cos_sum = np.cos(theta[:, :, None] - theta[:, None, :]).sum(axis=(-2, -1))
    np.testing.assert_allclose(kuramoto_energy(theta, 3.0), 3.0 * cos_sum / (2 * n**2), rtol=1e-12)
    # (7.4) - 1/(2 beta) -> F of (7.3) with K = 1, at rate O(beta)
    for beta in (1e-2, 1e-3):
        gap = circle_energy(theta, beta) - 1 / (2 * beta) - kuramoto_energy(theta)
        assert np.all(np.abs(gap) < beta)


def test_circle_gradient_is_the_usa_angle_field(rng):
    n, beta = 7, 2.5
    theta = rng.uniform(-np.pi, np.pi, size=(2, n))
    x = angles_to_points(theta)
    v = USA(beta)(0.0, x)
    angular = -np.sin(theta) * v[..., 0] + np.cos(theta) * v[..., 1]
    np.testing.assert_allclose(n * circle_energy_gradient(theta, beta), angular, rtol=1e-12)
    h = 1e-6
    e = np.eye(n)
    plus = [circle_energy(theta + h * e[i], beta) for i in range(n)]
    minus = [circle_energy(theta - h * e[i], beta) for i in range(n)]
    numeric = (np.stack(plus, axis=-1) - np.stack(minus, axis=-1)) / (2 * h)
    np.testing.assert_allclose(circle_energy_gradient(theta, beta), numeric, rtol=1e-6, atol=1e-10)


def test_hessian_kernel_is_the_hessian_on_the_torus(rng):
    n, beta, h = 6, 1.8, 1e-6
    theta = rng.uniform(-np.pi, np.pi, size=(1, n))
    e = np.eye(n)
    plus = [circle_energy_gradient(theta + h * e[j], beta)[0] for j in range(n)]
    minus = [circle_energy_gradient(theta - h * e[j], beta)[0] for j in range(n)]
    hessian = (np.stack(plus, axis=-1) - np.stack(minus, axis=-1)) / (2 * h)
    kernel = hessian_kernel(theta[0, :, None] - theta[0, None, :], beta) / n**2
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_allclose(hessian[off], kernel[off], rtol=1e-6, atol=1e-9)
    diagonal = -(kernel * off).sum(axis=1)
    np.testing.assert_allclose(np.diag(hessian), diagonal, rtol=1e-6, atol=1e-9)
    # the kernel for S^{d-1}: same formula with (d - 1) cos, on any backend
    zeta = rng.uniform(-np.pi, np.pi, size=5)
    want = np.exp(beta * np.cos(zeta)) * (3 * np.cos(zeta) - beta * np.sin(zeta) ** 2)
    np.testing.assert_allclose(hessian_kernel(zeta, beta, d=4), want, rtol=1e-14)
    np.testing.assert_allclose(hessian_kernel(torch.from_numpy(zeta), beta, d=4), want, rtol=1e-14)


def test_bad_inputs_are_rejected(rng):
    x = sphere_points(rng, 2, 4, 3)
    with pytest.raises(ValueError, match="diverges at beta = 0"):
        interaction_energy(x, 0.0)
    with pytest.raises(ValueError, match="convention"):
        interaction_energy(x, 1.0, "unnormalised")
    with pytest.raises(ValueError, match=r"\(batch, n, d\)"):
        interaction_energy(x[0], 1.0)
    with pytest.raises(ValueError, match="symmetric"):
        interaction_energy(x, 1.0, "self-attention", V=rng.standard_normal((3, 3)) + np.eye(3) * 0)
    with pytest.raises(ValueError, match="V enters only"):
        interaction_energy(x, 1.0, V=np.eye(3))
    with pytest.raises(ValueError, match="batch"):
        interaction_energy(x, np.ones(3))
    with pytest.raises(TypeError, match="floating"):
        interaction_energy(np.ones((2, 4, 3), dtype=int), 1.0)
    with pytest.raises(ValueError, match="normalization"):
        energy_rate(x, 1.0, "sinkhorn")
