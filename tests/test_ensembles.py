"""Random weight ensembles of Fig. 5 and the 2305.05465 value matrices."""

import math

import numpy as np
import pytest

from attention.array_api import to_numpy
from dynamics import SA
from dynamics.ensembles import (
    PRINTED_V_2305,
    Weights,
    authors_weights,
    figure5_weights,
    from_row_major,
    ginibre,
    goe,
    product,
    value_2305,
    value_norm,
    wigner_code,
    wishart,
)


def within(estimate, target, standard_error, k=5.0):
    return abs(estimate - target) < k * standard_error


def sample_variance_ok(values, variance, kurtosis=3.0, inflation=1.0):
    """Mean-zero sample of the given variance: mean of squares within 5 standard errors
    (Var of x^2 is (kurtosis - 1) variance^2; ``inflation`` accounts for correlated squares)."""
    values = np.asarray(values).ravel()
    se = math.sqrt(inflation * (kurtosis - 1) / values.size) * variance
    return within(np.mean(values**2), variance, se) and within(
        np.mean(values), 0.0, math.sqrt(variance / values.size)
    )


def off_diagonal(m):
    d = m.shape[-1]
    return m[..., ~np.eye(d, dtype=bool)]


def diagonal(m):
    return np.diagonal(m, axis1=-2, axis2=-1)


def test_goe_is_symmetric_with_the_right_variances(rng):
    d = 20
    m = goe(rng, d, batch=300)
    np.testing.assert_array_equal(m, np.swapaxes(m, -1, -2))
    upper = m[:, *np.triu_indices(d, 1)]
    assert sample_variance_ok(upper, 1.0)
    assert sample_variance_ok(diagonal(m), 2.0)


def test_code_wigner_has_unit_variance_everywhere(rng):
    d = 20
    m = wigner_code(rng, d, batch=300)
    np.testing.assert_array_equal(m, np.swapaxes(m, -1, -2))
    assert sample_variance_ok(m[:, *np.triu_indices(d, 1)], 1.0)
    assert sample_variance_ok(diagonal(m), 1.0)


def test_ginibre_and_product_variances(rng):
    d = 16
    g = ginibre(rng, d, batch=200)
    assert sample_variance_ok(g, 1.0 / d)
    assert np.max(np.abs(g - np.swapaxes(g, -1, -2))) > 0.1  # not symmetric
    # (G1 G2)_ij / sqrt(d): a sum of d products of independent N(0,1), variance 1, kurtosis
    # 3 + 6/d; entries sharing a row or column have squares correlated by 1/d (inflation 3)
    p = product(rng, d, batch=200)
    assert sample_variance_ok(p, 1.0, kurtosis=3 + 6 / d, inflation=3.0)


def test_wishart_is_positive_semidefinite_with_mean_sqrt_d(rng):
    d = 12
    w = wishart(rng, d, batch=400)
    np.testing.assert_allclose(w, np.swapaxes(w, -1, -2), atol=1e-12)
    assert np.linalg.eigvalsh(w).min() > -1e-10
    # E[G G^T] = d I, so E w = sqrt(d) I; Var of a diagonal entry = 2d/d = 2
    assert within(diagonal(w).mean(), math.sqrt(d), math.sqrt(2 / (400 * d)))
    assert within(off_diagonal(w).mean(), 0.0, math.sqrt(1 / (400 * d * (d - 1) / 2)))


def test_authors_update_equals_the_field_in_paper_convention(rng):
    """The rotf step uses rows: update = softmax(beta M BF M^T) M V_code. With
    (QK, V) = from_row_major(BF, V_code) the package's drive sum_j A_ij V x_j is the same."""
    batch, n, d, beta = 2, 5, 4, 1.7
    m = rng.standard_normal((batch, n, d))
    m /= np.linalg.norm(m, axis=-1, keepdims=True)
    bf = rng.standard_normal((batch, d, d))
    v_code = rng.standard_normal((batch, d, d))
    logits = beta * m @ bf @ np.swapaxes(m, -1, -2)
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    authors = a @ m @ v_code
    qk, v = from_row_major(bf, v_code)
    np.testing.assert_array_equal(qk, bf)
    np.testing.assert_array_equal(v, np.swapaxes(v_code, -1, -2))
    np.testing.assert_allclose(SA(beta, QK=qk, V=v).drive(0.0, m), authors, atol=1e-13)


