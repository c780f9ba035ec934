"""The grouped attention core: reference vs a per-head loop, SDPA, FlexAttention, the tiled
online softmax, and Sinkhorn normalisation."""

import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from attention.anchored import AnchorMask
from attention.masks import BlockLayout, SlidingWindow
from attention.online_softmax import tiled_attention
from attention.positional import alibi
from attention.prflash import PrFlashMask, geometric
from attention.reference import grouped_weights
from attention.router import grouped_attention
from attention.sinkhorn import sinkhorn_weights


def _qkv(rng, B=2, H=4, G=2, n=16, m=16, e=6, f=5):
    return (rng.standard_normal((B, H, n, e)), rng.standard_normal((B, G, m, e)),
            rng.standard_normal((B, G, m, f)))


def _loop(q, k, v, scale, allowed, bias):
    """Independent definition: one head, one row at a time."""
    B, H, n, _ = q.shape
    G = k.shape[1]
    out = np.zeros((B, H, n, v.shape[-1]))
    for b in range(B):
        for h in range(H):
            g = h // (H // G)
            for i in range(n):
                keys = np.nonzero(allowed[i])[0]
                s = scale * k[b, g, keys] @ q[b, h, i] + bias[b, h, i, keys]
                w = np.exp(s - s.max())
                out[b, h, i] = (w / w.sum()) @ v[b, g, keys]
    return out


def _random_mask(rng, n):
    allowed = rng.random((n, n)) < 0.4
    allowed[np.arange(n), np.arange(n)] = True
    return allowed


def test_reference_equals_a_per_head_loop(rng):
    q, k, v = _qkv(rng)
    allowed = _random_mask(rng, 16)
    bias = rng.standard_normal((2, 4, 16, 16))
    got = grouped_attention(q, k, v, 0.6, mask=allowed, bias=bias, path="reference")
    np.testing.assert_allclose(got, _loop(q, k, v, 0.6, allowed, bias), rtol=1e-12, atol=1e-13)
    w = grouped_weights(q, k, 0.6, mask=allowed, bias=bias)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-13)
    assert np.all(w[:, :, ~allowed] == 0)


def test_fully_masked_rows_are_refused_by_the_public_entry(rng):
    """A boolean mask leaving a query with no key is an error at ``grouped_attention`` (and
    ``attend``); the tiled kernel primitive below it keeps zero rows with lse = -inf."""
    q, k, v = _qkv(rng)
    allowed = _random_mask(rng, 16)
    allowed[5] = False
    for path in ("reference", "auto"):
        with pytest.raises(ValueError, match=r"rows \[5\]"):
            grouped_attention(q, k, v, 1.0, mask=allowed, path=path)
    layout = BlockLayout.from_dense(allowed, 4)
    tiled, lse = tiled_attention(q, k[:, [0, 0, 1, 1]], v[:, [0, 0, 1, 1]], 1.0, layout=layout,
                                 mask=allowed)
    assert np.all(np.isfinite(tiled)) and np.all(tiled[:, :, 5] == 0)
    assert np.all(lse[:, :, 5] == -np.inf) and np.all(np.isfinite(np.delete(lse, 5, axis=-1)))


def _masks(rng, n):
    pos = np.arange(n)
    return {
        "causal": np.tril(np.ones((n, n), dtype=bool)),
        "window": SlidingWindow(5).allowed(pos, pos),
        "anchor": AnchorMask(sorted(rng.choice(n, 4, replace=False))).allowed(pos, pos),
        "prflash": PrFlashMask(geometric(0.5), block=4, seed=1).allowed(pos, pos, 3),
        "random": _random_mask(rng, n),
    }


def test_tiled_online_softmax_equals_dense_for_any_tile_size(rng):
    q, k, v = (a[:, :1] for a in _qkv(rng, n=21, m=21))
    bias = rng.standard_normal((2, 1, 21, 21))
    for name, allowed in _masks(rng, 21).items():
        dense = grouped_attention(q, k, v, 0.9, mask=allowed, bias=bias, path="reference")
        s = 0.9 * q @ np.swapaxes(k, -1, -2) + bias
        lse_ref = logsumexp(np.where(allowed, s, -np.inf), axis=-1)
        for block in rng.choice(np.arange(1, 22), size=3, replace=False):
            layout = BlockLayout.from_dense(allowed, int(block))
            out, lse = tiled_attention(q, k, v, 0.9, layout=layout, mask=allowed, bias=bias)
            np.testing.assert_allclose(out, dense, rtol=1e-12, atol=1e-12, err_msg=name)
            np.testing.assert_allclose(lse, lse_ref, rtol=1e-12, atol=1e-12, err_msg=name)
        via_core = grouped_attention(q, k, v, 0.9, mask=allowed, bias=bias, path="tiled")
        np.testing.assert_allclose(via_core, dense, rtol=1e-12, atol=1e-12)


