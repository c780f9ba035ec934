"""The adaptive drivers judge a step by the documented error norm (issue 15).

``dynamics.integrators.adaptive`` (and the compiled engine, ``dynamics.compiled``) accept a
step where

    err = sqrt( mean_i ( |e_i| / (atol + rtol max(|x_i|, |y_i|)) )^2 ) <= 1,

|.| the Euclidean norm of token i: an RMS over tokens, not a max. Here

* one Dormand-Prince step is computed by hand (coefficients written out below, not the
  package's) and the package's estimate must equal the formula to 1e-12, and differ from
  the max over tokens;
* the whole controller is replayed by an independent loop (d = 3 tokens on the sphere) and
  by scipy's RK45 / a scipy ``RungeKutta`` with Tsitouras' pair (scalar tokens, where the
  token norm is scipy's componentwise RMS); the numpy driver and the compiled engine must
  take exactly their numbers of accepted and rejected steps.

scipy's controller is the package's (safety 0.9, factor in [0.2, MAX_FACTOR], no growth on
the step after a rejection, the same scaled RMS norm) except that its MAX_FACTOR is 10
where the package's is 5, and that it picks its first step with exponent 1/(error order + 1)
where the package uses 1/(order + 1); the tests set scipy's MAX_FACTOR to 5 and hand it the
package's first step, so that what is compared is the error norm and the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as F

import numpy as np
import pytest
import scipy.integrate._ivp.rk as scipy_rk

from dynamics import SA, CircleSA, simulate
from dynamics.compiled.adaptive import _rms_ratio
from dynamics.fields.base import Field
from dynamics.integrators import adaptive
from dynamics.integrators.adaptive import error_norm, initial_step
from dynamics.integrators.runge_kutta import _combine, rk_stages
from dynamics.integrators.tableaux import DOPRI5, TSIT5
from dynamics.space import EUCLIDEAN

# Dormand & Prince (1980), written out here so that the hand computation does not read the
# package's tableau.
DP_C = [F(0), F(1, 5), F(3, 10), F(4, 5), F(8, 9), F(1), F(1)]
DP_A = [
    [],
    [F(1, 5)],
    [F(3, 40), F(9, 40)],
    [F(44, 45), F(-56, 15), F(32, 9)],
    [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)],
    [F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)],
    [F(35, 384), F(0), F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84)],
]
DP_B = [F(35, 384), F(0), F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), F(0)]
DP_B4 = [F(5179, 57600), F(0), F(7571, 16695), F(393, 640), F(-92097, 339200),
         F(187, 2100), F(1, 40)]
RTOL, ATOL = 1e-6, 1e-9


@dataclass(frozen=True, eq=False)
class Forced(Field):
    """x' = sin(t) tanh(x W^T) + cos(2t) x / 3 token by token, in R^d: nonlinear, time
    dependent, and each token moves at its own rate."""

    W: np.ndarray
    time_dependent = True

    @property
    def space(self):
        return EUCLIDEAN

    def __call__(self, t, x):
        t = np.asarray(t, dtype=float).reshape((-1,) + (1,) * (x.ndim - 1))
        return np.sin(t) * np.tanh(x @ self.W.T) + np.cos(2 * t) * x / 3


@dataclass(frozen=True, eq=False)
class Detuned(Field):
    """x_i' = r_i (cos(r_i t) tanh(x_i W^T) + sin(r_i t) x_i / 3): token i runs at its own
    rate r_i (the same field in time r_i t), so its local error grows like r_i^6."""

    W: np.ndarray
    rates: np.ndarray
    time_dependent = True

    @property
    def space(self):
        return EUCLIDEAN

    def __call__(self, t, x):
        phase = float(t) * self.rates[:, None]
        return self.rates[:, None] * (np.cos(phase) * np.tanh(x @ self.W.T)
                                      + np.sin(phase) * x / 3)


def _hand_dopri5(field, t, x, h):
    """(y, e) of one Dormand-Prince step from (t, x) with step h, e = y5 - y4."""
    ks = []
    for c, row in zip(DP_C, DP_A, strict=True):
        stage = x + h * sum(float(a) * k for a, k in zip(row, ks, strict=False))
        ks.append(field(t + float(c) * h, stage))
    y = x + h * sum(float(b) * k for b, k in zip(DP_B, ks, strict=True))
    e = h * sum(float(b - b4) * k for b, b4, k in zip(DP_B, DP_B4, ks, strict=True))
    return y, e


def _token_ratios(e, x, y, rtol, atol):
    """|e_i| / (atol + rtol max(|x_i|, |y_i|)) for every member and token, (batch, n)."""
    norm = np.linalg.norm
    return norm(e, axis=-1) / (atol + rtol * np.maximum(norm(x, axis=-1), norm(y, axis=-1)))


def _package_estimate(field, t, x, h, rtol, atol):
    """The adaptive driver's estimate: its stages, combinations and ``error_norm``."""
    ks = rk_stages(DOPRI5, field, t, x, h)
    y = _combine(x, h, DOPRI5.b, ks)
    e = _combine(0.0 * x, h, DOPRI5.b_error, ks)
    return y, e, error_norm(e, x, y, rtol, atol)


