"""CDMoE (Wonderful Matrices §6.4): product-key retrieval is the exact top k, the mixture
equals a per-token loop over the full score table, it acts token by token, and as a field
it is the second part of a Lie-Trotter block."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from attention.activations import silu
from attention.array_api import from_numpy, to_numpy
from attention.moe import CrossDomainMoE, cdmoe, full_scores, product_key_top_k, top_k
from attention.ssd import StateSpaceDuality
from dynamics import EUCLIDEAN, SA, SPHERE, LieTrotter, normalize, simulate
from dynamics.fields.moe import CDMoE
from dynamics.fields.ssd import SSDField


def _moe(rng, d=6, hidden=5, experts=16, heads=2, k=3, r=4, bias=True, **kw):
    moe = CrossDomainMoE.init(d, hidden, experts, heads, k, r, bias=bias,
                              seed=int(rng.integers(1 << 30)), **kw)
    if bias:  # nonzero biases, so that they are tested too
        moe = replace(moe, b_gate=rng.standard_normal(hidden), b_up=rng.standard_normal(hidden),
                      b_down=rng.standard_normal(d))
    return moe


def _naive(moe: CrossDomainMoE, x: np.ndarray) -> np.ndarray:
    """One token at a time, from the definition: every one of the E = s^2 expert scores,
    the k best by a full sort, softmax over them, rank-one experts, plus the SwiGLU."""
    s, H, E, k = moe.sub_keys, moe.heads, moe.experts, moe.k
    flat = x.reshape(-1, x.shape[-1])
    out = np.zeros_like(flat)
    for t, xt in enumerate(flat):
        gate = xt @ moe.W_gate + moe.b_gate
        y = (gate / (1 + np.exp(-gate)) * (xt @ moe.W_up + moe.b_up)) @ moe.W_down + moe.b_down
        for h in range(H):
            q = xt @ moe.W_q[h]
            half = q.size // 2
            score = np.empty(E)
            for a in range(s):
                for b in range(s):
                    score[a * s + b] = (q[:half] @ moe.keys[h, 0, a]
                                        + q[half:] @ moe.keys[h, 1, b])
            best = np.argsort(-score)[:k]
            w = np.exp(score[best] - score[best].max())
            w /= w.sum()
            for e, we in zip(best, w, strict=True):
                g = xt @ moe.down_embed[e]
                y = y + g / (1 + np.exp(-g)) * we * moe.up_embed[e]
        out[t] = y
    return out.reshape(x.shape)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_product_keys_find_the_true_top_k(rng, backend):
    """On random queries and keys, the top k of the k^2 sums over each half's top k are
    the top k of the whole s^2 table, in the same order, with the same scores."""
    for s, k, r in ((4, 1, 2), (5, 3, 6), (8, 8, 4), (16, 5, 8)):
        q = from_numpy(rng.standard_normal((3, 7, 2, r)), backend)
        keys = from_numpy(rng.standard_normal((2, 2, s, r // 2)), backend)
        table = to_numpy(full_scores(q, keys))
        assert table.shape == (3, 7, 2, s * s)
        scores, idx = product_key_top_k(q, keys, k)
        scores, idx = to_numpy(scores), to_numpy(idx)
        np.testing.assert_array_equal(idx, np.argsort(-table, axis=-1)[..., :k])
        np.testing.assert_allclose(scores, -np.sort(-table, axis=-1)[..., :k], rtol=1e-13)
        # the index is a s + b: the score is the sum of the halves' sub-key scores
        a, b = idx // s, idx % s
        qn, kn = to_numpy(q), to_numpy(keys)
        half = r // 2
        s1 = np.einsum("...hr,hsr->...hs", qn[..., :half], kn[:, 0])
        s2 = np.einsum("...hr,hsr->...hs", qn[..., half:], kn[:, 1])
        np.testing.assert_allclose(scores, np.take_along_axis(s1, a, -1)
                                   + np.take_along_axis(s2, b, -1), rtol=1e-13)


def test_top_k_orders_largest_first():
    v, i = top_k(np.array([[0.5, 3.0, -1.0, 2.0]]), 3)
    np.testing.assert_array_equal(i, [[1, 3, 0]])
    np.testing.assert_array_equal(v, [[3.0, 2.0, 0.5]])


@pytest.mark.parametrize("k", [1, 3, 4])
def test_cdmoe_equals_a_per_token_loop(rng, k):
    moe = _moe(rng, k=k)
    x = rng.standard_normal((2, 5, 6))
    np.testing.assert_allclose(moe(x), _naive(moe, x), rtol=1e-12, atol=1e-13)
    params = {n: getattr(moe, n) for n in CrossDomainMoE.ARRAYS}
    np.testing.assert_allclose(cdmoe(x, params, k), moe(x), rtol=0, atol=0)


def test_the_weights_of_each_head_sum_to_one(rng):
    """With sigma = 1 on the experts (and no shared part) and every u_e = 1, the output
    is sum_h sum_e softmax(s^h)_e 1 = H 1: each head's top-k weights sum to one."""
    moe = _moe(rng, heads=3, k=4, bias=False, activation=lambda z: z * 0 + 1)
    moe = replace(moe, W_down=np.zeros_like(moe.W_down), up_embed=np.ones_like(moe.up_embed))
    x = rng.standard_normal((2, 5, 6))
    np.testing.assert_allclose(moe(x), 3.0, rtol=1e-14)


