"""Initial conditions: exact laws, exact Gram matrices, one seed on every backend."""

import math

import jax
import numpy as np
import pytest
from scipy import stats

from attention.array_api import to_numpy
from dynamics.initial import (
    cone,
    equiangular,
    hemisphere,
    orthogonal,
    uniform_angles,
    uniform_box,
    uniform_sphere,
)

KS_LEVEL = 1e-5  # p-value below which a sample is declared not to follow its law


def gram(x):
    return np.einsum("bid,bjd->bij", x, x)


def height_cdf(d, alpha):
    """CDF of t = <x, w> for x uniform on the cap {t >= cos alpha} of S^{d-1}:
    (1 + t)/2 ~ Beta((d-1)/2, (d-1)/2) for the whole sphere, conditioned on the cap."""
    law = stats.beta((d - 1) / 2, (d - 1) / 2)
    low = law.cdf((1 + math.cos(alpha)) / 2)
    return lambda t: (law.cdf((1 + np.asarray(t)) / 2) - low) / (1 - low)


@pytest.mark.parametrize("d", [2, 3, 7])
def test_uniform_sphere_moments_and_height_law(rng, d):
    batch, n = 400, 50
    x = uniform_sphere(rng, batch, n, d).reshape(-1, d)
    size = x.shape[0]
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-14)
    # E x = 0 with Var x_a = 1/d; E x x^T = I/d with Var x_a^2 = 3/(d(d+2)) - 1/d^2,
    # Var x_a x_b = 1/(d(d+2)) (a != b): every entry within 5 standard errors
    assert np.all(np.abs(x.mean(axis=0)) < 5 * math.sqrt(1 / (d * size)))
    second = x.T @ x / size
    var = np.full((d, d), 1 / (d * (d + 2)))
    np.fill_diagonal(var, 3 / (d * (d + 2)) - 1 / d**2)
    assert np.all(np.abs(second - np.eye(d) / d) < 5 * np.sqrt(var / size))
    # (1 + <x, e>)/2 ~ Beta((d-1)/2, (d-1)/2), for a fixed random unit vector e
    e = rng.standard_normal(d)
    e /= np.linalg.norm(e)
    assert stats.kstest(x[:1000] @ e, height_cdf(d, math.pi)).pvalue > KS_LEVEL


def test_orthogonal_gram_is_identity(rng):
    x = orthogonal(rng, 5, 6, 9)
    np.testing.assert_allclose(gram(x), np.broadcast_to(np.eye(6), (5, 6, 6)), atol=1e-14)
    # a uniformly random frame: each token is uniform on the sphere, so has mean 0
    many = orthogonal(rng, 2000, 2, 3)
    assert np.all(np.abs(many.mean(axis=0)) < 5 * math.sqrt(1 / (3 * 2000)))
    square = orthogonal(rng, 1, 4, 4)
    np.testing.assert_allclose(gram(square)[0], np.eye(4), atol=1e-14)
    with pytest.raises(ValueError, match="d >= n"):
        orthogonal(rng, 1, 5, 4)


@pytest.mark.parametrize("rho_fraction", [-0.999, -0.5, 0.0, 0.3, 0.99])
def test_equiangular_gram_is_exact(rng, rho_fraction):
    n, d = 6, 8
    rho = rho_fraction / (n - 1) if rho_fraction < 0 else rho_fraction
    x = equiangular(rng, 4, n, d, rho)
    expected = (1 - rho) * np.eye(n) + rho * np.ones((n, n))
    np.testing.assert_allclose(gram(x), np.broadcast_to(expected, (4, n, n)), atol=1e-13)
    # randomly rotated: the members differ
    assert np.max(np.abs(x[0] - x[1])) > 0.1


def test_equiangular_rejects_impossible_angles(rng):
    n = 5
    for rho in (-1 / (n - 1), -0.3, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"-1/\(n-1\) < rho < 1"):
            equiangular(rng, 1, n, 6, rho)
    with pytest.raises(ValueError, match="d >= n"):
        equiangular(rng, 1, n, 4, 0.2)


@pytest.mark.parametrize(("d", "alpha"), [(2, 0.4), (3, 1.0), (5, 0.05), (10, 2.5), (4, math.pi)])
def test_cone_is_uniform_on_the_cap(rng, d, alpha):
    w = rng.standard_normal(d)
    x = cone(rng, 3, 400, d, alpha, w=w)
    w = w / np.linalg.norm(w)
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-14)
    heights = (x @ w).ravel()
    assert heights.min() >= math.cos(alpha) - 1e-12
    assert stats.kstest(heights, height_cdf(d, alpha)).pvalue > KS_LEVEL
    # the direction orthogonal to w is uniform: its mean vanishes
    perp = x - (x @ w)[..., None] * w
    assert np.linalg.norm(perp.reshape(-1, d).mean(axis=0)) < 5 * math.sqrt(1 / 1200)


