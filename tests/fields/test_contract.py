"""The field contract (dynamics.fields.base): what every field promises, checked on each."""

import numpy as np
import pytest

from dynamics import (
    SA,
    USA,
    Field,
    Kuramoto,
    LieTrotter,
    MultiHeadAttention,
    Noisy,
    PeriLN,
    PreLN,
    PureSelfAttention,
    RescaledSelfAttention,
    simulate,
    uniform_sphere,
)
from dynamics.fields.base import per_member
from dynamics.fields.feedforward import FeedForward
from dynamics.reduced import span_basis, to_span


def _span_preserving(rng):
    """Fields with V = I: every velocity is a combination of the tokens."""
    d = 7
    QK = rng.standard_normal((d, d))
    return {
        "SA": SA(1.7, QK=QK),
        "USA-causal": USA(0.8, causal=True),
        "multihead": MultiHeadAttention((SA(1.0), SA(-0.5, Q=rng.standard_normal((3, d)),
                                                         K=rng.standard_normal((3, d))))),
        "PreLN": PreLN(2.0, QK=QK),
        "PeriLN": PeriLN(1.0),
        "rescaled": RescaledSelfAttention(PureSelfAttention(0.9, QK=QK)),
    }


@pytest.mark.parametrize("name", list(_span_preserving(np.random.default_rng(0))))
def test_restriction_is_the_field_in_span_coordinates(rng, name):
    """Span invariance: with y = x U (U orthonormal, span(U) holding the tokens),
    f_U(t, y) = f(t, x) U for every span-preserving field, wrappers included."""
    field = _span_preserving(rng)[name]
    assert field.span_preserving
    x = uniform_sphere(seed=int(rng.integers(1 << 30)), batch=3, n=5, d=7)
    x = x * rng.uniform(0.5, 2.0, size=(3, 5, 1))  # R^d fields see the norms too
    basis = span_basis(x)
    y = to_span(x, basis)
    full = field.on(x)(0.3, x)
    reduced = field.on(x).restricted(basis)(0.3, y)
    np.testing.assert_allclose(reduced, full @ basis, atol=1e-12)
    # and the velocity lies in the span: nothing is lost by the coordinates
    np.testing.assert_allclose(full @ basis @ np.swapaxes(basis, -1, -2), full, atol=1e-12)


def test_fields_without_the_span_property_refuse_a_restriction(rng):
    ff = FeedForward(w=rng.standard_normal((4, 4)), a=rng.standard_normal((4, 4)))
    for field in (Noisy(SA(1.0), 2.0), LieTrotter(SA(1.0), ff), ff, SA(1.0, V=np.eye(4))):
        assert not field.span_preserving
        with pytest.raises(ValueError, match="span"):
            field.restricted(np.eye(4)[None])


def test_wrappers_forward_the_contract():
    inner = SA(1.0, QK=lambda t: np.eye(3) * (1 + t))
    for wrapper in (Noisy(inner, 1.0), PreLN(), PeriLN()):
        assert wrapper.space.name == ("sphere" if isinstance(wrapper, Noisy) else "euclidean")
    assert Noisy(inner, 1.0).time_dependent and not Noisy(SA(1.0), 1.0).time_dependent
    assert Noisy(SA(1.0), 0.5).sigma == pytest.approx(2.0)
    assert SA(1.0).sigma == 0.0 and SA(1.0).parts == ()


def test_per_member_beta_is_each_members_field(rng):
    """beta (batch,) stored as (batch, 1, 1): member b moves as under SA(beta_b) alone."""
    betas = np.array([0.5, -1.0, 3.0])
    x = uniform_sphere(seed=1, batch=3, n=6, d=4)
    field = SA(betas).on(x)
    assert field.beta.shape == (3, 1, 1)
    together = field(0.0, x)
    for b, beta in enumerate(betas):
        np.testing.assert_allclose(together[b], SA(float(beta))(0.0, x[b:b + 1])[0], atol=1e-13)
    assert per_member(2.5, x) == 2.5
    assert per_member(betas, x[..., 0], rank=3).shape == (3, 1, 1)


def test_fusion_describes_the_same_heads_and_epilogues():
    heads = (SA(1.0), SA(2.0))
    plan = MultiHeadAttention(heads).fusion()
    assert plan.heads == heads and plan.epilogue == "tangent" and plan.drive_epilogue is None
    peri = PeriLN(1.0).fusion()
    assert peri.epilogue == peri.drive_epilogue == "unit" and peri.normalize_inputs
    assert PreLN(1.0).fusion().epilogue is None
    # mixed normalisations, time-dependent beta and angle fields have no fused form
    assert MultiHeadAttention((SA(1.0), USA(1.0))).fusion() is None
    assert SA(lambda t: 1.0 + t).fusion() is None
    assert Kuramoto().fusion() is None
    seen = []

    def build(field, plan):
        seen.append((field, plan))
        return USA(5.0)

    built = Noisy(SA(1.0), 2.0).fused(build)
    assert isinstance(built, Noisy) and built.field == USA(5.0) and built.sigma == 1.0
    assert seen == [(SA(1.0), SA(1.0).fusion())]  # the noise is kept, only its drift fused


def test_simulate_takes_fields_only():
    x0 = uniform_sphere(seed=0, batch=1, n=4, d=3)
    with pytest.raises(TypeError, match=r"dynamics\.Field"):
        simulate(lambda t, x: x, x0, [0.0, 1.0], method="rk4", dt=0.1)
    assert isinstance(SA(1.0), Field)


def test_a_user_field_needs_only_a_space_and_a_velocity():
    """The contract's defaults carry a field with just ``space`` and ``__call__``: here the
    gradient flow of <x, e> on S^2, x' = P_x e, whose every token (not at -e) tends to e
    with 1 - <x, e> decaying like e^{-2t} near the pole."""
    from dataclasses import dataclass

    from dynamics import SPHERE

    pole = np.array([0.0, 0.0, 1.0])

    @dataclass(frozen=True)
    class TowardsThePole(Field):
        space = SPHERE

        def __call__(self, t, x):
            return SPHERE.project(x, np.broadcast_to(pole, x.shape))

    x0 = uniform_sphere(seed=3, batch=2, n=5, d=3)
    traj = simulate(TowardsThePole(), x0, [0.0, 8.0, 10.0], method="rk4", dt=0.01)
    gap = 1.0 - traj.values[..., 2]
    assert gap[:, -1].max() < 1e-5
    np.testing.assert_allclose(gap[:, 2] / gap[:, 1], np.exp(-4.0), rtol=1e-2)
    assert not TowardsThePole().span_preserving and TowardsThePole().fusion() is None