def test_one_dopri5_step_by_hand(rng):
    """2 tokens in d = 3 (and a second member): the estimate is the RMS over tokens."""
    d = 3
    # a slow token and a fast one: their scaled errors differ, so the RMS and the max over
    # tokens are far apart; |x_i| ~ 1 and atol = rtol, so both parts of the scale count
    field = Detuned(W=rng.normal(size=(d, d)), rates=np.array([0.3, 3.0]))
    x = rng.normal(size=(2, 2, d))
    t, h, rtol, atol = 0.7, 0.4, 1e-3, 1e-3
    y_hand, e_hand = _hand_dopri5(field, t, x, h)
    ratios = _token_ratios(e_hand, x, y_hand, rtol, atol)
    rms = np.sqrt(np.mean(ratios**2, axis=1))

    y, e, err = _package_estimate(field, t, x, h, rtol, atol)
    np.testing.assert_allclose(y, y_hand, rtol=0, atol=1e-13)
    # e = y5 - y4 is a difference of nearby sums: equal to rounding of that cancellation
    np.testing.assert_allclose(e, e_hand, rtol=1e-9, atol=1e-15)
    assert err.shape == (2,)
    np.testing.assert_allclose(err, rms, rtol=1e-9)
    # the norm itself, on the package's own e and y, is the formula to 1e-12
    own = np.sqrt(np.mean(_token_ratios(e, x, y, rtol, atol) ** 2, axis=1))
    np.testing.assert_allclose(err, own, rtol=1e-12)
    # the max over tokens is another number: a driver using it would fail here
    assert (np.max(ratios, axis=1) > 1.3 * rms).all()  # sqrt(2) rms: one token dominates
    # and so is the RMS over all n*d components
    componentwise = np.abs(e_hand) / (atol + rtol * np.maximum(np.abs(x), np.abs(y_hand)))
    assert (np.abs(np.sqrt(np.mean(componentwise**2, axis=(1, 2))) - rms) > 1e-5 * rms).all()


def test_error_norm_formula_on_random_inputs(rng):
    e, x, y = (rng.normal(size=(3, 5, 4)) * s for s in (1e-6, 1.0, 1.0))
    rtol, atol = 1e-4, 1e-7
    ratios = _token_ratios(e, x, y, rtol, atol)
    np.testing.assert_allclose(error_norm(e, x, y, rtol, atol),
                               np.sqrt(np.mean(ratios**2, axis=1)), rtol=1e-12)
    # rotation invariant: tokens rotated together give the same norm
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    np.testing.assert_allclose(error_norm(e @ q, x @ q, y @ q, rtol, atol),
                               error_norm(e, x, y, rtol, atol), rtol=1e-12)
    # scalar tokens (angles, states (batch, n)): |.| is the absolute value
    e1, x1, y1 = e[..., 0], x[..., 0], y[..., 0]
    scale = atol + rtol * np.maximum(np.abs(x1), np.abs(y1))
    np.testing.assert_allclose(error_norm(e1, x1, y1, rtol, atol),
                               np.sqrt(np.mean((e1 / scale) ** 2, axis=1)), rtol=1e-12)