def test_sdpa_route_equals_reference(rng):
    q, k, v = (torch.as_tensor(a) for a in _qkv(rng, n=20, m=20))
    bias = torch.as_tensor(rng.standard_normal((2, 4, 1, 20)))
    for allowed in _masks(rng, 20).values():
        for b in (None, bias):
            ref = grouped_attention(q, k, v, 0.7, mask=allowed, bias=b, path="reference")
            got = grouped_attention(q, k, v, 0.7, mask=allowed, bias=b, path="sdpa")
            torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    ref = grouped_attention(q, k, v, 0.7, causal=True, path="reference")
    torch.testing.assert_close(grouped_attention(q, k, v, 0.7, causal=True, path="sdpa"), ref,
                               rtol=1e-12, atol=1e-12)


def test_sdpa_and_flex_agree_with_the_reference_in_fp32(rng):
    """Every mask of the package, and the ALiBi and DMA-type biases, on the fp32 CPU routes
    (FlexAttention's unfused implementation: same semantics as its kernel)."""
    q, k, v = _qkv(rng, n=32, m=32)
    q32, k32, v32 = (torch.as_tensor(a, dtype=torch.float32) for a in (q, k, v))
    biases = {
        "none": None,
        "alibi": alibi(4).values(torch.as_tensor(q), None, None, np.arange(32), np.arange(32)),
        "key": torch.as_tensor(rng.standard_normal((2, 4, 1, 32))),
    }
    top_w = torch.as_tensor(rng.random((2, 4, 32, 32)) < 0.3) | torch.eye(32, dtype=torch.bool)
    masks = {**_masks(rng, 32), "per-head": top_w.numpy()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, allowed in masks.items():
            for bname, b in biases.items():
                ref = grouped_attention(torch.as_tensor(q), torch.as_tensor(k),
                                        torch.as_tensor(v), 0.5, mask=allowed, bias=b,
                                        path="reference")
                b32 = None if b is None else b.float()
                for route in ("sdpa", "flex"):
                    got = grouped_attention(q32, k32, v32, 0.5, mask=allowed, bias=b32,
                                            path=route, flex_compiled=False)
                    torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=2e-5,
                                               msg=f"{route} {name} {bname}")


@pytest.mark.slow
def test_flex_compiled_kernel_skips_the_blocks_the_layout_omits(rng):
    """FlexAttention compiled (torch.compile on the CPU: the only cold compile of the suite,
    ~10 s), fp32, with an ALiBi score_mod. Its mask_mod is only the causal mask: the PrFlash
    mask is reproduced by the layout's full/partial block lists alone, so the kernel really
    skips the omitted blocks and evaluates mask_mod on the diagonal ones."""
    from attention.flex import flex_attend

    q, k, v = (torch.as_tensor(a, dtype=torch.float32) for a in _qkv(rng, n=48, m=48))
    pos = np.arange(48)
    masks = (PrFlashMask(geometric(0.5), block=16, seed=s) for s in range(100))
    mask = next(m for m in masks if sum(map(len, m.layout(pos, pos).full)) in (1, 2))
    bias = alibi(4).values(q.double(), None, None, pos, pos)
    ref = grouped_attention(q.double(), k.double(), v.double(), 0.5,
                            mask=mask.allowed(pos, pos, 0), bias=bias, path="reference")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = flex_attend(q, k, v, 0.5, layout=mask.layout(pos, pos, step=0),
                          mask=np.tril(np.ones((48, 48), dtype=bool)), bias=bias.float())
    torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=2e-5)


def test_sinkhorn_normalisation(rng):
    s = rng.standard_normal((3, 9, 9)) * 2
    np.testing.assert_allclose(sinkhorn_weights(s, None, 0),
                               np.exp(s) / np.exp(s).sum(-1, keepdims=True), rtol=1e-13)
    w = sinkhorn_weights(s, None, 200)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(w.sum(-2), 1.0, atol=1e-8)
    # Sinkhorn scaling keeps the cross ratios of exp(s): w_ij w_kl / (w_il w_kj) fixed
    ratio = lambda a: a[:, 0, 1] * a[:, 2, 3] / (a[:, 0, 3] * a[:, 2, 1])  # noqa: E731
    np.testing.assert_allclose(ratio(w), ratio(np.exp(s)), rtol=1e-9)
    causal = np.tril(np.ones((9, 9), dtype=bool))
    wc = sinkhorn_weights(s, causal, 5)
    assert np.all(np.isfinite(wc)) and np.all(wc[:, ~causal] == 0)
    np.testing.assert_allclose(wc.sum(-1), 1.0, atol=1e-12)
    # on the causal support the only doubly stochastic matrix is the identity
    deep = sinkhorn_weights(s, causal, 2000)
    np.testing.assert_allclose(deep, np.broadcast_to(np.eye(9), deep.shape), atol=5e-3)
