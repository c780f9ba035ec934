"""Masks: dense and block forms, the AnSAN anchor mask (Fig. 2) and PrFlash's random blocks."""

import numpy as np
import pytest

from attention.anchored import AnchorMask
from attention.masks import CAUSAL, BlockLayout, DenseMask, SlidingWindow, check_rows
from attention.prflash import (
    ONE,
    PrFlashMask,
    compacted_attention,
    expected_work,
    geometric,
    given,
    harmonic,
    window,
)
from attention.router import grouped_attention

# -- block layouts ---------------------------------------------------------------------------


def _check_layout(layout: BlockLayout, allowed: np.ndarray) -> None:
    """Full tiles are entirely allowed, partial ones partly, skipped ones not at all."""
    b = layout.block
    for I in range(layout.query_blocks):
        for J in range(layout.key_blocks):
            tile = allowed[I * b : (I + 1) * b, J * b : (J + 1) * b]
            if J in layout.full[I]:
                assert tile.all()
            elif J in layout.partial[I]:
                assert tile.any()
            else:
                assert not tile.any()


@pytest.mark.parametrize("n", [1, 7, 16, 23])
@pytest.mark.parametrize("extra", [0, 2])
@pytest.mark.parametrize("block", [1, 3, 4, 8])
def test_causal_tiling_matches_its_closed_form(n, extra, block):
    q_pos, k_pos = np.arange(n), np.arange(n + extra)
    m = n + extra
    allowed = CAUSAL.allowed(q_pos, k_pos)
    tiled = BlockLayout.from_dense(allowed, block)
    # closed form: tile (I, J) is full when its last key precedes its first query, and
    # touched when its first key precedes its last query
    full, partial = [], []
    for first_query in range(0, n, block):
        last_query = min(first_query + block, n) - 1
        tiles = [(J, J * block, min((J + 1) * block, m) - 1) for J in range(-(-m // block))]
        full.append(tuple(J for J, _, last_key in tiles if last_key <= first_query))
        partial.append(tuple(J for J, first_key, last_key in tiles
                             if first_key <= last_query and last_key > first_query))
    assert tiled == BlockLayout(block, n, m, tuple(full), tuple(partial))
    _check_layout(tiled, allowed)
    assert np.array_equal(tiled.support() & allowed, allowed)


def test_kv_arrays_pack_the_block_lists(rng):
    allowed = rng.random((12, 12)) < 0.4
    allowed |= np.eye(12, dtype=bool)
    layout = BlockLayout.from_dense(allowed, 4)
    num, idx, full_num, full_idx = layout.kv_arrays()
    for I in range(3):
        assert tuple(idx[I, : num[I]]) == layout.partial[I]
        assert tuple(full_idx[I, : full_num[I]]) == layout.full[I]
    _check_layout(layout, allowed)


def test_sliding_window_rows_hold_the_last_w_tokens():
    pos = np.arange(10)
    allowed = SlidingWindow(3).allowed(pos, pos)
    assert allowed.sum(axis=1).tolist() == [1, 2, 3, 3, 3, 3, 3, 3, 3, 3]
    assert all(allowed[i, max(0, i - 2) : i + 1].all() for i in range(10))


def test_check_rows_rejects_an_empty_row():
    allowed = np.tril(np.ones((4, 4), dtype=bool))
    check_rows(allowed)
    allowed[2] = False
    with pytest.raises(ValueError, match=r"rows \[2\]"):
        check_rows(allowed)
    with pytest.raises(ValueError, match="no key"):
        DenseMask(allowed)


# -- the anchor mask ------------------------------------------------------------------------------

FIG2 = ["w0", "w1", "w2", "a0", "w4", "w5", "a1", "w7"]
FIG2_TABLE = {
    "w0": {"w0"}, "w1": {"w0", "w1"}, "w2": {"w0", "w1", "w2"}, "a0": {"w0", "w1", "w2", "a0"},
    "w4": {"a0", "w4"}, "w5": {"a0", "w4", "w5"}, "a1": {"w4", "w5", "a1"},
    "w7": {"a0", "a1", "w7"},
}


def test_anchor_mask_is_the_fig2_table():
    mask = AnchorMask((3, 6)).allowed(np.arange(8), np.arange(8))
    for i, row in enumerate(FIG2):
        assert {FIG2[j] for j in np.nonzero(mask[i])[0]} == FIG2_TABLE[row]


def _repo_construction(N: int, anchors: list[int]) -> np.ndarray:
    """The official code's construction: causal, then block the closed segment [start, ix)
    for the rows after each anchor ix, then block previous anchors in anchor rows."""
    mask = np.tril(np.ones((N, N), dtype=bool))
    start = 0
    for ix in anchors:
        mask[ix + 1 :, start:ix] = False
        start = ix + 1
    for a in anchors:
        for b in anchors:
            if b < a:
                mask[a, b] = False
    return mask


def test_anchor_mask_equals_the_repository_construction_and_its_properties(rng):
    for _ in range(50):
        N = int(rng.integers(1, 30))
        anchors = sorted(rng.choice(N, size=int(rng.integers(0, N + 1)), replace=False).tolist())
        am = AnchorMask(anchors)
        mask = am.allowed(np.arange(N), np.arange(N))
        np.testing.assert_array_equal(mask, _repo_construction(N, anchors))
        assert not np.triu(mask, 1).any() and mask.diagonal().all()
        seg, is_anchor = am.segment(np.arange(N)), am.is_anchor(np.arange(N))
        for i in range(N):
            own = set(np.nonzero((seg == seg[i]) & (np.arange(N) <= i))[0])
            seen = set(np.nonzero(mask[i])[0])
            if is_anchor[i]:
                assert seen == own
            else:
                assert seen == own | set(np.nonzero(is_anchor & (np.arange(N) < i))[0])


# -- PrFlash ---------------------------------------------------------------------------------------


def test_prflash_with_p_one_is_causal_attention(rng):
    pos = np.arange(37)
    for p in (ONE, geometric(1.0), given(np.ones(40))):
        mask = PrFlashMask(p, block=int(rng.integers(1, 9)), seed=3)
        for step in (0, 5):
            np.testing.assert_array_equal(mask.allowed(pos, pos, step), CAUSAL.allowed(pos, pos))
    q, k, v = (rng.standard_normal((2, 3, 37, 4)) for _ in range(3))
    dense = PrFlashMask(ONE, block=4).allowed(pos, pos)
    got = grouped_attention(q, k, v, 0.8, mask=dense, path="reference")
    expected = grouped_attention(q, k, v, 0.8, causal=True, path="reference")
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-14)


def test_window_p_is_block_sliding_window_attention():
    pos = np.arange(40)
    for B, w in ((1, 3), (4, 2), (5, 3)):
        mask = PrFlashMask(window(w), block=B, seed=1).allowed(pos, pos, step=7)
        band = (pos[:, None] // B - pos[None, :] // B) < w
        np.testing.assert_array_equal(mask, CAUSAL.allowed(pos, pos) & band)
        if B == 1:
            np.testing.assert_array_equal(mask, SlidingWindow(w).allowed(pos, pos))


def test_inclusion_frequencies_converge_to_p_and_work_to_the_formula():
    T, steps = 10, 600
    for p in (geometric(0.6), harmonic(1.5), given([1.0, 0.3, 0.0, 0.8])):
        mask = PrFlashMask(p, block=2, seed=11)
        delta = np.arange(T)[:, None] - np.arange(T)[None, :]
        hits, kept = np.zeros(T), np.zeros(steps)
        for s in range(steps):
            xi = mask.sample(T, s)
            hits += [xi[delta == d].sum() for d in range(T)]
            kept[s] = xi.sum()
        probs = p(np.arange(T))
        trials = steps * (T - np.arange(T))
        freq = hits / trials
        assert freq[0] == 1.0
        sigma = np.sqrt(probs * (1 - probs) / trials)
        assert np.all(np.abs(freq[1:] - probs[1:]) <= 5 * sigma[1:] + 1e-12)
        total = T * (T + 1) / 2
        var = np.sum((probs * (1 - probs) * (T - np.arange(T)))[1:])
        assert abs(kept.mean() / total - expected_work(p, T)) <= 5 * np.sqrt(var / steps) / total


def test_no_row_is_ever_empty_and_draws_are_reproducible(rng):
    pos = np.arange(29)
    p = given(np.concatenate([[0.0], rng.random(4) * (rng.random(4) < 0.5)]))
    mask = PrFlashMask(p, block=3, seed=5)
    for step in range(40):
        allowed = mask.allowed(pos, pos, step)
        assert allowed.diagonal().all()
        check_rows(allowed)
    np.testing.assert_array_equal(mask.allowed(pos, pos, 3), mask.allowed(pos, pos, 3))
    half = PrFlashMask(geometric(0.5), block=1, seed=5)
    assert not np.array_equal(half.allowed(pos, pos, 0), half.allowed(pos, pos, 1))
    assert not np.array_equal(half.allowed(pos, pos, 0),
                              PrFlashMask(geometric(0.5), block=1, seed=6).allowed(pos, pos, 0))
    # a block's draw does not depend on how long the sequence is (decoding sees the same draws)
    np.testing.assert_array_equal(half.sample(20, 4)[:12, :12], half.sample(12, 4))


def test_per_member_steps_give_per_member_masks():
    pos = np.arange(16)
    mask = PrFlashMask(geometric(0.5), block=2, seed=2, per_member=True)
    stacked = mask.allowed(pos, pos, step=np.array([3, 3, 4]))
    assert stacked.shape == (3, 16, 16)
    assert not np.array_equal(stacked[0], stacked[1])
    shared = PrFlashMask(geometric(0.5), block=2, seed=2).allowed(pos, pos, step=np.array([3, 3]))
    np.testing.assert_array_equal(shared[0], shared[1])


def test_prflash_layout_and_compaction(rng):
    n, B = 30, 4
    pos = np.arange(n)
    mask = PrFlashMask(harmonic(1.0), block=B, seed=9)
    allowed = mask.allowed(pos, pos, step=2)
    layout = mask.layout(pos, pos, step=2)
    _check_layout(layout, allowed)
    assert all(p == (I,) for I, p in enumerate(layout.partial))
    assert np.array_equal(layout.support() & allowed, allowed)
    tiled = BlockLayout.from_dense(allowed, B)
    assert np.array_equal(tiled.support(), layout.support())
    T = -(-n // B)
    for I, blocks in enumerate(mask.compaction(T, 2)):
        assert blocks[-1] == I and blocks[:-1] == sorted(blocks[:-1])
        assert all(J < I for J in blocks[:-1])
    q, k, v = (rng.standard_normal((2, n, c)) for c in (5, 5, 3))
    got = compacted_attention(q, k, v, 0.7, mask, step=2)
    dense = grouped_attention(q[:, None], k[:, None], v[:, None], 0.7, mask=allowed,
                              path="reference")[:, 0]
    np.testing.assert_allclose(got, dense, rtol=1e-12, atol=1e-13)


def test_distributions_reject_probabilities_outside_the_unit_interval():
    for bad in (lambda: geometric(1.5), lambda: geometric(-0.1), lambda: harmonic(-1.0),
                lambda: given([0.5, 1.2]), lambda: given([0.5, -0.1]), lambda: window(0)):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(TypeError):
        PrFlashMask(0.5, block=2)
