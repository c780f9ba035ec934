"""The torch layer: built from a config, same numbers as the reference, trainable."""

import numpy as np
import pytest
import torch

from attention.accounting import param_count
from attention.config import VARIANTS, OperatorConfig, build
from attention.layer import AttentionLayer

CONFIGS = [
    OperatorConfig("mha", d_model=16, heads=4, rope=True),
    OperatorConfig("gqa", d_model=16, heads=4, groups=2),
    OperatorConfig("mqa", d_model=16, heads=4),
    OperatorConfig("mla", d_model=16, heads=4, latent_dim=8, rope_dim=2),
    OperatorConfig("mfa", d_model=16, heads=4, latent_dim=8),
    OperatorConfig("mfa_kr", d_model=16, heads=4, latent_dim=8, rope=True),
    OperatorConfig("ansan", d_model=16, heads=4, anchors=(2, 6)),
    OperatorConfig("prflash", d_model=16, heads=4, block=2),
    OperatorConfig("dma", d_model=16, heads=4, window=3),
    OperatorConfig("rope_alibi", d_model=16, heads=4),
    OperatorConfig("alibi", d_model=16, heads=4, slopes="harmonic"),
    OperatorConfig("sinkhorn", d_model=16, heads=4),
    OperatorConfig("saq", d_model=16, heads=4, saq_group=4, saq_quant_group=2),
]


def test_every_variant_has_a_layer():
    assert sorted(c.variant for c in CONFIGS) == sorted(VARIANTS)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.variant)
def test_layer_equals_the_reference_and_trains(rng, config):
    layer = AttentionLayer(config, seed=3, dtype=torch.float64)
    x = rng.standard_normal((2, 9, 16))
    y = layer(torch.as_tensor(x), step=1)
    np.testing.assert_allclose(y.detach().numpy(), build(config, 3)(x, step=1), rtol=1e-12,
                               atol=1e-12)
    assert sum(p.numel() for p in layer.parameters()) == param_count(config)
    (y * torch.as_tensor(rng.standard_normal(y.shape))).sum().backward()
    grads = [p.grad for p in layer.parameters()]
    assert all(g is not None and torch.all(torch.isfinite(g)) for g in grads)
    assert any(g.abs().max() > 0 for g in grads)


def test_layer_inside_a_model_takes_an_optimiser_step(rng):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        AttentionLayer(OperatorConfig("mfa", d_model=16, heads=2, latent_dim=8), seed=1),
        torch.nn.Linear(16, 1),
    )
    x = torch.as_tensor(rng.standard_normal((4, 6, 8)), dtype=torch.float32)
    target = torch.as_tensor(rng.standard_normal((4, 6, 1)), dtype=torch.float32)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = ((model(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_sdpa_path_of_the_layer_equals_its_reference_path(rng):
    cfg = OperatorConfig("ansan", d_model=16, heads=4, groups=2, anchors=(3, 5))
    x = torch.as_tensor(rng.standard_normal((2, 10, 16)))
    ref = AttentionLayer(cfg, seed=0, dtype=torch.float64, path="reference")(x)
    fast = AttentionLayer(cfg, seed=0, dtype=torch.float64, path="sdpa")(x)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