def test_compiled_engine_norm_is_the_rms_over_tokens(rng):
    e = rng.normal(size=(6, 3)) * np.linspace(0.1, 3.0, 6)[:, None]
    scale = rng.uniform(0.5, 2.0, size=6)
    ratios = np.linalg.norm(e, axis=1) / scale
    value = _rms_ratio(e, scale)
    assert value == pytest.approx(np.sqrt(np.mean(ratios**2)), rel=1e-12)
    assert np.max(ratios) > 1.05 * value


# -- the whole controller against an independent loop ----------------------------------------

def _reference_counts(field, x0, t_end, rtol, atol):
    """Accepted and rejected steps of the documented controller, one member at a time.

    Dormand-Prince with the coefficients above, err = RMS over tokens of the scaled token
    error, accepted when err <= 1, then the space's retraction and FSAL;
    h <- h min(5, max(0.2, 0.9 err^(-1/5))), no growth right after a rejection, the last
    step cut to land on t_end. The first step is the package's (``initial_step``).
    """
    batch = x0.shape[0]
    f0 = field(np.zeros(batch), x0)
    h0 = initial_step(field, np.zeros(batch), x0, f0, 5, rtol, atol, t_end)
    counts = []
    for m in range(batch):
        def f(t, x):
            return field(t, x[None])[0]

        t, x, h, k1 = 0.0, x0[m], float(h0[m]), f0[m]
        accepted = rejected = 0
        just_rejected = False
        while t < t_end:
            h_try = min(h, t_end - t)
            ks = [k1]
            for c, row in zip(DP_C[1:], DP_A[1:], strict=True):
                stage = x + h_try * sum(float(a) * k for a, k in zip(row, ks, strict=False))
                ks.append(f(t + float(c) * h_try, stage))
            y = x + h_try * sum(float(b) * k for b, k in zip(DP_B, ks, strict=True))
            e = h_try * sum(float(b - b4) * k for b, b4, k in zip(DP_B, DP_B4, ks, strict=True))
            err = float(np.sqrt(np.mean(_token_ratios(e, x, y, rtol, atol) ** 2)))
            factor = min(5.0, max(0.2, 0.9 * max(err, 1e-10) ** -0.2))
            if err <= 1.0:
                if just_rejected:
                    factor = min(factor, 1.0)
                h = max(h, h_try * factor) if h_try < h else h_try * factor
                t, x, k1 = t + h_try, field.space.retract(y[None])[0], ks[-1]
                accepted += 1
                just_rejected = False
            else:
                h = h_try * factor
                rejected += 1
                just_rejected = True
        counts.append((accepted, rejected))
    return np.array(counts).T


@pytest.mark.parametrize("engine", ["native", "compiled"])
def test_step_counts_on_the_sphere_match_an_independent_controller(engine, rng):
    """SA on S^2 with 6 tokens (n > d: no reduction, the token norm of d = 3 vectors)."""
    x0 = rng.normal(size=(3, 6, 3))
    x0 /= np.linalg.norm(x0, axis=-1, keepdims=True)
    t_end = 20.0
    traj = simulate(SA(9.0), x0, [0.0, t_end], method="dopri5", engine=engine, reduce=False)
    accepted, rejected = _reference_counts(SA(9.0).on(x0), x0, t_end, RTOL, ATOL)
    np.testing.assert_array_equal(traj.accepted_steps, accepted)
    np.testing.assert_array_equal(traj.rejected_steps, rejected)
    assert rejected.sum() > 0  # the rejection branch is exercised


# -- against scipy ---------------------------------------------------------------------------

