"""DeepSeek-V3's routed mixture of experts as a map: its routing invariants, backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attention.transformer import GatedMlp, RoutedMoE


def _moe(rng, E=12, groups=3, topk_group=2, top_k=4, d=10, m=6, normalize=True):
    def w(*shape):
        return rng.standard_normal(shape) / np.sqrt(shape[-2] if len(shape) > 1 else 1)

    return RoutedMoE(router=w(E, d), bias=0.3 * rng.standard_normal(E), W_gate=w(E, d, m),
                     W_up=w(E, d, m), W_down=w(E, m, d),
                     shared=GatedMlp(w(d, m), w(d, m), w(m, d)), top_k=top_k, groups=groups,
                     topk_group=topk_group, normalize=normalize, factor=2.5)


def test_routing_picks_top_k_experts_inside_the_best_groups(rng):
    moe = _moe(rng)
    x = rng.standard_normal((2, 9, 10))
    w = moe.weights(x)
    chosen = w > 0
    assert (chosen.sum(-1) == 4).all()
    np.testing.assert_allclose(w.sum(-1), 2.5, rtol=1e-12)  # normalised, times the factor
    scores = 1 / (1 + np.exp(-(x @ moe.router.T)))
    choice = (scores + moe.bias).reshape(2, 9, 3, 4)
    group_score = np.sort(choice, axis=-1)[..., -2:].sum(-1)
    best_groups = np.argsort(-group_score, axis=-1)[..., :2]
    for b in range(2):
        for i in range(9):
            allowed = np.zeros(12, dtype=bool)
            for g in best_groups[b, i]:
                allowed[4 * g:4 * g + 4] = True
            assert not (chosen[b, i] & ~allowed).any()
            flat = np.where(allowed, choice[b, i].ravel(), -np.inf)
            assert set(np.argsort(-flat)[:4]) == set(np.nonzero(chosen[b, i])[0])
            np.testing.assert_allclose(w[b, i][chosen[b, i]],
                                       2.5 * scores[b, i][chosen[b, i]]
                                       / scores[b, i][chosen[b, i]].sum())


def test_output_is_the_weighted_sum_of_the_chosen_experts(rng):
    moe = _moe(rng, normalize=False)
    x = rng.standard_normal((1, 5, 10))
    w = moe.weights(x)
    silu = lambda z: z / (1 + np.exp(-z))  # noqa: E731
    expected = moe.shared(x)
    for e in range(12):
        expert = (silu(x @ moe.W_gate[e]) * (x @ moe.W_up[e])) @ moe.W_down[e]
        expected = expected + w[..., e:e + 1] * expert
    np.testing.assert_allclose(moe(x), expected, atol=1e-12)
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(moe.on(xt)(xt).numpy(), expected, atol=1e-12)


def test_impossible_routing_is_refused(rng):
    with pytest.raises(ValueError, match="impossible routing"):
        _moe(rng, groups=5)
    with pytest.raises(ValueError, match="top_k exceeds"):
        _moe(rng, top_k=9, topk_group=2)
