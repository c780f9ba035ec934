"""Every mask kind and bias of the kernel against the dense reference on ragged sizes."""

import numpy as np
import pytest
import torch

from attention.anchored import AnchorMask
from attention.masks import DenseMask, SlidingWindow
from attention.positional import DistanceBias, alibi, harmonic_alibi, harmonic_slopes
from attention.prflash import ONE, PrFlashMask, geometric, window
from attention.triton import Tiles, attend
from attention.variants.dma import DynamicMaskBias

from .helpers import TOLERANCE, reference, relative_error, tensors

TOL = TOLERANCE[torch.float32]


def _qkv(rng, device, n, e=3, H=2, G=1, B=1):
    return (tensors(rng, (B, H, n, e), device), tensors(rng, (B, G, n, e), device),
            tensors(rng, (B, G, n, e), device))


def _dense(mask, n, step=0):
    return torch.as_tensor(mask.allowed(np.arange(n), np.arange(n), step))


def _anchors(rng, n, count):
    return sorted(rng.choice(np.arange(n), count, replace=False).tolist())


@pytest.mark.parametrize(("n", "count", "e"), [(150, 5, 3), (97, 30, 16), (200, 1, 3)])
def test_anchored_mask(rng, device, n, count, e):
    mask = AnchorMask(_anchors(rng, n, count))
    q, k, v = _qkv(rng, device, n, e)
    out = attend(q, k, v, 1.2, mask=mask, tiles=Tiles(32, 16))
    assert relative_error(out, reference(q, k, v, 1.2, mask=_dense(mask, n))) < TOL


def test_anchored_tiles_without_segment_keys_or_anchors_are_skipped_exactly(rng, device):
    """Long segments: most tiles below the band hold neither the query's segment nor an
    anchor; the result must not change when they are skipped (a skipped tile with an
    allowed key would drop it)."""
    n = 260
    mask = AnchorMask([70, 71, 180])
    q, k, v = _qkv(rng, device, n, 3)
    out = attend(q, k, v, 0.7, mask=mask, tiles=Tiles(32, 32))
    assert relative_error(out, reference(q, k, v, 0.7, mask=_dense(mask, n))) < TOL


@pytest.mark.parametrize("p", [ONE, geometric(0.5), window(2)], ids=lambda p: p.label)
@pytest.mark.parametrize("block", [16, 20])
def test_prflash_block_lists(rng, device, p, block):
    n = 123
    mask = PrFlashMask(p=p, block=block, seed=int(rng.integers(1000)))
    q, k, v = _qkv(rng, device, n, 16)
    out = attend(q, k, v, 1.0, mask=mask, step=3)
    ref = reference(q, k, v, 1.0, mask=_dense(mask, n, 3))
    assert relative_error(out, ref) < TOL
    if p is ONE:  # p = 1 is causal attention
        assert relative_error(out, reference(q, k, v, 1.0, causal=True)) < TOL


def test_prflash_per_member_steps(rng, device):
    n, B = 70, 3
    mask = PrFlashMask(p=geometric(0.4), block=16, seed=5, per_member=True)
    q, k, v = _qkv(rng, device, n, 3, B=B)
    steps = np.array([0, 4, 4])
    out = attend(q, k, v, 1.5, mask=mask, step=steps)
    allowed = torch.as_tensor(mask.allowed(np.arange(n), np.arange(n), steps))[:, None]
    assert relative_error(out, reference(q, k, v, 1.5, mask=allowed)) < TOL


@pytest.mark.parametrize("mask", [SlidingWindow(window=9), "dense"], ids=["window", "table"])
def test_other_masks_through_their_block_layout(rng, device, mask):
    n = 90
    if mask == "dense":
        table = rng.random((n, n)) < 0.2
        table |= np.eye(n, dtype=bool)
        mask = DenseMask(table)
    q, k, v = _qkv(rng, device, n, 3)
    out = attend(q, k, v, 2.0, mask=mask)
    assert relative_error(out, reference(q, k, v, 2.0, mask=_dense(mask, n))) < TOL


def test_boolean_mask_broadcast_over_heads_and_anded_with_causal(rng, device):
    n = 75
    q, k, v = _qkv(rng, device, n, 3, H=3, B=2)
    table = torch.as_tensor(rng.random((2, 1, n, n)) < 0.6)
    table[..., torch.arange(n), torch.arange(n)] = True
    out = attend(q, k, v, 1.0, mask=table.to(device), causal=True)
    assert relative_error(out, reference(q, k, v, 1.0, mask=table, causal=True)) < TOL


@pytest.mark.parametrize("bias", [alibi(2), harmonic_alibi(2),
                                  DistanceBias(harmonic_slopes(2))], ids=["alibi", "harmonic",
                                                                          "harmonic-slopes"])
@pytest.mark.parametrize("causal", [False, True])
def test_distance_biases(rng, device, bias, causal):
    n = 110
    q, k, v = _qkv(rng, device, n, 3)
    table = torch.as_tensor(bias.table(np.arange(n), np.arange(n)))[None]
    out = attend(q, k, v, 0.8, bias=bias, causal=causal)
    assert relative_error(out, reference(q, k, v, 0.8, bias=table, causal=causal)) < TOL


def test_key_bias_and_its_softmax_shift_invariance(rng, device):
    n = 64
    q, k, v = _qkv(rng, device, n, 16, H=2, B=2)
    kb = tensors(rng, (2, 2, n), device)
    out = attend(q, k, v, 1.0, key_bias=kb, causal=True)
    ref = reference(q, k, v, 1.0, bias=kb[:, :, None, :], causal=True)
    assert relative_error(out, ref) < TOL
    shifted = attend(q, k, v, 1.0, key_bias=kb + 3.0, causal=True)  # a constant per row
    assert relative_error(shifted, ref) < TOL


@pytest.mark.parametrize(("form", "window_size"), [("exp", None), ("linear", 7)])
def test_dma_bias_and_top_w_mask(rng, device, form, window_size):
    n, H, G, f = 50, 2, 1, 3
    q, k, v = _qkv(rng, device, n, f, H=H, G=G)
    dma = DynamicMaskBias(W_dt=tensors(rng, (G * f, H), device), b_dt=tensors(rng, (H,), device),
                          A=tensors(rng, (H,), device, scale=0.5), form=form, window=window_size)
    out = attend(q, k, v, 1.0, bias=dma, causal=True)
    cpu = DynamicMaskBias(*(t.cpu().double() for t in (dma.W_dt, dma.b_dt, dma.A)), form=form,
                          window=window_size)
    kb = cpu.values(q.cpu().double(), k.cpu().double(), v.cpu().double(), None, None)
    allowed = cpu.restrict(torch.ones(n, n, dtype=torch.bool).tril(), kb)
    assert relative_error(out, reference(q, k, v, 1.0, bias=kb, mask=allowed)) < TOL


def test_dma_linear_form_with_zero_gain_is_causal_attention(rng, device):
    n, H, f = 40, 2, 3
    q, k, v = _qkv(rng, device, n, f, H=H)
    dma = DynamicMaskBias(W_dt=tensors(rng, (f, H), device), b_dt=tensors(rng, (H,), device),
                          A=torch.zeros(H, device=device), form="linear")
    out = attend(q, k, v, 1.0, bias=dma, causal=True)
    assert relative_error(out, reference(q, k, v, 1.0, causal=True)) < TOL
