"""The compiled engine (dynamics.compiled) takes the numpy reference's steps: the same
trajectories, clustering times and step counts, for every field and option it covers."""

import numpy as np
import pytest
import torch

from dynamics import SA, USA, CircleSA, CircleUSA, simulate
from dynamics.fields.attention import SelfAttention
from dynamics.initial import uniform_sphere
from dynamics.space import EUCLIDEAN


def _both(field, x0, times, **kw):
    a = simulate(field, x0, times, engine="native", **kw)
    b = simulate(field, x0, times, engine="compiled", **kw)
    return a, b


@pytest.mark.parametrize("field", [
    SA(1.0), SA(4.0, causal=True), USA(0.5), SelfAttention(beta=1.0, normalization="usa-shifted"),
    SA(-0.5)], ids=["sa", "causal", "usa", "usa-shifted", "repulsive"])
@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_same_steps_and_states_as_the_reference(field, method):
    x0 = uniform_sphere(np.random.default_rng().integers(2**31), 6, 9, 3)
    a, b = _both(field, x0, np.linspace(0, 4, 5), method=method)
    np.testing.assert_array_equal(a.accepted_steps, b.accepted_steps)
    np.testing.assert_array_equal(a.rejected_steps, b.rejected_steps)
    assert np.abs(a.values - b.values).max() < 1e-10


def test_clustering_times_agree_with_per_member_beta():
    x0 = uniform_sphere(np.random.default_rng().integers(2**31), 8, 12, 3)
    betas = np.linspace(0.5, 2.0, 8)
    a, b = _both(SA(betas), x0, [0.0, 60.0], method="dopri5", stop_when_clustered=1e-3)
    assert np.isfinite(a.cluster_time).all()
    np.testing.assert_allclose(b.cluster_time, a.cluster_time, rtol=1e-9)
    # a stopped member keeps its state at the clustering time
    assert np.abs(a.values - b.values).max() < 1e-9


@pytest.mark.parametrize("field", [CircleSA(1.5), CircleUSA(0.8, causal=True)])
def test_circle_in_angles(field):
    theta = np.random.default_rng().uniform(-np.pi, np.pi, (4, 10))
    a, b = _both(field, theta, np.linspace(0, 3, 4), method="dopri5")
    assert b.values.shape == (4, 4, 10)
    assert np.abs(a.values - b.values).max() < 1e-10


def test_torch_cpu_tokens_come_back_as_torch():
    x0 = uniform_sphere(3, 3, 8, 4)
    a = simulate(SA(1.0), x0, [0.0, 2.0], engine="compiled")
    b = simulate(SA(1.0), torch.from_numpy(x0), [0.0, 2.0], engine="compiled")
    assert isinstance(b.values, torch.Tensor)
    assert np.abs(b.values.numpy() - a.values).max() == 0.0


def test_compiled_refuses_what_it_cannot_run():
    x0 = uniform_sphere(0, 2, 5, 3)
    with pytest.raises(ValueError, match="Q = K = V = I"):
        simulate(SA(1.0, V=np.eye(3)), x0, [0, 1.0], engine="compiled")
    with pytest.raises(ValueError, match="sphere"):
        simulate(SA(1.0, space=EUCLIDEAN), x0, [0, 1.0], engine="compiled")
    with pytest.raises(ValueError, match="float64"):
        simulate(SA(1.0), x0.astype(np.float32), [0, 1.0], engine="compiled")
    with pytest.raises(ValueError, match="euler-maruyama"):
        simulate(SA(1.0), x0, [0, 1.0], method="euler-maruyama", dt=0.1, engine="compiled")
    with pytest.raises(RuntimeError, match="max_steps"):
        simulate(SA(1.0), x0, [0, 50.0], engine="compiled", max_steps=3)


def test_vectorised_exponential_matches_numpy():
    from dynamics.compiled.kernels import exp_row

    a = np.random.default_rng().uniform(-700.0, 0.0, 4099)
    a[:3] = (0.0, -700.0, -0.5 * np.log(2.0))  # the ends and a rounding boundary of k
    out, bits = np.empty_like(a), np.empty(a.size, dtype=np.int64)
    exp_row(a, a.size, out, bits)
    assert np.max(np.abs(out / np.exp(a) - 1.0)) <= 4e-16
    b = np.random.default_rng().uniform(0.0, 709.0, 1000)  # USA's positive exponents
    exp_row(b, b.size, out, bits)
    assert np.max(np.abs(out[: b.size] / np.exp(b) - 1.0)) <= 4e-16


