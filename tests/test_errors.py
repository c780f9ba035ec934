"""Bad input fails at the public boundary with a message that says what was expected."""

import numpy as np
import pytest
import torch

from dynamics import SA, USA, MultiHeadAttention, SelfAttention, normalize, simulate


@pytest.fixture
def x0(rng):
    return normalize(rng.standard_normal((2, 5, 3)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda x: x[0, 0], r"shape \(batch, n, d\)"),
        (lambda x: x[..., None], r"shape \(batch, n, d\)"),
        (lambda x: x.astype(np.int64), "floating-point"),
        (lambda x: np.where(np.arange(3) == 0, np.nan, x), "NaN"),
        (lambda x: 1.5 * x, "off the unit sphere"),
        (lambda x: x[:, :0], "n >= 1"),
        (lambda x: normalize(x[..., :1] + 1.0), "d >= 2"),
    ],
)
def test_bad_tokens(x0, make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        simulate(SA(1.0), make(x0), [0.0, 1.0], method="rk4", dt=0.1)


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (lambda r: SA(1.0, Q=r.standard_normal((3, 4)), K=r.standard_normal((3, 4))), r"\(k, 3\)"),
        (lambda r: SA(1.0, Q=r.standard_normal((2, 3)), K=r.standard_normal((4, 3))),
         "same number"),
        (lambda r: SA(1.0, V=r.standard_normal((3, 2))), r"V must have shape \(3, 3\)"),
        (lambda r: SA(1.0, QK=r.standard_normal((2, 3))), r"QK must have shape \(3, 3\)"),
        (lambda r: SA(1.0, Q=r.standard_normal((7, 3, 3))), "batch 7"),
        (lambda r: SA(np.ones(4)), "beta has 4 entries"),
        (lambda r: SA(1.0, Q=np.full((3, 3), np.inf)), "NaN or infinite"),
    ],
)
def test_parameters_that_do_not_fit(x0, rng, field, message):
    with pytest.raises(ValueError, match=message):
        simulate(field(rng), x0, [0.0, 1.0], method="rk4", dt=0.1)


def test_field_construction_errors():
    with pytest.raises(ValueError, match="normalization"):
        SelfAttention(1.0, normalization="sparsemax")
    with pytest.raises(ValueError, match="not both"):
        SelfAttention(1.0, Q=np.eye(3), QK=np.eye(3))
    with pytest.raises(ValueError, match="finite"):
        SA(float("nan"))
    with pytest.raises(ValueError, match="at least one head"):
        MultiHeadAttention(())


def test_negative_beta_is_valid(x0):
    traj = simulate(USA(-0.16), x0, [0.0, 1.0], method="rk4", dt=0.1)
    assert np.all(np.isfinite(traj.states))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "leapfrog"}, "unknown method"),
        ({"method": "rk4"}, "pass dt > 0"),
        ({"method": "rk4", "dt": -0.1}, "dt must be > 0"),
        ({"method": "dopri5", "rtol": 0.0}, "rtol must be > 0"),
        ({"method": "rk4", "dt": 0.1, "stop_when_clustered": 3.0}, r"\(0, 2\)"),
        ({"method": "rk4", "dt": 0.1, "reduce": "yes"}, "reduce must be"),
        ({"method": "euler-maruyama", "dt": 0.1}, "noisy fields"),
        ({"method": "dopri5", "engine": "diffrax"}, "JAX arrays"),
        ({"method": "rk4", "dt": 0.1, "engine": "diffrax"}, "adaptive methods"),
        ({"method": "rk4", "dt": 0.1, "dtype": "float16"}, "float32 or float64"),
    ],
)
def test_bad_solver_options(x0, kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate(SA(1.0), x0, [0.0, 1.0], **kwargs)


@pytest.mark.parametrize(
    ("times", "message"),
    [([1.0], "at least two"), ([0.0, 2.0, 1.0], "increasing"), ([0.0, np.inf], "finite")],
)
def test_bad_times(x0, times, message):
    with pytest.raises(ValueError, match=message):
        simulate(SA(1.0), x0, times, method="rk4", dt=0.1)


def test_reduce_true_needs_v_identity(x0, rng):
    with pytest.raises(ValueError, match="V = I"):
        simulate(SA(1.0, V=rng.standard_normal((3, 3))), x0[:, :2], [0.0, 1.0], method="rk4",
                 dt=0.1, reduce=True)


def test_max_steps_exhaustion_is_reported(x0):
    with pytest.raises(RuntimeError, match="max_steps"):
        simulate(SA(1.0), x0, [0.0, 50.0], method="dopri5", max_steps=5)


def test_trajectory_without_states_says_so(x0):
    from dynamics import min_pairwise_inner

    traj = simulate(SA(1.0), torch.from_numpy(x0), [0.0, 1.0], method="rk4", dt=0.1,
                    observe=min_pairwise_inner)
    with pytest.raises(AttributeError, match="observe"):
        _ = traj.states
