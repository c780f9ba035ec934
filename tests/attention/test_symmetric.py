"""The large-n CPU right-hand side (attention.symmetric) against a float64 softmax
written here: max-subtracted softmax, weighted sum, tangent projection.

Error bounds. float64: 1e-12 relative to the field's largest entry, plus a floor
64 (1 + beta) eps64 for the projection's cancellation (where the field is small next to
the drive, |v| << |x|, both computations lose the same absolute digits). float32, compared
with the reference of the float32-rounded tokens: 8 (1 + beta) eps32 absolute (|x| ~ 1, so
the field is O(1)). Each weight e^{beta <x_i, x_j> - m} carries the score's rounding times
beta (a few eps32 beta) plus the exponential's 0.7 ulp; sums within a tile in float32 add a
few eps32 more (float64 across tiles), and the drive and the projection are combinations
of O(1) vectors. Measured worst over these cases: 0.44 (1 + beta) eps32 (fp32) and
3e-13 relative (fp64).
"""

import numba
import numpy as np
import pytest

from attention.symmetric import exp_array, symmetric_rhs

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def _reference(x: np.ndarray, beta: float) -> np.ndarray:
    x = x.astype(np.float64)
    s = beta * (x @ np.swapaxes(x, -1, -2))
    s -= s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    drive = (e @ x) / e.sum(axis=-1, keepdims=True)
    return drive - np.sum(drive * x, axis=-1, keepdims=True) * x


def _tokens(shape, rng, off: float = 0.0) -> np.ndarray:
    x = rng.standard_normal(shape)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x * (1.0 + off)


def _check(x: np.ndarray, beta: float, dtype, **kw) -> None:
    x = x.astype(dtype)
    out = symmetric_rhs(x, beta, **kw)
    assert out.dtype == dtype and out.shape == x.shape
    ref = _reference(x, beta)
    err = np.abs(out - ref).max()
    if dtype == np.float64:
        bound = 1e-12 * np.abs(ref).max() + 64 * (1 + beta) * EPS64
    else:
        bound = 8 * (1 + beta) * EPS32
    assert err <= bound, (x.shape, beta, dtype, err, bound)


@pytest.fixture
def rng():
    return np.random.default_rng(np.random.SeedSequence().entropy)


def test_exp32_and_exp64_against_numpy(rng):
    a = np.concatenate([np.linspace(-87, 88, 400_001), rng.uniform(-20, 0, 200_000)])
    a32 = a.astype(np.float32)
    out = np.empty_like(a32)
    exp_array(a32, out)
    assert np.abs(out / np.exp(a32.astype(np.float64)) - 1).max() < 1e-7
    a64 = np.concatenate([np.linspace(-700, 709, 400_001), rng.uniform(-20, 0, 200_000)])
    out64 = np.empty_like(a64)
    exp_array(a64, out64)
    assert np.abs(out64 / np.exp(a64) - 1).max() < 1e-15
    # below the range: the floor, never 0 or NaN
    low = np.array([-1e4, -np.inf], np.float32)
    exp_array(low, low)
    assert np.all(low > 0) and np.all(low < 1e-37)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [2, 3, 16, 64])