@pytest.mark.parametrize("kind", [0, 1, 2])  # softmax, USA, shifted USA
@pytest.mark.parametrize("causal", [False, True])
def test_symmetric_velocity_equals_the_general_kernel(kind, causal):
    from dynamics.compiled.kernels import attention_velocity, symmetric_velocity, work_shape

    rng = np.random.default_rng()
    n, d = int(rng.integers(2, 40)), int(rng.integers(2, 9))
    x = uniform_sphere(int(rng.integers(1 << 30)), 1, n, d)[0]
    beta = float(rng.uniform(0.1, 8.0))
    general, fast = np.empty((n, d)), np.empty((n, d))
    attention_velocity(x, beta, kind, causal, True, np.empty((n, n)), np.empty((n, n)), general)
    symmetric_velocity(x, beta, kind, causal, True, np.empty(work_shape(n, d)),
                       np.empty(n, dtype=np.int64), fast)
    scale = np.abs(general).max()
    assert np.abs(fast - general).max() <= 1e-14 * max(scale, 1.0)


@pytest.mark.parametrize("method", ["euler", "rk4", "authors"])
@pytest.mark.parametrize("field", [SA(1.5), USA(0.7, causal=True)])
def test_fixed_steps_take_the_native_steps(method, field):
    """Grid steps, side steps to off-grid outputs, frozen members and the quadratic
    clustering root: the compiled fixed-step driver against dynamics.integrators.fixed."""
    from dynamics.compiled import integrate_compiled_fixed
    from dynamics.integrators.recording import ClusterEvent

    rng = np.random.default_rng()
    x0 = uniform_sphere(int(rng.integers(1 << 30)), 12, 9, 3)
    times = np.array([0.0, 0.35, 1.0, 7.25, 40.0])
    native = simulate(field, x0, times, method=method, dt=0.1, stop_when_clustered=1e-3,
                      engine="native")
    ours = integrate_compiled_fixed(field.on(x0), x0, times, method=method, dt=0.1,
                                    observe=None, event=ClusterEvent(1e-3, 12, 0.0))
    assert np.isfinite(native.cluster_time).sum() >= 6
    np.testing.assert_array_equal(np.isnan(ours.cluster_time), np.isnan(native.cluster_time))
    np.testing.assert_allclose(ours.cluster_time, native.cluster_time, rtol=1e-12)
    np.testing.assert_array_equal(ours.accepted, native.accepted_steps)
    assert np.abs(ours.values - native.values).max() < 1e-12


def test_fixed_steps_on_the_circle():
    from dynamics.compiled import integrate_compiled_fixed
    from dynamics.integrators.recording import ClusterEvent

    theta = np.random.default_rng().uniform(-np.pi, np.pi, (5, 11))
    times = np.linspace(0.0, 2.0, 6)
    field = CircleSA(1.2)
    native = simulate(field, theta, times, method="rk4", dt=0.05, engine="native")
    ours = integrate_compiled_fixed(field.on(theta), theta, times, method="rk4", dt=0.05,
                                    observe=None, event=ClusterEvent(None, 5, 0.0))
    assert ours.values.shape == (5, 6, 11)
    assert np.abs(ours.values - native.values).max() < 1e-12


def test_simulate_takes_the_compiled_fixed_steps_by_default():
    x0 = uniform_sphere(int(np.random.default_rng().integers(1 << 30)), 6, 10, 3)
    native = simulate(SA(1.0), x0, [0.0, 60.0], method="rk4", dt=0.1, stop_when_clustered=1e-3,
                      engine="native")
    auto = simulate(SA(1.0), x0, [0.0, 60.0], method="rk4", dt=0.1, stop_when_clustered=1e-3)
    assert (auto.engine, native.engine) == ("compiled", "native")
    np.testing.assert_allclose(auto.cluster_time, native.cluster_time, rtol=1e-12)


@pytest.mark.parametrize("engine", ["compiled", "native"])
def test_two_tokens_on_the_circle_cluster_at_the_quadrature_time(engine):
    """n = 2 on the circle: the gap phi = theta_2 - theta_1 obeys
    phi' = -2 sin(phi) e^{beta cos phi} / (e^beta + e^{beta cos phi}), so the time to
    cos(phi) = 1 - delta is an integral over phi."""
    from scipy.integrate import quad

    rng = np.random.default_rng()
    beta, delta = float(rng.uniform(0.5, 3.0)), 1e-3
    phi0 = float(rng.uniform(0.5, 2.5))
    phi_end = np.arccos(1.0 - delta)

    def dt_dphi(phi):
        e = np.exp(beta * np.cos(phi))
        return (np.exp(beta) + e) / (2.0 * np.sin(phi) * e)

    expected, _ = quad(dt_dphi, phi_end, phi0, epsabs=1e-13, epsrel=1e-12)
    theta = np.array([[0.3, 0.3 + phi0]])
    traj = simulate(CircleSA(beta), theta, [0.0, 10 * expected + 10], rtol=1e-11, atol=1e-13,
                    stop_when_clustered=delta, engine=engine)
    assert traj.engine == engine
    np.testing.assert_allclose(traj.cluster_time, [expected], rtol=1e-7)
