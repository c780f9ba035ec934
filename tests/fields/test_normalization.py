"""Pre-LN and Peri-LN in (r, theta) form (Survey §6.2): the direction equation (NA) and the
clustering rates e^{-2t} (Post-LN) versus 1/t^2 (Pre-LN, Peri-LN) (paper §11 item 19)."""

import numpy as np
import pytest

from attention.array_api import from_numpy, to_numpy
from dynamics import SA, SelfAttention, simulate
from dynamics.fields.normalization import (
    NormalizedAttention,
    PeriLN,
    PreLN,
    polar,
    speed_factor,
)


def random_tokens(rng, batch, n, d):
    """Tokens of R^d with radii in [0.5, 2]."""
    x = rng.standard_normal((batch, n, d))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x * rng.uniform(0.5, 2.0, (batch, n, 1))


def one_minus_cos(theta):
    """1 - <theta_0, theta_1> = |theta_0 - theta_1|^2 / 2, accurate near 1."""
    diff = theta[..., 0, :] - theta[..., 1, :]
    return 0.5 * np.sum(diff * diff, axis=-1)


def test_fields_are_the_definitions(rng):
    x = random_tokens(rng, 2, 5, 3)
    r, theta = polar(x)
    assert np.allclose(r[..., None] * theta, x, atol=1e-15)
    beta = 1.3
    a = SA(beta).drive(0.0, theta)
    assert np.allclose(PreLN(beta)(0.0, x), a, atol=1e-14)
    assert np.allclose(PeriLN(beta)(0.0, x), a / np.linalg.norm(a, axis=-1, keepdims=True),
                       atol=1e-14)
    # scaling a token does not change the velocity field (it only sees directions)
    assert np.allclose(PreLN(beta)(0.0, 3.0 * x), PreLN(beta)(0.0, x), atol=1e-14)


@pytest.mark.parametrize("placement", ["pre", "peri"])
def test_directions_follow_na(rng, placement):
    """Along a trajectory, d theta/dt (central differences) = (1/s_i) P^perp A_i."""
    batch, n, d = 2, 5, 3
    x0 = random_tokens(rng, batch, n, d)
    attention = SelfAttention(1.5, Q=rng.standard_normal((d, d)), K=rng.standard_normal((d, d)),
                              V=rng.standard_normal((d, d)) / 2)
    field = NormalizedAttention(attention, placement)
    t, h = 0.8, 1e-4
    traj = simulate(field, x0, [0.0, t - h, t, t + h], rtol=1e-12, atol=1e-14)
    r, theta = polar(traj.states)
    fd = (theta[:, 3] - theta[:, 1]) / (2 * h)
    predicted = field.angular_velocity(t, traj.states[:, 2])
    assert np.max(np.abs(fd - predicted)) < 1e-5
    # r_dot = <theta, x_dot>
    r_fd = (r[:, 3] - r[:, 1]) / (2 * h)
    r_dot = np.sum(theta[:, 2] * field(t, traj.states[:, 2]), axis=-1)
    assert np.max(np.abs(r_fd - r_dot)) < 1e-5
    assert np.max(np.abs(predicted)) > 1e-2


def test_speed_factors(rng):
    r = rng.uniform(0.5, 2.0, (2, 4))
    a = rng.standard_normal((2, 4, 3))
    assert np.all(speed_factor("post", r, a) == 1.0)
    assert np.all(speed_factor("pre", r, a) == r)
    assert np.allclose(speed_factor("peri", r, a), r * np.linalg.norm(a, axis=-1))
    with pytest.raises(ValueError, match="placement"):
        speed_factor("sandwich", r, a)


def test_post_ln_rate_is_exponential():
    """Orthogonal start (d = n): for SA, 1 - rho decays like C e^{-2t}."""
    x0 = np.eye(4)[None]
    times = np.array([0.0, 8.0, 12.0])
    theta = simulate(SA(1.0), x0, times, rtol=1e-11, atol=1e-14).states
    e = one_minus_cos(theta[0])
    slope = np.log(e[2] / e[1]) / (times[2] - times[1])
    assert abs(slope + 2.0) < 1e-3


@pytest.mark.parametrize("field", [PreLN(1.0), PeriLN(1.0)], ids=["pre", "peri"])
def test_pre_ln_rate_is_inverse_square(field):
    """Orthogonal start: r_i grows like t, so 1 - rho ~ C / t^2 (log-log slope -> -2)."""
    x0 = np.eye(4)[None]
    times = np.array([0.0, 100.0, 300.0, 1000.0])
    x = simulate(field, x0, times, rtol=1e-10, atol=1e-13).states
    r, theta = polar(x[0])
    e = one_minus_cos(theta)
    slopes = np.diff(np.log(e[1:])) / np.diff(np.log(times[1:]))
    assert np.all(np.abs(slopes + 2.0) < 0.03), slopes
    assert abs(slopes[-1] + 2.0) < abs(slopes[0] + 2.0)  # the slope tends to -2
    assert np.allclose(r[-1] / times[-1], 1.0, atol=0.01)  # r_dot -> <theta, A> -> 1


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backends_agree_with_numpy(rng, backend):
    x = random_tokens(rng, 2, 4, 3)
    other = from_numpy(x, backend)
    for field in (PreLN(2.0), PeriLN(0.5, V=rng.standard_normal((3, 3)))):
        got = to_numpy(field.on(other)(0.0, other))
        assert np.allclose(got, field(0.0, x), atol=1e-12)
        got = to_numpy(field.on(other).angular_velocity(0.0, other))
        assert np.allclose(got, field.angular_velocity(0.0, x), atol=1e-12)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="Post-LN is SA"):
        NormalizedAttention(SA(1.0), "post")
    with pytest.raises(ValueError, match="placement"):
        NormalizedAttention(SA(1.0), "middle")
    with pytest.raises(TypeError, match="drive"):
        NormalizedAttention(object(), "pre")
    x = np.ones((1, 3, 2))
    x[0, 1] = 0.0
    with pytest.raises(ValueError, match="direction"):
        PreLN(1.0).check(x)