def test_cone_height_is_uniform_in_three_dimensions(rng):
    """Archimedes: on S^2 the height <x, w> is uniform, so on a cap it is U(cos alpha, 1)."""
    alpha = 0.7
    x = cone(rng, 1, 3000, 3, alpha)
    law = stats.uniform(math.cos(alpha), 1 - math.cos(alpha))
    assert stats.kstest(x[0, :, 0], law.cdf).pvalue > KS_LEVEL


def test_cone_with_one_axis_per_member(rng):
    axes = rng.standard_normal((4, 5))
    x = cone(rng, 4, 100, 5, 0.3, w=axes)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    assert np.all(np.einsum("bnd,bd->bn", x, axes) >= math.cos(0.3) - 1e-12)


def test_cone_rejects_bad_input(rng):
    for alpha in (0.0, -0.1, math.pi + 0.01):
        with pytest.raises(ValueError, match=r"alpha must lie in \(0, pi\]"):
            cone(rng, 1, 3, 3, alpha)
    with pytest.raises(ValueError, match="nonzero"):
        cone(rng, 1, 3, 3, 0.5, w=np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        cone(rng, 1, 3, 3, 0.5, w=np.ones(4))


def test_hemisphere_points_lie_in_an_open_hemisphere(rng):
    """Wendel's event {all tokens in some open hemisphere} holds with w as a witness."""
    w = rng.standard_normal(4)
    x = hemisphere(rng, 50, 30, 4, w=w)
    assert np.all(x @ w > 0)
    heights = (x @ (w / np.linalg.norm(w))).ravel()
    assert stats.kstest(heights, height_cdf(4, math.pi / 2)).pvalue > KS_LEVEL


def test_uniform_angles_and_box(rng):
    theta = uniform_angles(rng, 10, 200)
    assert theta.shape == (10, 200)
    assert theta.min() >= -math.pi and theta.max() < math.pi
    assert stats.kstest(theta.ravel(), stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > KS_LEVEL
    box = uniform_box(rng, 5, 100, 3, half_width=5.0)
    assert np.abs(box).max() <= 5.0
    assert stats.kstest(box.ravel(), stats.uniform(-5, 10).cdf).pvalue > KS_LEVEL
    with pytest.raises(ValueError, match="half_width"):
        uniform_box(rng, 1, 2, 3, half_width=0.0)


SAMPLERS = [
    lambda seed, **kw: uniform_sphere(seed, 2, 5, 3, **kw),
    lambda seed, **kw: orthogonal(seed, 2, 3, 5, **kw),
    lambda seed, **kw: equiangular(seed, 2, 3, 4, 0.4, **kw),
    lambda seed, **kw: cone(seed, 2, 4, 3, 0.8, **kw),
    lambda seed, **kw: hemisphere(seed, 2, 4, 3, **kw),
    lambda seed, **kw: uniform_angles(seed, 2, 5, **kw),
    lambda seed, **kw: uniform_box(seed, 2, 5, 3, **kw),
]


@pytest.mark.parametrize("sample", SAMPLERS)
def test_one_seed_gives_the_same_samples_on_every_backend(rng, sample):
    seed = int(rng.integers(2**31))
    ref = sample(seed)
    assert ref.dtype == np.float64
    np.testing.assert_array_equal(sample(seed), ref)
    torch_x = sample(seed, backend="torch")
    assert str(torch_x.dtype) == "torch.float64"
    np.testing.assert_array_equal(to_numpy(torch_x), ref)
    np.testing.assert_array_equal(to_numpy(sample(seed, backend="jax")), ref)
    assert np.max(np.abs(sample(seed + 1) - ref)) > 0
    np.testing.assert_array_equal(sample(np.random.default_rng(seed)), ref)
    # float32 on request, and by default for JAX without x64
    np.testing.assert_allclose(sample(seed, dtype="float32"), ref, rtol=1e-6, atol=1e-7)
    with jax.enable_x64(False):
        assert str(sample(seed, backend="jax").dtype) == "float32"


def test_samplers_need_a_seed_and_positive_sizes():
    with pytest.raises(ValueError, match="explicit seed"):
        uniform_sphere(None, 1, 2, 3)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        uniform_sphere(0, 1, 0, 3)
    with pytest.raises(ValueError, match="d >= 2"):
        uniform_sphere(0, 1, 2, 1)
