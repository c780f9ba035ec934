"""Angle-form fields on the circle: reduction of SA/USA (paper (7.1), §11 item 7), the
gradient structure (7.4), Kuramoto at beta = 0 (7.2) and phase locking (7.5)."""

import math

import numpy as np
import pytest

from attention.array_api import from_numpy, to_numpy
from dynamics import SelfAttention, angles_to_points, points_to_angles, simulate
from dynamics.fields.circle import CircleAttention, CircleSA, CircleUSA, Kuramoto


def random_angles(rng, batch, n):
    return rng.uniform(-math.pi, math.pi, (batch, n))


def angle_distance(a, b):
    """Distance on the circle between angles (any unwrapping)."""
    return np.abs(np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b)))))


def energy(theta, beta):
    """E_beta(theta) = (1/(2 beta n^2)) sum_ij e^{beta cos(theta_i - theta_j)}  (paper (7.4))."""
    n = theta.shape[-1]
    diff = theta[..., :, None] - theta[..., None, :]
    return np.sum(np.exp(beta * np.cos(diff)), axis=(-2, -1)) / (2 * beta * n**2)


def causal_circle_reference(theta, beta):
    """2411.04990's circle form: phi_k' = (1/Z_k) sum_{j<k} h(phi_j - phi_k),
    h(x) = e^{beta(cos x - 1)} sin x, Z_k = sum_{j<=k} e^{beta(cos(phi_k - phi_j) - 1)}."""
    out = np.zeros_like(theta)
    for k in range(theta.shape[-1]):
        diff = theta[..., : k + 1] - theta[..., k : k + 1]
        w = np.exp(beta * (np.cos(diff) - 1))
        out[..., k] = np.sum(w * np.sin(diff), axis=-1) / np.sum(w, axis=-1)
    return out


@pytest.mark.parametrize(
    ("normalization", "causal"),
    [("softmax", False), ("usa", False), ("softmax", True), ("usa", True)],
)
def test_angle_flow_matches_cartesian_flow(rng, normalization, causal):
    """Paper §11 item 7: the Cartesian flow on S^1 and the angle ODE agree to 1e-8 at t = 5
    (RK4; h = 1e-2 keeps both truncation errors near 1e-10 at beta = 1, n = 6)."""
    theta0 = random_angles(rng, 2, 6)
    beta = 1.0
    times = [0.0, 5.0]
    angles = simulate(CircleAttention(beta, normalization, causal), theta0, times,
                      method="rk4", dt=1e-2).final
    cartesian = SelfAttention(beta, normalization=normalization, causal=causal)
    points = simulate(cartesian, angles_to_points(theta0), times, method="rk4", dt=1e-2,
                      reduce=False).final
    assert np.max(angle_distance(angles, points_to_angles(points))) < 1e-8
    # the tokens moved: the test compares two non-trivial flows
    assert np.max(angle_distance(angles, theta0)) > 0.1


def test_angle_field_is_formula_7_1(rng):
    """theta_dot_i = (1/Z_i) sum_j e^{beta cos(theta_i - theta_j)} sin(theta_j - theta_i) (SA) and
    the same with Z_i = n (USA), written out pairwise."""
    theta = random_angles(rng, 3, 7)
    beta = 2.3
    diff = theta[:, None, :] - theta[:, :, None]  # theta_j - theta_i
    w = np.exp(beta * np.cos(diff))
    sa = np.sum(w * np.sin(diff), axis=-1) / np.sum(w, axis=-1)
    usa = np.mean(w * np.sin(diff), axis=-1)
    assert np.allclose(CircleSA(beta)(0.0, theta), sa, atol=1e-13)
    assert np.allclose(CircleUSA(beta)(0.0, theta), usa, atol=1e-13)
    shifted = CircleAttention(beta, "usa-shifted")(0.0, theta)
    assert np.allclose(shifted, math.exp(-beta) * usa, atol=1e-13)


