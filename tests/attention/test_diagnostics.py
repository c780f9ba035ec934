"""Per-head diagnostics (attention.diagnostics) on hand-built weights with known spectra."""

import math

import numpy as np
import pytest

from attention.config import OperatorConfig, build
from attention.diagnostics import (
    REGIMES,
    diagnose,
    diagnose_layers,
    head_matrices,
    head_operator,
    layer_grid,
)
from attention.masks import CAUSAL
from attention.operator import Operator
from attention.variants.mfa import FactorizedHeads
from attention.variants.standard import Projections


def orthogonal(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def value_operator(V, B=None, **kwargs):
    """One head with W_V W_O = V (W_O = I) and scores x B x^T (scale 1)."""
    d = V.shape[0]
    W_Q = None if B is None else B[None]
    return Operator(Projections(W_Q=W_Q, W_V=V[None], d=d), scale=1.0, **kwargs)


def sources(diag):
    return [r.source for r in diag.results]



def assert_operator_conventions(op, B, V, x, atol):
    """The matrices follow the operator's conventions: scores x B_h x^T (weights atol
    1e-12), and one token maps to x sum_h V_h, one head's operator to x V_h (``atol``)."""
    s = np.einsum("bid,hde,bje->bhij", x, B, x)
    P = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(op.weights(x), P / P.sum(-1, keepdims=True), atol=1e-12)
    one = x[:, :1]
    np.testing.assert_allclose(op(one), one @ V.sum(0), atol=atol)
    for h in range(B.shape[0]):
        np.testing.assert_allclose(head_operator(op, h)(one), one @ V[h], atol=atol)

def test_value_eigenvalues_are_exactly_lambda(rng):
    d, f = 5, 7
    lam = np.array([3.0, -1.0, 0.5, 2.0, -2.5])
    O = orthogonal(rng, d)
    R = np.linalg.qr(rng.standard_normal((f, d)))[0].T  # (d, f), orthonormal rows
    W_V = (O * lam) @ R
    W_O = R.T @ O.T
    op = Operator(Projections(W_V=W_V[None], W_O=W_O[None], d=d))
    (diag,) = diagnose(op)
    np.testing.assert_allclose(diag.value, (O * lam) @ O.T, atol=1e-13)
    np.testing.assert_allclose(diag.value_eigenvalues.real, np.sort(lam)[::-1], atol=1e-12)
    np.testing.assert_allclose(diag.value_eigenvalues.imag, 0.0, atol=1e-12)
    assert diag.leading_eigenvalue == pytest.approx(3.0)
    assert diag.dominance_ratio == pytest.approx(3.0 / 2.5)


def test_complex_value_eigenvalues_sorted_by_real_part():
    a, b = 0.3, 2.0
    V = np.zeros((4, 4))
    V[:2, :2] = [[a, -b], [b, a]]
    V[2, 2], V[3, 3] = 1.0, -4.0
    (diag,) = diagnose(value_operator(V))
    np.testing.assert_allclose(diag.value_eigenvalues, [1.0, a + 1j * b, a - 1j * b, -4.0],
                               atol=1e-13)
    assert diag.dominant_eigenvalue == pytest.approx(-4.0)
    assert diag.leading_vector is None  # the largest modulus is negative


def test_symmetric_positive_definite_query_key(rng):
    d, e = 6, 6
    O = orthogonal(rng, d)
    s, t = rng.uniform(0.5, 2, e), rng.uniform(0.5, 2, e)
    W_Q, W_K = (O * s)[None], (O * t)[None]
    op = Operator(Projections(W_Q=W_Q, W_K=W_K), scale=1 / math.sqrt(e))
    (diag,) = diagnose(op)
    B = (O * (s * t / math.sqrt(e))) @ O.T
    np.testing.assert_allclose(diag.query_key, B, atol=1e-13)
    assert diag.antisymmetric_fraction < 1e-14
    assert diag.symmetric_fraction == pytest.approx(1.0)
    np.testing.assert_allclose(diag.query_key_singular_values,
                               np.sort(s * t)[::-1] / math.sqrt(e), rtol=1e-12)
    assert diag.query_key_spd
    assert diag.effective_beta == pytest.approx(np.linalg.norm(B) / math.sqrt(d))
    assert diag.beta_max == pytest.approx(np.max(s * t) / math.sqrt(e))


def test_gradient_flow_when_value_is_a_multiple_of_a_symmetric_query_key(rng):
    d = 5
    O = orthogonal(rng, d)
    B = (O * rng.uniform(0.5, 2, d)) @ O.T
    for c, way in ((0.7, "ascent"), (-1.3, "descent")):
        (diag,) = diagnose(value_operator(c * B, B))
        assert diag.regime == "gradient-flow"
        r = diag.prediction("sphere")
        assert r.regime == "gradient-flow" and "§3.4" in r.source and way in r.conclusion
        assert f"{1 / abs(c):.6g}" in r.hypotheses
    # a symmetric positive definite B alone is not §3.4's hypothesis
    V = (O * np.array([3.0, 1, 1, 1, 1])) @ O.T
    (diag,) = diagnose(value_operator(V, B))
    assert diag.regime != "gradient-flow" and diag.query_key_spd


def test_rotation_generating_query_key_has_no_symmetric_part(rng):
    d = 4
    A = rng.standard_normal((d, d))
    A = A - A.T
    op = Operator(Projections(W_Q=A[None], d=d), scale=1.0)
    (diag,) = diagnose(op)
    np.testing.assert_allclose(diag.query_key, A)
    np.testing.assert_allclose(diag.query_key_symmetric, 0.0)
    assert diag.symmetric_fraction == 0.0 and diag.antisymmetric_fraction == pytest.approx(1.0)
    assert diag.effective_beta == 0.0 and not diag.query_key_spd


@pytest.mark.parametrize("H, G", [(6, 6), (6, 3), (6, 2), (6, 1)])
def test_group_mapping_matches_an_explicit_loop_and_the_operator(rng, H, G):
    d, e, f = 5, 3, 4
    W_Q, W_K = rng.standard_normal((H, d, e)), rng.standard_normal((G, d, e))
    W_V, W_O = rng.standard_normal((G, d, f)), rng.standard_normal((H, f, d))
    op = Operator(Projections(W_Q=W_Q, W_K=W_K, W_V=W_V, W_O=W_O))
    B, V, group = head_matrices(op)
    diags = diagnose(op)
    for h in range(H):
        g = h // (H // G)
        assert group[h] == g and diags[h].group == g and diags[h].head == h
        np.testing.assert_allclose(B[h], W_Q[h] @ W_K[g].T / math.sqrt(e), rtol=1e-13)
        np.testing.assert_allclose(V[h], W_V[g] @ W_O[h], rtol=1e-13)
        np.testing.assert_allclose(diags[h].value, V[h])
    # the conventions are the operator's: scores x B x^T, and one token maps to x sum_h V_h
    assert_operator_conventions(op, B, V, rng.standard_normal((2, 7, d)), atol=1e-12)


def test_value_multiple_of_identity_is_regime_a(rng):
    d = 4
    Q = rng.standard_normal((d, d))
    (diag,) = diagnose(value_operator(2.5 * np.eye(d), Q))
    assert diag.regime == "identity"
    found = sources(diag)
    assert any("Lemma 6.4" in s for s in found)
    assert not any("Thm 6.1" in s for s in found)  # Q^T K is not a multiple of I
    # Q = K = I at beta: SA itself; Thm 6.1 (d >= 3) gives one point
    (diag,) = diagnose(Operator(Projections(W_V=(0.5 * np.eye(d))[None], d=d), scale=3.0))
    assert diag.regime == "identity"
    r = diag.prediction("sphere")
    assert "Thm 6.1" in r.source and r.clusters == (1, 1) and "beta = b = 3" in r.hypotheses
    assert any("Thm 3.1" in s for s in sources(diag))  # Q^T K = 3 I is positive definite
    # d = 2: the circle result of 2507.22857
    (diag,) = diagnose(Operator(Projections(d=2), scale=1.0))
    assert "2507.22857" in diag.prediction("sphere").source
    # the causal mask: 2411.04990 Thm 4.1
    (diag,) = diagnose(value_operator(np.eye(d), Q, mask=CAUSAL))
    assert diag.regime == "identity" and "2411.04990" in diag.prediction("sphere").source


def test_tolerance_is_relative_and_reported(rng):
    d = 4
    V = np.eye(d) + 1e-9 * rng.standard_normal((d, d))
    assert diagnose(value_operator(V))[0].regime == "identity"
    (diag,) = diagnose(value_operator(V), tol=1e-12)
    assert diag.regime != "identity" and diag.tolerance == 1e-12
    with pytest.raises(ValueError, match="tol"):
        diagnose(value_operator(V), tol=0.0)


def test_simple_leading_eigenvalue_needs_positive_query_key_along_phi1(rng):
    d = 4
    S = rng.standard_normal((d, d)) + 3 * np.eye(d)
    V_paper = S @ np.diag([3.0, 1.0, -0.5, 0.2]) @ np.linalg.inv(S)  # not symmetric
    V = V_paper.T  # the package's row convention
    B = np.diag([1.0, -1.0, -1.0, -1.0])  # indefinite
    phi = S[:, 0] / np.linalg.norm(S[:, 0])
    B = B if phi @ B @ phi > 0 else -B
    (diag,) = diagnose(value_operator(V, B))
    assert diag.regime == "simple-leading" and not diag.query_key_spd
    np.testing.assert_allclose(diag.paper_value @ diag.leading_vector,
                               3.0 * diag.leading_vector, atol=1e-10)
    assert abs(diag.leading_vector @ phi) == pytest.approx(1.0)
    r = diag.prediction("euclidean")
    assert "Thm 4.1" in r.source and r.clusters == (1, 2)
    np.testing.assert_allclose(np.abs(r.basis[:, 0]), np.abs(phi), atol=1e-10)
    # <Q phi_1, K phi_1> < 0: Thm 4.1 does not apply; only the codim conjecture is left
    (diag,) = diagnose(value_operator(V, -B))
    assert diag.regime == "none"
    assert [r.kind for r in diag.results] == ["conjecture"]
    assert diag.prediction() is None


def test_paranormal_value_with_a_multiple_leading_eigenvalue(rng):
    d = 5
    O = orthogonal(rng, d)
    V = (O * np.array([2.0, 2.0, 0.5, -1.0, 1.5])) @ O.T
    A = rng.standard_normal((d, d))
    B = A @ A.T + np.eye(d)  # symmetric positive definite
    (diag,) = diagnose(value_operator(V, B))
    assert diag.regime == "paranormal"
    r = diag.prediction("euclidean")
    assert "Thm 5.1" in r.source and r.basis.shape == (d, 2)
    F = O[:, :2]
    np.testing.assert_allclose(r.basis @ r.basis.T, F @ F.T, atol=1e-10)
    # the same spectrum with an indefinite Q^T K: Thm 5.1 does not apply
    assert diagnose(value_operator(V, B - 10 * np.eye(d)))[0].regime == "none"
    # a Jordan block (not semisimple) is not paranormal
    J = np.diag([2.0, 2.0, 0.5, 0.1, 0.1])
    J[0, 1] = 1.0
    assert diagnose(value_operator(J.T, B))[0].regime == "none"


def test_negative_identity_and_one_dimensional(rng):
    (diag,) = diagnose(Operator(Projections(W_V=(-2.0 * np.eye(3))[None], d=3), scale=0.5))
    assert diag.regime == "negative-identity"
    assert diag.prediction("euclidean").geometry == "origin"
    assert "§9.1" in diag.prediction("sphere").source
    (diag,) = diagnose(value_operator(np.array([[1.5]]), np.array([[2.0]])))
    assert any("Thm 2.1" in s for s in sources(diag))
    assert all(r.setting == "euclidean" for r in diag.results)  # no sphere S^0


def test_effective_beta_definition():
    d, b = 4, 2.5
    op = Operator(Projections(d=d), scale=b)
    (diag,) = diagnose(op)
    assert diag.effective_beta == pytest.approx(b) and diag.beta_max == pytest.approx(b)
    (diag,) = diagnose(op, radius=math.sqrt(d))
    assert diag.effective_beta == pytest.approx(b * d)


def test_caveats_layers_and_grid(rng):
    d = 4
    biased = Operator(Projections(W_Q=rng.standard_normal((2, d, d)), b_Q=np.ones((2, d)),
                                  W_V=np.stack([np.eye(d)] * 2), d=d))
    diags = diagnose(biased)
    assert len(diags) == 2 and all(r in REGIMES for r in (x.regime for x in diags))
    text = " ".join(diags[0].caveats)
    assert "biases are ignored" in text and "2 heads" in text
    one = Operator(Projections(W_V=np.eye(d)[None], d=d))
    layers = diagnose_layers([biased, one])
    assert [x.layer for x in layers[1]] == [0 + 1]
    grid = layer_grid(layers, "leading_real")
    assert grid.shape == (2, 2) and np.isnan(grid[1, 1]) and grid[1, 0] == pytest.approx(1.0)
    assert layer_grid(layers, "antisymmetric_fraction").shape == (2, 2)


@pytest.mark.parametrize("key_reuse", [False, True])
def test_mfa_heads_have_exact_per_head_products(rng, key_reuse):
    """MFA: W_Q^h = S_q Q_h, W_K = S_k, W_V = S_v (MFA-KR: S_k (I + N diag alpha)),
    W_O^h = O_h; checked against the operator's weights and one-token outputs."""
    d, c_q, C, m = 6, 5, 4, 3
    extra = ({"N": rng.standard_normal((C, C)), "alpha": rng.standard_normal(C)} if key_reuse
             else {"S_v": rng.standard_normal((d, C))})
    heads = FactorizedHeads(S_q=rng.standard_normal((d, c_q)),
                            Q=rng.standard_normal((m, c_q, C)),
                            S_k=rng.standard_normal((d, C)), O=rng.standard_normal((m, C, d)),
                            key_reuse=key_reuse, **extra)
    op = Operator(heads)
    B, V, group = head_matrices(op)
    assert B.shape == V.shape == (m, d, d) and np.all(group == 0)
    assert_operator_conventions(op, B, V, rng.standard_normal((2, 5, d)), atol=1e-11)
    assert len(diagnose(op)) == m


def test_unsupported_heads_are_refused_by_name(rng):
    op = build(OperatorConfig("mla", d_model=8, heads=2), rng)
    with pytest.raises(TypeError, match="Projections"):
        diagnose(op)
    op = build(OperatorConfig("mfa", d_model=8, heads=2, latent_dim=6, query_norm=True), rng)
    with pytest.raises(TypeError, match="query_norm"):
        diagnose(op)
    with pytest.raises(TypeError, match="Operator"):
        diagnose(object())
    wide = Operator(Projections(W_O=rng.standard_normal((1, 3, 5)), d=3))
    with pytest.raises(ValueError, match="R\\^d"):
        diagnose(wide)
    with pytest.raises(ValueError, match="head"):
        head_operator(Operator(Projections(d=3)), 1)