@pytest.mark.parametrize("n", [1, 7, 200, 300, 777])
def test_against_the_float64_softmax(n, d, dtype, rng):
    """Tile 128: n < T, one tile plus a ragged one, several tiles with a ragged edge (the
    pairs of tiles spread over the threads from 2 T on)."""
    x = _tokens((n, d), rng)
    for beta in (0.5, 1.0, 9.0):
        _check(x, beta, dtype, tile=128)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_default_tile_and_points_slightly_off_the_sphere(dtype, rng):
    """|x| = 1 + 1e-3 (as between retractions): the shift is beta max |x|^2, still exact."""
    for d in (3, 64):
        x = _tokens((600, d), rng, off=1e-3)
        x[:, :] *= 1.0 - 2e-3 * rng.uniform(0, 1, (600, 1))  # norms in [1 - 1e-3, 1 + 1e-3]
        for beta in (1.0, 9.0):
            _check(x, beta, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batches(dtype, rng):
    """Many small members (members in parallel), and a few larger ones (one after another,
    pairs of tiles in parallel)."""
    _check(_tokens((9, 40, 3), rng), 1.0, dtype)
    _check(_tokens((2, 300, 16), rng), 9.0, dtype, tile=64)
    _check(_tokens((3, 130, 2), rng), 0.5, dtype, tile=32)


def test_one_thread_and_out(rng):
    x = _tokens((300, 3), rng).astype(np.float32)
    out = np.full_like(x, np.nan)
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        result = symmetric_rhs(x, 1.0, out, tile=64)
    finally:
        numba.set_num_threads(previous)
    assert result is out
    np.testing.assert_allclose(out, symmetric_rhs(x, 1.0, tile=64), atol=4 * EPS32)
    assert np.abs(out - _reference(x, 1.0)).max() <= 16 * EPS32


def test_beta_zero_is_the_projected_mean(rng):
    x = _tokens((257, 3), rng)
    mean = np.broadcast_to(x.mean(axis=0), x.shape)
    expected = mean - np.sum(mean * x, axis=-1, keepdims=True) * x
    np.testing.assert_allclose(symmetric_rhs(x, 0.0), expected, atol=1e-14)


def test_rejects_negative_beta_and_bad_input(rng):
    x = _tokens((20, 3), rng)
    with pytest.raises(ValueError, match="beta >= 0"):
        symmetric_rhs(x, -0.5)
    for beta in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="beta >= 0"):
            symmetric_rhs(x, beta)
    far = x * np.linspace(0.5, 1.0, 20)[:, None]  # norms far apart: row sums would underflow
    with pytest.raises(ValueError, match="common sphere"):
        symmetric_rhs(far.astype(np.float32), 200.0)
    _check(far, 200.0, np.float64)  # float64: row sums down to e^-150 are fine
    with pytest.raises(TypeError):
        symmetric_rhs(x.astype(np.float16), 1.0)
    with pytest.raises(ValueError):
        symmetric_rhs(x[0], 1.0)
    with pytest.raises(ValueError):
        symmetric_rhs(x, 1.0, out=np.empty((20, 3), np.float32))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sa_takes_the_symmetric_kernel_at_large_n(backend, dtype):
    """SA(beta)(t, x) at n >= SYMMETRIC_MIN_N is the symmetric kernel, equal to the
    materialised float64 reference field; simulate keeps such members off the compiled
    engine (n x n work arrays) and integrates them natively through it."""
    import torch

    from dynamics import SA, simulate
    from dynamics.fields.attention import SYMMETRIC_MIN_N
    from dynamics.initial import uniform_sphere

    rng = np.random.default_rng()
    x = uniform_sphere(int(rng.integers(1 << 30)), 1, SYMMETRIC_MIN_N + 37, 3)
    beta = float(rng.uniform(0.5, 4.0))
    expected = SA(beta, path="reference")(0.0, x)
    x_in = x.astype(dtype)
    if backend == "torch":
        x_in = torch.from_numpy(x_in)
    field = SA(beta).on(x_in)
    assert field._symmetric(x_in)
    got = np.asarray(field(0.0, x_in), dtype=np.float64)
    tolerance = 1e-12 if dtype == "float64" else 2e-5
    assert np.abs(got - expected).max() <= tolerance * max(1.0, np.abs(expected).max())
    if dtype == "float64" and backend == "numpy":
        traj = simulate(SA(beta), x, [0.0, 0.2], method="rk4", dt=0.1)
        assert traj.engine == "native"
        reference = simulate(SA(beta, path="reference"), x, [0.0, 0.2], method="rk4", dt=0.1)
        assert np.abs(traj.values - reference.values).max() < 1e-12