@pytest.mark.parametrize(("random_kq", "norm"), [(0, 1.0), (1, None), (2, None), (3, "d+1")])
@pytest.mark.parametrize("random_v", [2, 3])
def test_value_is_plus_minus_the_bilinear_form(rng, random_kq, norm, random_v):
    d = 7
    seed = int(rng.integers(2**31))
    norm_v = {None: math.sqrt(d), "d+1": math.sqrt(d + 1), 1.0: 1.0}[norm]
    assert value_norm(random_kq, d) == norm_v
    sign = 1.0 if random_v == 2 else -1.0
    code = authors_weights(seed, d, random_kq=random_kq, random_v=random_v, batch=3)
    caption = authors_weights(
        seed, d, random_kq=random_kq, random_v=random_v, batch=3, value_from="caption"
    )
    if random_kq == 0:
        assert code.QK is None
        np.testing.assert_array_equal(code.V, np.broadcast_to(sign * np.eye(d), (3, d, d)))
        return
    np.testing.assert_array_equal(code.QK, caption.QK)
    # the code ran V_code = +-BF/normV, i.e. V = +-QK^T/normV in the column convention
    np.testing.assert_array_equal(code.V, sign * np.swapaxes(code.QK, -1, -2) / norm_v)
    np.testing.assert_array_equal(caption.V, sign * caption.QK / norm_v)
    if random_kq in (2, 3):  # symmetric bilinear forms: the two readings coincide
        np.testing.assert_array_equal(code.V, caption.V)
    else:
        assert np.max(np.abs(code.V - caption.V)) > 0.01


def test_authors_flags_identity_and_wishart(rng):
    d = 6
    w = authors_weights(rng, d, random_kq=0, random_v=0)
    assert w.QK is None and w.V is None
    w = authors_weights(rng, d, random_kq=3, random_v=1, batch=2)
    np.testing.assert_allclose(w.V, np.swapaxes(w.V, -1, -2), atol=1e-12)
    assert np.linalg.eigvalsh(w.V).min() > -1e-10
    assert w.as_kwargs().keys() == {"QK", "V"}


def test_per_member_matrices_differ_and_shared_ones_repeat(rng):
    d = 5
    seed = int(rng.integers(2**31))
    for panel in "abcd":
        per_member = figure5_weights(panel, seed, d, batch=3)
        assert per_member.QK.shape == per_member.V.shape == (3, d, d)
        for m in (per_member.QK, per_member.V):
            assert np.max(np.abs(m[0] - m[1])) > 1e-3 and np.max(np.abs(m[1] - m[2])) > 1e-3
        shared = figure5_weights(panel, seed, d)
        assert shared.QK.shape == shared.V.shape == (d, d)
        again = figure5_weights(panel, seed, d)
        np.testing.assert_array_equal(again.QK, shared.QK)
        np.testing.assert_array_equal(again.V, shared.V)
        other = figure5_weights(panel, seed + 1, d)
        assert np.max(np.abs(other.QK - shared.QK)) > 1e-3
    for sampler in (ginibre, product, wigner_code, goe, wishart):
        np.testing.assert_array_equal(sampler(seed, d), sampler(seed, d))
        np.testing.assert_array_equal(sampler(seed, d), sampler(np.random.default_rng(seed), d))


def test_figure5_panels(rng):
    d = 24
    a = figure5_weights("a", rng, d, batch=100)
    # QK = Q^T K with Q, K Ginibre: entries sum_k Q_ki K_kj of variance d (1/d)(1/d) = 1/d
    assert sample_variance_ok(a.QK, 1.0 / d, kurtosis=3 + 6 / d, inflation=3.0)
    assert sample_variance_ok(a.V, 1.0 / d)
    assert np.max(np.abs(a.V - np.swapaxes(a.V, -1, -2))) > 0.1  # V Ginibre, not PSD
    b = figure5_weights("b", rng, d, batch=2)
    np.testing.assert_array_equal(b.QK, np.swapaxes(b.QK, -1, -2))
    assert np.linalg.eigvalsh(b.V).min() > -1e-10
    c = figure5_weights("c", rng, d, batch=2)
    np.testing.assert_array_equal(c.V, np.swapaxes(c.QK, -1, -2) / math.sqrt(d))
    c_caption = figure5_weights("c", rng, d, batch=2, value_from="caption")
    np.testing.assert_array_equal(c_caption.V, c_caption.QK / math.sqrt(d))
    dd = figure5_weights("d", rng, d, batch=2)
    np.testing.assert_array_equal(dd.V, dd.QK / math.sqrt(d + 1))