def test_causal_angle_field_is_2411_04990_form(rng):
    theta = random_angles(rng, 2, 8)
    beta = 3.0
    got = CircleSA(beta, causal=True)(0.0, theta)
    assert np.allclose(got, causal_circle_reference(theta, beta), atol=1e-13)
    assert np.all(got[:, 0] == 0.0)  # the first token is a fixed point


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_usa_is_n_times_energy_gradient(rng, beta):
    """(7.4): theta_dot = n grad E_beta, checked by central finite differences."""
    theta = random_angles(rng, 1, 5)[0]
    n, h = theta.size, 1e-5
    grad = np.empty(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = h
        grad[i] = (energy(theta + e, beta) - energy(theta - e, beta)) / (2 * h)
    field = CircleUSA(beta)(0.0, theta[None])[0]
    assert np.allclose(field, n * grad, atol=1e-8)


@pytest.mark.parametrize("normalization", ["softmax", "usa"])
def test_beta_zero_is_kuramoto(rng, normalization):
    """(7.2): at beta = 0, SA and USA are Kuramoto with K = 1 and omega = 0; the default sin
    coupling (order parameter, O(n)) equals the pairwise sum with h = sin."""
    theta = random_angles(rng, 3, 9)
    kuramoto = Kuramoto(omega=0.0, coupling=1.0)(0.0, theta)
    pairwise = Kuramoto(omega=0.0, coupling=1.0, h=np.sin)(0.0, theta)
    attention = CircleAttention(0.0, normalization)(0.0, theta)
    assert np.allclose(kuramoto, pairwise, atol=1e-14)
    assert np.allclose(attention, kuramoto, atol=1e-14)
    assert np.max(np.abs(kuramoto)) > 1e-2


def test_usa_is_generalised_kuramoto_with_h_beta(rng):
    """(7.1) as (7.5): USA is omega = 0, K = 1 and h(x) = e^{beta cos x} sin x."""
    theta = random_angles(rng, 2, 6)
    beta = 1.7
    field = Kuramoto(coupling=1.0, h=lambda u: np.exp(beta * np.cos(u)) * np.sin(u))
    assert np.allclose(field(0.0, theta), CircleUSA(beta)(0.0, theta), atol=1e-13)


def test_two_oscillators_phase_lock(rng):
    """(7.5) with n = 2: phi = theta_2 - theta_1 solves phi' = d_omega - K sin phi, so for
    |d_omega| < K it locks at sin phi* = d_omega / K (cos phi* > 0) and both rotate at the mean
    frequency."""
    omega = np.array([0.3, 1.1])
    coupling = 2.0
    theta0 = random_angles(rng, 1, 2)
    traj = simulate(Kuramoto(omega=omega, coupling=coupling), theta0, [0.0, 30.0, 31.0],
                    method="dopri5", rtol=1e-10, atol=1e-12)
    phi = traj.values[0, 1:, 1] - traj.values[0, 1:, 0]
    phi_star = math.asin((omega[1] - omega[0]) / coupling)
    assert np.max(angle_distance(phi, phi_star)) < 1e-8
    speed = (traj.values[0, 2] - traj.values[0, 1]) / 1.0
    assert np.allclose(speed, omega.mean(), atol=1e-8)


def test_frequencies_per_member_and_coupling_per_member(rng):
    theta = random_angles(rng, 3, 4)
    omega = rng.standard_normal((3, 4))
    coupling = np.array([0.5, 1.0, 2.0])
    got = Kuramoto(omega=omega, coupling=coupling).on(theta)(0.0, theta)
    for b in range(3):
        one = Kuramoto(omega=omega[b], coupling=float(coupling[b]))(0.0, theta[b : b + 1])
        assert np.allclose(got[b], one[0], atol=1e-14)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backends_agree_with_numpy(rng, backend):
    theta = random_angles(rng, 2, 5)
    other = from_numpy(theta, backend)
    for field in (CircleSA(2.0, causal=True), CircleUSA(0.7),
                  Kuramoto(omega=np.arange(5.0), coupling=1.3),
                  Kuramoto(coupling=0.4, h=lambda u: u * 0 + 1 - u**2 / 8)):
        want = field(0.0, theta)
        got = to_numpy(field.on(other)(0.0, other))
        assert np.allclose(got, want, atol=1e-12)


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="normalization"):
        CircleAttention(1.0, "sparsemax")
    with pytest.raises(TypeError, match="callable"):
        Kuramoto(h=3.0)
    theta = np.zeros((2, 3)) + 0.1
    with pytest.raises(ValueError, match="frequencies"):
        Kuramoto(omega=np.ones(4)).check(theta)
    with pytest.raises(ValueError, match=r"\(batch, n\)"):
        CircleSA(1.0).check(np.ones((2, 3, 2)))
    with pytest.raises(ValueError, match="batch"):
        CircleSA(np.ones(3)).check(theta)
