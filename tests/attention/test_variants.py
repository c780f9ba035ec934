"""The variants' algebra: GQA/MQA/MHA, MFA and MFA-KR, MLA's absorbed path, RoPE and the
distance biases, DMA, SAQ (attention.md §9)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from attention.config import OperatorConfig, assemble, build, init_params
from attention.masks import CAUSAL, FULL
from attention.operator import Operator
from attention.positional import (
    DistanceBias,
    Rope,
    alibi_slopes,
    harmonic_alibi,
    harmonic_number,
    harmonic_slopes,
    linear_distance,
)
from attention.variants.dma import DynamicMaskBias
from attention.variants.mfa import FactorizedHeads
from attention.variants.saq import Staircase, StaircaseCache, quantize, roundtrip
from attention.variants.standard import Projections


def _tokens(rng, B=2, n=12, d=16):
    return rng.standard_normal((B, n, d))


# -- MHA / GQA / MQA ----------------------------------------------------------------------------


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_gqa_equals_mha_with_copied_key_value_heads(rng, groups):
    """gqa(g) = mha whose key/value heads are copies within groups; g = H is mha, g = 1 mqa."""
    H = 4
    p = init_params(OperatorConfig("gqa", d_model=16, heads=H, groups=groups), rng)
    gqa = assemble(OperatorConfig("gqa", d_model=16, heads=H, groups=groups), p)
    copies = {**p, "heads.W_K": np.repeat(p["heads.W_K"], H // groups, axis=0),
              "heads.W_V": np.repeat(p["heads.W_V"], H // groups, axis=0)}
    mha = assemble(OperatorConfig("mha", d_model=16, heads=H), copies)
    x = _tokens(rng)
    np.testing.assert_allclose(gqa(x), mha(x), rtol=1e-12, atol=1e-13)
    same = OperatorConfig("mqa" if groups == 1 else "mha", d_model=16, heads=H)
    if groups in (1, H):
        np.testing.assert_array_equal(assemble(same, p)(x), gqa(x))


# -- MFA and MFA-KR -----------------------------------------------------------------------------


def test_mfa_is_mqa_with_head_dimension_c_and_matches_its_fpba_form(rng):
    cfg = OperatorConfig("mfa", d_model=16, heads=3, latent_dim=10, query_latent_dim=7)
    p = init_params(cfg, rng)
    mfa = assemble(cfg, p)
    x = _tokens(rng)
    mqa = Operator(Projections(W_Q=p["heads.S_q"] @ p["heads.Q"], W_K=p["heads.S_k"][None],
                               W_V=p["heads.S_v"][None], W_O=p["heads.O"]), mask=CAUSAL)
    np.testing.assert_allclose(mfa(x), mqa(x), rtol=1e-12, atol=1e-13)
    # FPBA: W_c = S_q Q_c S_k^T materialised, U_c = S_v O_c
    out = np.zeros_like(x)
    causal = np.tril(np.ones((12, 12), dtype=bool))
    for c in range(3):
        W = p["heads.S_q"] @ p["heads.Q"][c] @ p["heads.S_k"].T
        s = np.where(causal, x @ W @ np.swapaxes(x, -1, -2) / np.sqrt(10), -np.inf)
        P = np.exp(s - s.max(-1, keepdims=True))
        P /= P.sum(-1, keepdims=True)
        out += P @ x @ (p["heads.S_v"] @ p["heads.O"][c])
    np.testing.assert_allclose(mfa(x), out, rtol=1e-11, atol=1e-12)


def test_mfa_kr_reuses_the_key_as_the_value(rng):
    cfg = OperatorConfig("mfa_kr", d_model=16, heads=3, latent_dim=8)
    p = init_params(cfg, rng)
    op = assemble(cfg, p)
    x = _tokens(rng)
    cache = op.cache(x)
    assert set(cache.tensors) == {"k"} and cache.elements_per_token() == 8
    k, v = op.heads.keys_values(cache.tensors, cache.positions)
    np.testing.assert_array_equal(v, k)  # alpha = 0: vanilla key reuse
    vanilla = assemble(OperatorConfig("mfa", d_model=16, heads=3, latent_dim=8),
                       {**{n: a for n, a in p.items() if n not in ("heads.N", "heads.alpha")},
                        "heads.S_v": p["heads.S_k"]})
    np.testing.assert_allclose(op(x), vanilla(x), rtol=1e-12, atol=1e-13)
    alpha = rng.standard_normal(8)
    gated = assemble(cfg, {**p, "heads.alpha": alpha})
    _, v = gated.heads.keys_values(cache.tensors, cache.positions)
    kx = x @ p["heads.S_k"]
    np.testing.assert_allclose(v[:, 0], kx + alpha * (kx @ p["heads.N"]), rtol=1e-12)


def test_mfa_kr_value_from_the_unrotated_key_under_rope(rng):
    cfg = OperatorConfig("mfa_kr", d_model=16, heads=2, latent_dim=8, rope=True)
    p = {**init_params(cfg, rng), "heads.alpha": rng.standard_normal(8)}
    x = _tokens(rng)
    kx = x @ p["heads.S_k"]
    for value_from, base in (("pre_rope", kx), ("post_rope", Rope()(kx, np.arange(12)))):
        heads = FactorizedHeads(**{k[6:]: a for k, a in p.items()}, key_reuse=True, rope=Rope(),
                                value_from=value_from)
        cache = heads.cache(x, np.arange(12))
        k, v = heads.keys_values(cache, np.arange(12))
        np.testing.assert_allclose(v[:, 0], base + p["heads.alpha"] * (base @ p["heads.N"]),
                                   rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(k[:, 0], Rope()(kx, np.arange(12)), rtol=1e-12, atol=1e-13)


# -- MLA ----------------------------------------------------------------------------------------


def test_mla_absorbed_path_equals_the_full_path(rng):
    cfg = OperatorConfig("mla", d_model=16, heads=4, head_dim=6, latent_dim=10,
                         query_latent_dim=9, rope_dim=4)
    op = build(cfg, rng)
    absorbed = Operator(op.heads.absorb(), mask=op.mask)
    assert absorbed.effective_scale == op.effective_scale == 1 / np.sqrt(6 + 4)
    assert absorbed.heads.n_groups == 1 and absorbed.heads.head_dim == 14  # MQA over c_j
    x = _tokens(rng)
    np.testing.assert_allclose(absorbed(x), op(x), rtol=1e-11, atol=1e-12)
    _, cache = op.prefill(x[:, :9])
    y_full, _ = op.decode(x[:, 9:], np.arange(9, 12), cache)
    y_abs, _ = absorbed.decode(x[:, 9:], np.arange(9, 12), cache)
    np.testing.assert_allclose(y_abs, y_full, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(y_full, op(x)[:, 9:], rtol=1e-11, atol=1e-12)


# -- RoPE and distance biases -------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_rope_scores_depend_on_relative_position_only(rng, layout):
    rope = Rope(layout=layout)
    q, k = rng.standard_normal((9, 8)), rng.standard_normal((9, 8))
    pos = rng.integers(0, 50, 9)
    s = rope(q, pos) @ rope(k, pos).T
    np.testing.assert_allclose(rope(q, pos + 17) @ rope(k, pos + 17).T, s, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(np.linalg.norm(rope(q, pos), axis=-1), np.linalg.norm(q, axis=-1))
    assert not np.allclose(s, q @ k.T)


def test_distance_bias_is_toeplitz_and_reduces_to_rope_without_slopes(rng):
    for bias in (harmonic_alibi(4), DistanceBias(harmonic_slopes(4), linear_distance)):
        table = bias.table(np.arange(11), np.arange(11))
        for h in range(4):
            for off in range(-10, 11):
                assert np.ptp(np.diagonal(table[h], off)) == 0
    x = _tokens(rng)
    cfg = OperatorConfig("rope_alibi", d_model=16, heads=4, slopes="zero")
    p = init_params(cfg, rng)
    rope_only = assemble(OperatorConfig("mha", d_model=16, heads=4, rope=True), p)
    np.testing.assert_allclose(assemble(cfg, p)(x), rope_only(x), rtol=1e-12, atol=1e-13)
    # R = I: the bias-only model, scores <q, k>/sqrt(d_h) - m_h g(|i - j|)
    no_rope = Operator(Projections(**{k[6:]: a for k, a in p.items()}), mask=CAUSAL,
                       bias=harmonic_alibi(4))
    q = x[:, None] @ p["heads.W_Q"]
    k = x[:, None] @ p["heads.W_K"]
    s = q @ np.swapaxes(k, -1, -2) / 2.0 + harmonic_alibi(4).table(np.arange(12), np.arange(12))
    s = np.where(np.tril(np.ones((12, 12), dtype=bool)), s, -np.inf)
    P = np.exp(s - s.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    expected = np.sum(P @ (x[:, None] @ p["heads.W_V"]) @ p["heads.W_O"], axis=1)
    np.testing.assert_allclose(no_rope(x), expected, rtol=1e-12, atol=1e-13)


def test_both_candidate_forms_of_rope_alibi_from_a_config():
    """(a) g = H_r with geometric slopes 2^{-8h/H}; (b) g = r with harmonic slopes 1/h;
    any other g and slopes plug into DistanceBias."""
    pos = np.arange(7)
    r = np.abs(pos[:, None] - pos[None, :])
    H_r = np.array([[sum(1 / k for k in range(1, int(v) + 1)) for v in row] for row in r])
    a = build(OperatorConfig("rope_alibi", d_model=16, heads=4), 0).bias.table(pos, pos)
    b = build(OperatorConfig("rope_alibi", d_model=16, heads=4, slopes="harmonic",
                             distance="linear"), 0).bias.table(pos, pos)
    for h in range(4):
        np.testing.assert_allclose(a[h], -(2.0 ** (-8 * (h + 1) / 4)) * H_r, rtol=1e-14)
        np.testing.assert_allclose(b[h], -r / (h + 1), rtol=1e-14)
    custom = DistanceBias([0.5, 2.0], lambda d: np.sqrt(d)).table(pos, pos)
    np.testing.assert_allclose(custom[1], -2.0 * np.sqrt(r), rtol=1e-14)


def test_harmonic_numbers_and_slopes():
    assert harmonic_number(np.array([0, 1, 2, 3])).tolist() == [0.0, 1.0, 1.5, 11 / 6]
    n = 10**6
    assert abs(harmonic_number(np.array([n]))[0] - np.log(n) - 0.5772156649) < 1e-6
    np.testing.assert_allclose(alibi_slopes(8), [2.0 ** -(k + 1) for k in range(8)])
    np.testing.assert_allclose(harmonic_slopes(3), [1, 1 / 2, 1 / 3])


# -- DMA ----------------------------------------------------------------------------------------


def _dma(rng, form, A, window=None, heads="query"):
    cfg = OperatorConfig("dma", d_model=16, heads=4, groups=2, dma_form=form, window=window,
                         dma_bias_heads=heads)
    p = init_params(cfg, rng)
    p["bias.A"] = np.full(p["bias.A"].shape, A)
    p["bias.b_dt"] = rng.standard_normal(p["bias.b_dt"].shape)
    plain = assemble(OperatorConfig("gqa", d_model=16, heads=4, groups=2),
                     {k: a for k, a in p.items() if k.startswith("heads.")})
    return assemble(cfg, p), plain


def test_dma_with_a_zero_is_standard_attention(rng):
    x = _tokens(rng)
    op, plain = _dma(rng, "linear", 0.0)
    np.testing.assert_array_equal(op.weights(x), plain.weights(x))
    op, plain = _dma(rng, "exp", 0.0, heads="kv")  # bias = e^0 = 1: softmax shift invariance
    np.testing.assert_allclose(op(x), plain(x), rtol=1e-12, atol=1e-13)
    op, _ = _dma(rng, "exp", 1.0, window=12)  # w >= N: the dense mask
    dense = Operator(op.heads, mask=CAUSAL, bias=DynamicMaskBias(op.bias.W_dt, op.bias.b_dt,
                                                                  op.bias.A))
    np.testing.assert_array_equal(op.weights(x) > 0, dense.weights(x) > 0)
    np.testing.assert_allclose(op(x), dense(x), rtol=1e-12)
    narrow = Operator(op.heads, mask=CAUSAL, bias=replace(op.bias, window=11))
    assert not np.allclose(narrow(x), dense(x))  # one key fewer for the last query changes it


def test_dma_top_w_keeps_the_heaviest_visible_keys(rng):
    x = _tokens(rng, n=15)
    for w in (1, 4, 7):
        op, _ = _dma(rng, "exp", 1.0, window=w)
        P = op.weights(x)
        kept = (P > 0).sum(-1)
        expected = np.broadcast_to(np.minimum(w, np.arange(1, 16)), kept.shape)
        np.testing.assert_array_equal(kept, expected)
        q, k, v, *_ = op._prepare(x, np.arange(15), op.cache(x), 0)
        bias = op.bias.values(q, k, v, None, None)[:, :, 0]
        for i in range(15):
            chosen = P[:, :, i, : i + 1] > 0
            worst_kept = np.where(chosen, bias[..., : i + 1], np.inf).min(-1)
            best_dropped = np.where(chosen, -np.inf, bias[..., : i + 1]).max(-1)
            assert np.all(worst_kept >= best_dropped)


@pytest.mark.parametrize("groups, bias_heads, batch", [(1, "kv", 1), (2, "query", 2)])
def test_dma_decoding_with_top_w_eviction_equals_the_full_forward(rng, groups, bias_heads,
                                                                     batch):
    """Keys outside every head's top-w are dropped for good: the outputs do not change, and
    with one member and one bias head the cache holds exactly min(t + 1, w) tokens."""
    from attention.accounting import kv_elements
    from attention.variants.dma import evicting_decode

    w, N = 3, 14
    cfg = OperatorConfig("dma", d_model=16, heads=4, groups=groups, window=w,
                         dma_bias_heads=bias_heads)
    op = build(cfg, rng)
    x = _tokens(rng, B=batch, n=N)
    for prefix in (1, 5):
        y, lengths = evicting_decode(op, x, prefix=prefix)
        np.testing.assert_allclose(y, op(x), rtol=1e-12, atol=1e-13)
        heads_with_a_bias = op.bias.W_dt.shape[1]
        t = np.arange(prefix - 1, N)
        assert np.all(np.asarray(lengths) <= np.minimum(t + 1, w * batch * heads_with_a_bias))
        if batch == 1 and heads_with_a_bias == 1:
            assert lengths == np.minimum(t + 1, w).tolist()
        else:
            assert max(lengths) > w  # the heads keep different keys: their union is cached
    _, cache = op.prefill(x)
    assert cache.elements_per_token() == kv_elements(cfg) == 2 * groups * 4
    with pytest.raises(ValueError, match="window"):
        evicting_decode(Operator(op.heads, mask=CAUSAL, bias=replace(op.bias, window=None)), x)


def test_dma_bias_depends_on_the_key_only(rng):
    x = _tokens(rng, n=10)
    op, _ = _dma(rng, "exp", 1.0, window=4)
    op = Operator(op.heads, mask=FULL, bias=op.bias)
    perm = rng.permutation(10)
    cache = op.cache(x)
    y = op.attend(x, np.arange(10), cache)
    y_perm = op.attend(x[:, perm], np.arange(10), cache)
    np.testing.assert_allclose(y_perm, y[:, perm], rtol=1e-12, atol=1e-13)


def test_dma_gradients_reach_a_and_w_dt(rng):
    cfg = OperatorConfig("dma", d_model=8, heads=2, groups=1, dma_form="exp")
    p = {k: torch.tensor(a, requires_grad=True) for k, a in init_params(cfg, rng).items()}
    x = torch.as_tensor(_tokens(rng, n=6, d=8))
    probe = torch.as_tensor(rng.standard_normal((2, 6, 8)))

    def loss(params):
        return (assemble(cfg, params)(x) * probe).sum()

    loss(p).backward()
    for name in ("bias.A", "bias.W_dt"):
        g = p[name].grad
        assert g is not None and torch.all(torch.isfinite(g)) and g.abs().max() > 0
        direction = torch.as_tensor(rng.standard_normal(g.shape)) * 1e-6
        plus = loss({**p, name: p[name].detach() + direction})
        minus = loss({**p, name: p[name].detach() - direction})
        fd = (plus - minus) / 2
        torch.testing.assert_close(fd, (g * direction).sum(), rtol=1e-6, atol=1e-15)


# -- SAQ ----------------------------------------------------------------------------------------


def test_saq_at_sixteen_bits_is_mqa(rng):
    cfg = OperatorConfig("saq", d_model=16, heads=4, saq_group=4, saq_bits=(16, 16),
                         saq_quant_group=2)
    p = init_params(cfg, rng)
    x = _tokens(rng, n=13)
    mqa = assemble(OperatorConfig("mqa", d_model=16, heads=4), p)
    np.testing.assert_array_equal(assemble(cfg, p)(x), mqa(x))
    quantised = assemble(OperatorConfig("saq", d_model=16, heads=4, saq_group=4,
                                        saq_bits=(4, 2), saq_quant_group=2), p)
    assert not np.allclose(quantised(x), mqa(x))


def test_quantisation_error_is_at_most_half_a_step(rng):
    x = rng.standard_normal((3, 16, 5)) * rng.uniform(0.1, 10, (3, 1, 5))
    for bits in range(1, 9):
        codes, scale, zero = quantize(x, bits, axis=-2)
        assert codes.min() >= 0 and codes.max() <= 2**bits - 1
        assert np.all(np.abs(codes * scale + zero - x) <= scale / 2 * (1 + 1e-12) + 1e-15)
    constant = np.full((2, 4, 3), 1.7)
    np.testing.assert_array_equal(roundtrip(constant, 3, "key", 2), constant)


def test_staircase_bits_fall_with_age_and_match_the_memory_formula(rng):
    schedule = Staircase(group=4, bits=(8, 6, 3, 2), quant_group=2)
    for kind in ("key", "value"):
        cache = StaircaseCache(schedule, kind)
        history = []
        for _ in range(9):
            cache.append(rng.standard_normal((1, int(rng.integers(1, 7)), 3)))
            widths = cache.token_bits()
            assert np.all(np.diff(widths) >= 0)  # newer tokens never have fewer bits
            assert cache.stored_bits() == schedule.stored_bits(widths.size)
            history.append(widths)
        assert all(np.all(np.diff(g.history) <= 0) for g in cache.groups)  # never more bits
        N = history[-1].size
        s_n, r = divmod(N, 4)
        assert s_n >= 3  # the closed form of attention.md §5.2 with r residual tokens
        assert cache.stored_bits() == r * 16 + 4 * (8 + 6 + 3) + (N - r - 3 * 4) * 2
        assert cache.values().shape == (1, N, 3)


def test_staircase_values_are_within_the_accumulated_steps(rng):
    """Each token's stored value is its original up to one half-step per quantisation it
    went through (errors accumulate with the staircase)."""
    schedule = Staircase(group=4, bits=(6, 4), quant_group=4)
    x = rng.standard_normal((1, 22, 3))
    cache = StaircaseCache(schedule, "key")
    cache.append(x)
    assert cache.token_bits().tolist() == [4] * 16 + [6] * 4 + [16] * 2
    err = np.abs(cache.values() - x)
    assert np.all(err[:, 20:] == 0)  # the residual is exact
    for start in range(0, 20, 4):
        group = x[:, start : start + 4]
        step6 = (group.max(-2) - group.min(-2)) / (2**6 - 1)
        step4 = (group.max(-2) - group.min(-2)) / (2**4 - 1)
        bound = step6 / 2 + (step4 / 2 if start < 16 else 0)
        assert np.all(err[:, start : start + 4] <= bound[:, None] * (1 + 1e-12))


def test_saq_value_mode_selects_the_value_quantisation_axis(rng):
    from attention.variants.saq import StaircaseQuantizer

    v = rng.standard_normal((1, 1, 12, 6))
    for mode, kind in (("token", "value"), ("channel", "key")):
        schedule = Staircase(group=4, bits=(3,), quant_group=2, value_mode=mode)
        cache = StaircaseCache(schedule, kind)
        cache.append(v)
        np.testing.assert_array_equal(StaircaseQuantizer(schedule)({"v": v})["v"], cache.values())
    per_token = StaircaseQuantizer(Staircase(4, (3,), 2, "token"))({"v": v})["v"]
    per_channel = StaircaseQuantizer(Staircase(4, (3,), 2, "channel"))({"v": v})["v"]
    assert not np.allclose(per_token, per_channel)