class ScipyTsit5(scipy_rk.RungeKutta):
    """Tsitouras 5(4) in scipy's RungeKutta (no dense output): scipy's controller around
    the tableau whose order conditions ``test_scheme_order`` checks."""

    order, error_estimator_order, n_stages = 5, 4, 6
    C = np.array(TSIT5.c[:6])
    A = np.array([list(row) + [0.0] * (6 - len(row)) for row in TSIT5.a[:6]])
    B = np.array(TSIT5.b[:6])
    E = np.array(TSIT5.b_error)
    P = np.zeros((7, 1))


SCIPY_SOLVERS = {"dopri5": scipy_rk.RK45, "tsit5": ScipyTsit5}
TABLEAUX = {"dopri5": DOPRI5, "tsit5": TSIT5}


@pytest.fixture
def scipy_with_the_package_factors(monkeypatch):
    assert (scipy_rk.SAFETY, scipy_rk.MIN_FACTOR) == (adaptive.SAFETY, adaptive.SHRINK)
    monkeypatch.setattr(scipy_rk, "MAX_FACTOR", adaptive.GROW)


def _scipy_counts(method, field, x0, t_end, rtol, atol):
    """(accepted, rejected, final states) of scipy's controller, member by member, started
    from the package's first step."""
    batch = x0.shape[0]
    f0 = field(np.zeros(batch), x0)
    tab = TABLEAUX[method]
    h0 = initial_step(field, np.zeros(batch), x0, f0, tab.order, rtol, atol, t_end)
    accepted, rejected, final = [], [], []
    for m in range(batch):
        solver = SCIPY_SOLVERS[method](
            lambda t, y: np.asarray(field(t, y.reshape((1, *x0.shape[1:]))))[0].ravel(),
            0.0, x0[m].ravel(), t_end, rtol=rtol, atol=atol, first_step=float(h0[m]))
        steps = 0
        while solver.status == "running":
            assert solver.step() is None
            steps += 1
        assert solver.status == "finished"
        accepted.append(steps)
        rejected.append((solver.nfev - 1) // solver.n_stages - steps)
        final.append(solver.y.reshape(x0.shape[1:]))
    return np.array(accepted), np.array(rejected), np.array(final)


@pytest.mark.usefixtures("scipy_with_the_package_factors")
@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
@pytest.mark.parametrize("engine", ["native", "compiled"])
def test_circle_step_counts_match_scipy(method, engine, rng):
    """CircleSA in angles: scalar tokens, so the package's norm is scipy's."""
    theta = rng.uniform(-np.pi, np.pi, size=(3, 8))
    t_end = 10.0
    traj = simulate(CircleSA(2.0), theta, [0.0, t_end], method=method, engine=engine)
    accepted, rejected, final = _scipy_counts(method, CircleSA(2.0).on(theta), theta, t_end,
                                              RTOL, ATOL)
    np.testing.assert_array_equal(traj.accepted_steps, accepted)
    np.testing.assert_array_equal(traj.rejected_steps, rejected)
    assert rejected.sum() > 0
    # the same steps: the same states to rounding
    assert np.abs(traj.final - final).max() < 1e-12


@pytest.mark.usefixtures("scipy_with_the_package_factors")
@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_time_dependent_step_counts_match_scipy(method, rng):
    """The numpy driver on a time-dependent field of scalar tokens (d = 1) in R^n: per-member
    clocks, stage times t + c_i h and the norm, against scipy."""
    field = Forced(W=np.array([[1.5]]))
    x0 = rng.normal(size=(3, 5, 1)) * np.array([0.5, 2.0, 8.0])[:, None, None]
    t_end = 8.0
    traj = simulate(field, x0, [0.0, t_end], method=method)
    accepted, rejected, final = _scipy_counts(method, field, x0, t_end, RTOL, ATOL)
    np.testing.assert_array_equal(traj.accepted_steps, accepted)
    np.testing.assert_array_equal(traj.rejected_steps, rejected)
    assert np.abs(traj.final - final).max() < 1e-11
