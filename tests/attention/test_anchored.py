"""AnSAN's Algorithm 1: decoding with cache reduction equals the full masked forward pass."""

import numpy as np
import pytest
import torch

from attention.anchored import AnchorMask, anchored_decode, stack_forward
from attention.config import OperatorConfig, build


def _layers(rng, anchors, backend="numpy", **extra):
    """Two Llama-like layers (RoPE) under the same anchor mask."""
    cfg = OperatorConfig("ansan", d_model=16, heads=4, anchors=tuple(anchors), rope=True, **extra)
    return [build(cfg, rng, backend=backend) for _ in range(2)]


@pytest.mark.parametrize("prefix", [1, 5, 13])
def test_decoding_with_reduction_equals_the_masked_forward(rng, prefix):
    N = 24
    anchors = sorted(rng.choice(np.arange(2, N), 5, replace=False).tolist())
    layers = _layers(rng, anchors)
    x = rng.standard_normal((2, N, 16))
    full = stack_forward(layers, x)
    decoded, lengths = anchored_decode(layers, x, prefix=prefix)
    for f, d in zip(full, decoded, strict=True):
        np.testing.assert_allclose(d, f, rtol=1e-11, atol=1e-12)
    for t, length in enumerate(lengths[0], start=prefix - 1):
        past = [a for a in anchors if a <= t]
        expected = t + 1 if not past else len(past) + (t - past[-1])
        assert length == expected
        assert lengths[1][t - prefix + 1] == expected
    kv_per_token = layers[0].cache(x).elements_per_token()
    assert kv_per_token == 2 * 4 * 4  # MHA heads: 2 n d_h


def test_decoding_on_torch_with_grouped_heads(rng):
    anchors = [4, 9, 10, 17]
    layers = _layers(rng, anchors, backend="torch", groups=2)
    assert layers[0].heads.n_groups == 2
    x = torch.as_tensor(rng.standard_normal((1, 20, 16)))
    full = stack_forward(layers, x)
    decoded, _ = anchored_decode(layers, x, prefix=3)
    for f, d in zip(full, decoded, strict=True):
        torch.testing.assert_close(d, f, rtol=1e-11, atol=1e-12)


def test_dropped_entries_are_masked_for_every_later_query():
    mask = AnchorMask((3, 6))
    pos = np.arange(12)
    allowed = mask.allowed(pos, pos)
    for t in pos:
        past = [a for a in (3, 6) if a <= t]
        if not past:
            continue
        dropped = [j for j in range(t + 1) if not mask.is_anchor(j) and j < past[-1]]
        assert not allowed[t + 1 :, dropped].any()