def test_it_acts_token_by_token(rng):
    """Permuting the tokens permutes the outputs; a token's output does not depend on
    the others (alone or in a sequence: the same numbers)."""
    moe = _moe(rng)
    x = rng.standard_normal((2, 7, 6))
    y = moe(x)
    perm = rng.permutation(7)
    np.testing.assert_allclose(moe(x[:, perm]), y[:, perm], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(moe(x[1, 4]), y[1, 4], rtol=1e-14, atol=1e-15)
    field = CDMoE(moe, EUCLIDEAN)
    np.testing.assert_allclose(field(0.0, x[:, perm]), field(0.0, x)[:, perm], atol=1e-15)


@pytest.mark.parametrize("space", [SPHERE, EUCLIDEAN])
def test_field_is_the_projected_mixture(rng, space):
    moe = _moe(rng)
    field = CDMoE(moe, space)
    x = normalize(rng.standard_normal((2, 5, 6)))
    v = field(0.3, x)
    y = _naive(moe, x)
    if space is SPHERE:
        np.testing.assert_allclose(np.sum(x * v, axis=-1), 0.0, atol=1e-13)  # tangent
        y = y - np.sum(x * y, axis=-1, keepdims=True) * x
    np.testing.assert_allclose(v, y, rtol=1e-12, atol=1e-13)
    assert not field.time_dependent


def _retract(y):
    return y / np.linalg.norm(y, axis=-1, keepdims=True)


@pytest.mark.parametrize("attention", ["SA", "SSD"])
def test_lie_trotter_euler_step_is_attention_then_moe(rng, attention):
    """One Euler step of LieTrotter(attention, CDMoE) = an attention step, retracted, then
    a CDMoE step from there (a Cheems block when the attention part is SSD)."""
    h = 0.05
    first = SA(1.5) if attention == "SA" else SSDField(
        StateSpaceDuality.init(6, 2, 4, head_dim=3, seed=int(rng.integers(1 << 30)),
                               output=True))
    moe = CDMoE(_moe(rng))
    x0 = normalize(rng.standard_normal((2, 5, 6)))
    got = simulate(LieTrotter(first, moe), x0, [0.0, 2 * h], method="euler", dt=h,
                   reduce=False).final
    x = x0
    for k in range(2):
        x = _retract(x + h * first(k * h, x))
        x = _retract(x + h * moe(k * h, x))
    np.testing.assert_allclose(got, x, atol=1e-14)
    joint = simulate(first, x0, [0.0, 2 * h], method="euler", dt=h, reduce=False).final
    assert np.abs(got - joint).max() > 1e-4  # the MoE part did act


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backends_agree_with_numpy(rng, backend):
    field = CDMoE(_moe(rng))
    x = normalize(rng.standard_normal((2, 5, 6)))
    other = from_numpy(x, backend)
    got = to_numpy(field.on(other)(0.0, other))
    np.testing.assert_allclose(got, field(0.0, x), rtol=1e-12, atol=1e-13)


def test_the_paper_code_layout(rng):
    """The Cheems module's forward (transcribed: queries viewed (2, H, r/2), keys
    (H, s, 2, r/2), torch.topk twice, softmax over the k scores) gives the same numbers
    with the weights mapped as the attention.moe docstring says."""
    d, m, H, s, r, k = 6, 5, 2, 4, 4, 3
    moe = _moe(rng, d=d, hidden=m, heads=H, experts=s * s, r=r, k=k)
    t = {n: torch.as_tensor(getattr(moe, n)) for n in CrossDomainMoE.ARRAYS}
    halves = t["W_q"].reshape(H, d, 2, r // 2).permute(2, 0, 3, 1)  # (2, H, r/2, d)
    queries_weight = halves.reshape(2 * H * (r // 2), d)
    cheems_keys = t["keys"].permute(0, 2, 1, 3)  # (H, s, 2, r/2)
    x = torch.as_tensor(rng.standard_normal((2, 5, d)))
    bsz, seq_len, _ = x.shape
    queries = (x @ queries_weight.T).view(bsz, seq_len, 2, H, -1).permute(2, 0, 1, 3, 4)
    sim = torch.einsum("p b t h n, h k p n -> p b t h k", queries, cheems_keys)
    (sx, sy), (ix, iy) = sim.topk(k, dim=-1)
    all_scores = (sx.unsqueeze(-1) + sy.unsqueeze(-2)).reshape(*sx.shape[:-1], -1)
    all_idx = (ix.unsqueeze(-1) * s + iy.unsqueeze(-2)).reshape(*ix.shape[:-1], -1)
    scores, pk = all_scores.topk(k, dim=-1)
    idx = all_idx.gather(-1, pk)
    down, up = t["down_embed"][idx], t["up_embed"][idx]
    act = torch.nn.functional.silu
    w = act(torch.einsum("b t d, b t h k d -> b t h k", x, down)) * scores.softmax(dim=-1)
    experts = torch.einsum("b t h k, b t h k d -> b t d", w, up)
    shared = (act(x @ t["W_gate"] + t["b_gate"]) * (x @ t["W_up"] + t["b_up"])) @ t["W_down"] \
        + t["b_down"]
    np.testing.assert_allclose(moe(x.numpy()), (shared + experts).numpy(), rtol=1e-12,
                               atol=1e-13)
    np.testing.assert_allclose(silu(np.linspace(-3, 3, 7)),
                               act(torch.linspace(-3, 3, 7, dtype=torch.float64)).numpy())


def test_gradients_reach_every_weight(rng):
    moe = _moe(rng)
    params = {n: torch.tensor(getattr(moe, n), requires_grad=True)
              for n in CrossDomainMoE.ARRAYS}
    y = CrossDomainMoE(**params, k=moe.k)(torch.as_tensor(rng.standard_normal((2, 5, 6))))
    y.square().sum().backward()
    for name, p in params.items():
        assert p.grad is not None and p.grad.abs().max() > 0, name


def test_bad_input(rng):
    moe = _moe(rng, bias=False)
    arrays = {n: getattr(moe, n) for n in CrossDomainMoE.ARRAYS if getattr(moe, n) is not None}
    with pytest.raises(ValueError, match=r"k = 5 experts per head must lie in \[1, 4\]"):
        CrossDomainMoE(**arrays, k=5)
    with pytest.raises(ValueError, match=r"k = 0"):
        CrossDomainMoE(**arrays, k=0)
    with pytest.raises(ValueError, match="must lie in"):
        CrossDomainMoE.init(6, 5, 16, 2, k=17)
    with pytest.raises(ValueError, match="perfect square"):
        CrossDomainMoE.init(6, 5, 15, 2, k=2)
    with pytest.raises(ValueError, match=r"W_up must have shape \(6x5\)"):
        CrossDomainMoE(**{**arrays, "W_up": np.ones((6, 4))}, k=2)
    with pytest.raises(ValueError, match=r"W_q must have shape \(\?x6x\?\)"):
        CrossDomainMoE(**{**arrays, "W_q": np.ones((2, 5, 4))}, k=2)
    with pytest.raises(ValueError, match="even number of columns"):
        CrossDomainMoE(**{**arrays, "W_q": np.ones((2, 6, 3))}, k=2)
    with pytest.raises(ValueError, match="9 experts"):
        CrossDomainMoE(**{**arrays, "down_embed": np.ones((9, 6)), "up_embed": np.ones((9, 6))},
                       k=2)
    with pytest.raises(ValueError, match=r"b_down must have shape \(6,\)"):
        CrossDomainMoE(**arrays, b_down=np.ones(5), k=2)
    bad = arrays["up_embed"].copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="up_embed contains 1 NaN or infinite"):
        CrossDomainMoE(**{**arrays, "up_embed": bad}, k=2)
    with pytest.raises(ValueError, match="activation"):
        CrossDomainMoE(**arrays, k=2, activation="swish")
    with pytest.raises(TypeError, match="integer"):
        CrossDomainMoE(**arrays, k=2.0)
    with pytest.raises(ValueError, match="6 features"):
        moe(np.ones((2, 3, 5)))
    with pytest.raises(ValueError, match="d = 6"):
        CDMoE(moe).check(np.ones((1, 3, 5)))
    with pytest.raises(TypeError, match="CrossDomainMoE"):
        CDMoE(np.eye(3))
    with pytest.raises(ValueError, match="same space"):
        LieTrotter(SA(1.0), CDMoE(moe, EUCLIDEAN))


@pytest.mark.slow
def test_the_diffrax_path_agrees(rng):
    """JAX states through diffrax (the weights shared by the members, batch_shared) give
    the numpy adaptive solution of LieTrotter(SSD, CDMoE). (SSD without RoPE here: the
    diffrax path traces RoPE's float base and cannot evaluate its host tables.)"""
    import jax.numpy as jnp

    ssd = StateSpaceDuality.init(6, 2, 4, head_dim=3, seed=int(rng.integers(1 << 30)),
                                 output=True, rope=None)
    field = LieTrotter(SSDField(ssd, form="quadratic"), CDMoE(_moe(rng)))
    x0 = normalize(rng.standard_normal((3, 5, 6)))
    kw = dict(rtol=1e-10, atol=1e-12, reduce=False)
    ref = simulate(field, x0, [0.0, 1.0], **kw).final
    got = simulate(field, jnp.asarray(x0), [0.0, 1.0], engine="diffrax", **kw).final
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-6)
    assert np.abs(ref - x0).max() > 0.05