def test_weights_on_other_backends(rng):
    seed = int(rng.integers(2**31))
    ref = figure5_weights("c", seed, 4, batch=2)
    w = figure5_weights("c", seed, 4, batch=2, backend="torch")
    assert str(w.QK.dtype) == "torch.float64"
    np.testing.assert_array_equal(to_numpy(w.QK), ref.QK)
    np.testing.assert_array_equal(to_numpy(w.V), ref.V)
    j = goe(seed, 4, backend="jax")
    np.testing.assert_array_equal(to_numpy(j), goe(seed, 4))
    assert isinstance(ref, Weights)


def test_2305_value_matrices(rng):
    d = 5
    pf = value_2305("perron-frobenius", d, seed=rng, batch=4)
    assert np.all((pf > 0) & (pf < 1))
    for m in pf:
        # Perron-Frobenius: the spectral radius is a simple positive eigenvalue, with a
        # positive eigenvector
        eigenvalues, vectors = np.linalg.eig(m)
        top = np.argmax(np.abs(eigenvalues))
        assert abs(eigenvalues[top].imag) < 1e-12 and eigenvalues[top].real > 0
        assert np.sum(np.isclose(np.abs(eigenvalues), abs(eigenvalues[top]))) == 1
        vec = vectors[:, top].real
        assert np.all(vec * np.sign(vec[0]) > 0)
    sym = value_2305("symmetric", d, seed=rng)
    np.testing.assert_array_equal(sym, sym.T)
    assert np.all((sym > 0) & (sym < 1))
    np.testing.assert_array_equal(
        value_2305("hyperplanes-polytope", 3), np.diag([1.0, 1.0, -0.5])
    )
    np.testing.assert_array_equal(value_2305("identity", 3, batch=2), np.stack([np.eye(3)] * 2))


def test_printed_2305_examples_have_the_stated_spectra():
    two = np.linalg.eigvals(PRINTED_V_2305["hyperplanes-2d"])
    assert np.all(PRINTED_V_2305["hyperplanes-2d"] > 0) and np.all(np.isreal(two))
    # 3-d examples: Perron root plus a complex pair with negative / positive real part
    for name, sign in (("hyperplanes-3d-a", -1), ("hyperplanes-3d-b", 1)):
        ev = np.linalg.eigvals(PRINTED_V_2305[name])
        pair = ev[np.abs(ev.imag) > 1e-8]
        assert pair.size == 2 and np.all(np.sign(pair.real) == sign)
    ev = np.linalg.eigvalsh(PRINTED_V_2305["codimension-3d"])
    assert (np.sum(ev > 0), np.sum(ev < 0)) == (2, 1)


def test_ensembles_reject_bad_input(rng):
    with pytest.raises(ValueError, match=r"unknown 2305\.05465 value matrix"):
        value_2305("ginibre", 3)
    with pytest.raises(ValueError, match="explicit seed"):
        value_2305("symmetric", 3)
    with pytest.raises(ValueError, match="panels"):
        figure5_weights("e", rng, 4)
    with pytest.raises(ValueError, match="random_kq must be one of"):
        authors_weights(rng, 4, random_kq=4, random_v=0)
    with pytest.raises(ValueError, match="random_v must be one of"):
        authors_weights(rng, 4, random_kq=1, random_v=7)
    with pytest.raises(ValueError, match="value_from"):
        authors_weights(rng, 4, random_kq=1, random_v=2, value_from="paper")
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        goe(rng, 4, batch=0)
    with pytest.raises(ValueError, match="dimension d"):
        goe(rng, 0)
