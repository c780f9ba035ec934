"""Predicted against simulated limit geometry, and the value-spectrum figure."""

import numpy as np
import pytest

from attention.diagnostics import diagnose, diagnose_layers
from attention.operator import Operator
from attention.variants.standard import Projections
from experiments.diagnostics import compare_prediction, plot_value_spectra


def test_simple_leading_eigenvalue_tokens_align_with_plus_minus_e1(rng):
    """V = diag(2, 1, 1, 1), Q = K = I in R^4 (2305.05465 Thm 4.1): the directions of the
    tokens tend to +-e_1."""
    d = 4
    op = Operator(Projections(W_V=np.diag([2.0, 1, 1, 1])[None], d=d), scale=1.0)
    x0 = rng.standard_normal((2, 10, d))
    cmp = compare_prediction(op, x0, t_end=7.0, dt=0.05)
    assert cmp.space == "euclidean" and "Thm 4.1" in cmp.result.source
    np.testing.assert_allclose(np.abs(cmp.result.basis[:, 0]), [1, 0, 0, 0], atol=1e-12)
    assert np.all(cmp.subspace_mass > 0.999)
    assert np.all(cmp.clusters <= 2) and np.all(cmp.agrees())
    assert np.all(np.abs(np.abs(cmp.directions[..., 0]) - 1) < 1e-3)
    # the prediction is not trivially met at the start
    u0 = x0 / np.linalg.norm(x0, axis=-1, keepdims=True)
    assert np.all(np.mean(u0[..., 0] ** 2, axis=-1) < 0.9)


def test_identity_value_on_the_sphere_gives_one_cluster(rng):
    op = Operator(Projections(d=3), scale=1.0)
    cmp = compare_prediction(op, rng.standard_normal((2, 8, 3)), t_end=20.0, dt=0.05)
    assert cmp.space == "sphere" and "Thm 6.1" in cmp.result.source
    assert np.all(cmp.clusters == 1) and np.all(cmp.agrees())


def test_negative_identity_shrinks_to_the_origin(rng):
    """Thm C.5 (V = -I, Q^T K = I): x_i -> 0, slowly (no rate is claimed)."""
    op = Operator(Projections(W_V=(-np.eye(3))[None], d=3), scale=1.0)
    x0 = rng.standard_normal((2, 6, 3))
    early = compare_prediction(op, x0, t_end=5.0, dt=0.1, setting="euclidean")
    late = compare_prediction(op, x0, t_end=50.0, dt=0.1, setting="euclidean")
    assert late.result.geometry == "origin"
    assert np.all(late.norm_ratio < early.norm_ratio) and np.all(early.norm_ratio < 1)
    assert np.all(late.agrees())


def test_heads_and_settings_are_checked(rng):
    d = 3
    two = Operator(Projections(W_V=np.stack([np.eye(d), 2 * np.eye(d)]), heads=2, d=d),
                   scale=1.0)
    x0 = rng.standard_normal((1, 5, d))
    with pytest.raises(ValueError, match="head="):
        compare_prediction(two, x0, t_end=1.0)
    cmp = compare_prediction(two, x0, t_end=10.0, head=1, dt=0.05)
    assert cmp.diagnostics.head == 1 and np.all(cmp.clusters == 1)
    rot = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="no theorem"):
        compare_prediction(Operator(Projections(W_V=rot[None], d=d)), x0, t_end=1.0)
    with pytest.raises(ValueError, match="setting"):
        compare_prediction(two, x0, t_end=1.0, head=0, setting="torus")


def test_plot_value_spectra_writes_a_figure(rng, tmp_path):
    d = 4
    layers = []
    for heads in (3, 2, 3):
        W_V = rng.standard_normal((heads, d, d))
        W_V[0] = np.diag([2.0, 1, 1, 1])
        layers.append(Operator(Projections(W_Q=rng.standard_normal((heads, d, d)), W_V=W_V,
                                           d=d)))
    layers.append(Operator(Projections(d=d), scale=2.0))
    diags = diagnose_layers(layers)
    path = plot_value_spectra(diags, tmp_path / "spectra.png", title="random layers")
    assert path.exists() and path.stat().st_size > 10_000
    assert plot_value_spectra([diagnose(layers[-1])], tmp_path / "one.pdf").exists()
    with pytest.raises(ValueError, match="no diagnostics"):
        plot_value_spectra([], tmp_path / "none.png")
