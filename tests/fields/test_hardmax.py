"""The hardmax limit (paper §2.9, (9.4)-(9.6), Example 9.3; Survey §7)."""

import numpy as np
import pytest

from attention.array_api import from_numpy, to_numpy
from dynamics import EUCLIDEAN, SA, PureSelfAttention, normalize, simulate
from dynamics.fields.hardmax import Hardmax
from dynamics.fields.rescaled import RescaledSelfAttention

Z1, Z2, Z3 = np.array([1.0, 1.0]), np.array([-1.0, 1.0]), np.array([0.0, 0.0])


def example_9_3():
    return np.stack([Z1, Z2, Z3])[None]


def score_gap(q, k):
    """Smallest gap between the best and second-best score of each row, (batch, n, n) scores."""
    s = np.sort(q @ np.swapaxes(k, -1, -2), axis=-1)
    return np.min(s[..., -1] - s[..., -2])


def generic_sphere_configuration(rng, n, d, Q, K, min_gap=0.05):
    """Random tokens whose argmax sets are single and separated by at least min_gap."""
    while True:
        x = normalize(rng.standard_normal((2, n, d)))
        if score_gap(x @ Q.T, x @ K.T) > min_gap:
            return x


def test_example_9_3_velocities():
    """z_1, z_2 attend to themselves only, so they are fixed. At z_3 = 0 every score ties:
    averaging over C_3 = {1, 2, 3} gives (z_1 + z_2 + z_3)/3 - z_3; without self-attention
    the average is the paper's (z_1 + z_2)/2 - z_3. Above z_3, C_3 = {1, 2}."""
    z = example_9_3()
    v = Hardmax(space=EUCLIDEAN)(0.0, z)[0]
    assert np.all(v[:2] == 0.0)
    assert np.allclose(v[2], (Z1 + Z2 + Z3) / 3 - Z3, atol=1e-15)
    no_self = Hardmax(space=EUCLIDEAN, exclude_self=True)(0.0, z)[0]
    assert np.allclose(no_self[2], (Z1 + Z2) / 2 - Z3, atol=1e-15)
    above = z.copy()
    above[0, 2] = (0.0, 0.4)
    v = Hardmax(space=EUCLIDEAN)(0.0, above)[0]
    assert np.allclose(v[2], (Z1 + Z2) / 2 - above[0, 2], atol=1e-15)
    assert np.all(v[:2] == 0.0)


def test_example_9_3_trajectory():
    """Euler: z_1, z_2 never move; z_3 climbs the axis with y_1 = 2h/3 (first step, three-way
    tie) and y_{k+1} = y_k + h (1 - y_k) after, i.e. y_k = 1 - (1 - 2h/3)(1 - h)^{k-1}."""
    h, steps = 0.01, 300
    traj = simulate(Hardmax(space=EUCLIDEAN), example_9_3(), [0.0, steps * h], method="euler",
                    dt=h)
    z = traj.final[0]
    assert np.all(z[:2] == example_9_3()[0, :2])
    expected = 1 - (1 - 2 * h / 3) * (1 - h) ** (steps - 1)
    assert z[2, 0] == 0.0
    assert abs(z[2, 1] - expected) < 1e-12
    # and within O(h) of the Filippov solution z_3(t) = (0, 1 - e^{-t})
    assert abs(z[2, 1] - (1 - np.exp(-steps * h))) < h


def test_sphere_field_is_nearest_neighbour_pull(rng):
    """Q = K = V = I, self excluded: x_dot_i = P^perp x_{j*}, j* the nearest other token."""
    x = normalize(rng.standard_normal((3, 7, 4)))
    v = Hardmax()(0.0, x)
    g = np.einsum("bid,bjd->bij", x, x)
    np.einsum("bii->bi", g)[...] = -np.inf
    nearest = np.take_along_axis(x, np.argmax(g, axis=-1)[..., None], axis=1)
    expected = nearest - np.sum(nearest * x, axis=-1, keepdims=True) * x
    assert np.allclose(v, expected, atol=1e-14)


