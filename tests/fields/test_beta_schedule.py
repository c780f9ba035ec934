"""beta as a function of depth: SA(lambda t: ...) integrates the ODE with beta(t) (checked
against scipy's DOP853 on the same equations written here), under fixed and adaptive steps,
and a constant schedule is the constant beta exactly."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dynamics import SA, simulate
from dynamics.initial import uniform_sphere


def _schedule(t):
    return 0.5 + 0.3 * np.asarray(t)  # elementwise: t is (batch,) under adaptive steps


def _reference(x0: np.ndarray, t_end: float) -> np.ndarray:
    n, d = x0.shape

    def velocity(t, y):
        x = y.reshape(n, d)
        s = _schedule(t) * x @ x.T
        w = np.exp(s - s.max(axis=1, keepdims=True))
        v = (w / w.sum(axis=1, keepdims=True)) @ x
        return (v - np.sum(v * x, axis=1, keepdims=True) * x).ravel()

    sol = solve_ivp(velocity, (0.0, t_end), x0.ravel(), method="DOP853", rtol=1e-12, atol=1e-13)
    return sol.y[:, -1].reshape(n, d)


@pytest.mark.parametrize("method, options, tolerance", [
    ("rk4", {"dt": 0.01}, 1e-9), ("dopri5", {"rtol": 1e-10, "atol": 1e-12}, 1e-9)])
def test_a_beta_schedule_solves_the_ode_with_beta_of_t(method, options, tolerance):
    x0 = uniform_sphere(int(np.random.default_rng().integers(1 << 30)), 2, 5, 3)
    traj = simulate(SA(_schedule), x0, [0.0, 2.0], method=method, **options)
    assert traj.engine == "native"  # the compiled engine takes constant betas only
    for member in range(2):
        assert np.abs(traj.values[member, -1] - _reference(x0[member], 2.0)).max() < tolerance


def test_a_constant_schedule_is_the_constant_beta():
    x0 = uniform_sphere(int(np.random.default_rng().integers(1 << 30)), 3, 6, 4)
    scheduled = simulate(SA(lambda t: 2.0 + 0.0 * np.asarray(t)), x0, [0.0, 1.0], method="rk4",
                         dt=0.1)
    constant = simulate(SA(2.0), x0, [0.0, 1.0], method="rk4", dt=0.1, engine="native")
    np.testing.assert_array_equal(scheduled.values, constant.values)