def test_sa_tends_to_hardmax_on_the_sphere(rng):
    """As beta grows, SA(beta, Q, K, V) tends to the hardmax field (self allowed), with an
    error that decreases in beta (like e^{-beta gap})."""
    n, d = 6, 3
    Q, K, V = rng.standard_normal((3, d, d))
    x = generic_sphere_configuration(rng, n, d, Q, K)
    hard = Hardmax(Q=Q, K=K, V=V, exclude_self=False)(0.0, x)
    errors = [np.max(np.abs(SA(beta, Q=Q, K=K, V=V)(0.0, x) - hard)) for beta in (5, 50, 500)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-8


def test_rescaled_sa_tends_to_rescaled_hardmax(rng):
    """In R^d, (9.3) at t = 0 tends to (9.4)-(9.6) as beta grows."""
    n, d = 5, 3
    Q, K, V = rng.standard_normal((3, d, d))
    while True:
        z = rng.standard_normal((2, n, d))
        if score_gap(z @ Q.T, z @ K.T) > 0.05:
            break
    hard = Hardmax(Q=Q, K=K, V=V, space=EUCLIDEAN)(0.0, z)
    errors = []
    for beta in (5, 50, 500):
        soft = RescaledSelfAttention(PureSelfAttention(beta, Q=Q, K=K, V=V))
        errors.append(np.max(np.abs(soft(0.0, z) - hard)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-8


def test_ties_are_averaged():
    """A token equidistant from two others pulls towards their mean direction."""
    x = normalize(np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0],
                             [0.0, 0.0, 1.0]]]))
    w = Hardmax().weights(0.0, x)[0]
    assert np.allclose(w[0], [0.0, 1 / 3, 1 / 3, 1 / 3])  # three-way tie at 0
    assert np.allclose(w[1], [0.5, 0.0, 0.0, 0.5])
    assert np.allclose(w.sum(axis=-1), 1.0)


def test_single_token_without_self_is_still():
    x = normalize(np.array([[[0.6, 0.8]]]))
    assert np.all(Hardmax()(0.0, x) == 0.0)


def test_hardmax_on_sphere_clusters(rng):
    """Nearest-neighbour pulls merge tokens: n = 3 tokens end at one point; from n = 6 every
    token ends in a cluster of at least two (so at most three clusters), and the motion stops."""
    x3 = normalize(rng.standard_normal((4, 3, 3)))
    x6 = normalize(rng.standard_normal((4, 6, 3)))
    for x0 in (x3, x6):
        traj = simulate(Hardmax(), x0, [0.0, 19.0, 20.0], method="euler", dt=0.01)
        g = np.einsum("btid,btjd->btij", traj.states, traj.states)[:, -1]
        n = g.shape[-1]
        close = g > 1 - 1e-8
        partners = np.sum(close, axis=-1) - 1
        assert np.all(partners >= 1)
        if n == 3:
            assert np.all(close)
        assert np.max(np.abs(traj.states[:, -1] - traj.states[:, -2])) < 1e-6
        assert np.min(np.einsum("bid,bjd->bij", x0, x0)) < 0.9  # they really moved together


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backends_agree_with_numpy(rng, backend):
    x = normalize(rng.standard_normal((2, 5, 3)))
    Q = rng.standard_normal((3, 3))
    other = from_numpy(x, backend)
    for field in (Hardmax(), Hardmax(QK=Q, V=Q.T, space=EUCLIDEAN)):
        got = to_numpy(field.on(other)(0.0, other))
        assert np.allclose(got, field(0.0, x), atol=1e-12)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="tol"):
        Hardmax(tol=-1.0)
    with pytest.raises(TypeError, match="SPHERE or EUCLIDEAN"):
        Hardmax(space="circle")
    with pytest.raises(ValueError, match="shape"):
        Hardmax(V=np.eye(3)).check(np.ones((1, 2, 2)))
