"""Every variant of the operator layer: one definition on numpy, torch and JAX (jit included),
the CPU torch routes (SDPA, FlexAttention, the tiled online softmax) against the reference,
decoding against the full forward pass, and the flow invariants of attention.md §9."""

import warnings

import numpy as np
import pytest
import torch

from attention.config import VARIANTS, OperatorConfig, build
from attention.masks import BlockLayout

EXTRA = {
    "gqa": dict(groups=2), "ansan": dict(anchors=(3, 8, 9)), "prflash": dict(block=4),
    "dma": dict(window=4), "saq": dict(saq_group=4, saq_quant_group=2),
    "mla": dict(latent_dim=12, query_latent_dim=10, rope_dim=4),
    "mfa": dict(latent_dim=10, query_latent_dim=7),
    "mfa_kr": dict(latent_dim=10, query_latent_dim=7, rope=True),
    "mha": dict(rope=True),
}


def _config(variant: str) -> OperatorConfig:
    return OperatorConfig(variant, d_model=24, heads=4, **EXTRA.get(variant, {}))


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_definition_on_every_backend(rng, variant):
    import jax
    import jax.numpy as jnp

    cfg = _config(variant)
    x = rng.standard_normal((2, 12, 24))
    ref = build(cfg, 5)(x, step=3)
    got = build(cfg, 5, backend="torch")(torch.as_tensor(x), step=3)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)
    op = build(cfg, 5, backend="jax")
    jitted = jax.jit(lambda a: op(a, step=3))  # the whole operator traced by jax.jit
    np.testing.assert_allclose(np.asarray(jitted(jnp.asarray(x))), ref, rtol=1e-12, atol=1e-12)


@pytest.fixture
def eager_flex(monkeypatch):
    """FlexAttention's unfused implementation in place of the compiled kernel (same
    semantics; the compiled kernel has its own slow test in test_core)."""
    from torch.nn.attention import flex_attention as flex_module

    import attention.flex

    monkeypatch.setattr(attention.flex, "_compiled_flex", lambda: flex_module.flex_attention)


@pytest.mark.parametrize("variant", VARIANTS)
def test_cpu_torch_routes_equal_the_reference_in_fp32(rng, variant, eager_flex):
    """The operator's own masks, biases and grouped heads through SDPA ("auto" takes it for
    softmax), FlexAttention (block mask + score_mod) and the tiled online softmax."""
    cfg = _config(variant)
    x = rng.standard_normal((2, 16, 24))
    ref = build(cfg, 7, backend="torch").forward(torch.as_tensor(x), step=1, path="reference")
    op = build(cfg, 7, backend="torch", dtype="float32")
    x32 = torch.as_tensor(x, dtype=torch.float32)
    routes = ("auto", "sdpa", "flex", "tiled")
    if variant == "sinkhorn":  # not a softmax: no fused route expresses it
        for route in routes[1:]:
            with pytest.raises(ValueError, match="softmax"):
                op.forward(x32, step=1, path=route)
        routes = ("auto",)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for route in routes:
            got = op.forward(x32, step=1, path=route)
            torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=2e-5, msg=route)


@pytest.mark.parametrize("variant", sorted(set(VARIANTS) - {"sinkhorn", "saq"}))
def test_decoding_token_by_token_equals_the_forward_pass(rng, variant):
    """Prefill, then one token at a time against the growing cache: every causal variant
    gives its forward pass (Sinkhorn normalises columns over all queries and SAQ's forward
    reads the cache as stored after the whole sequence, so neither is causal-decodable)."""
    op = build(_config(variant), rng)
    x = rng.standard_normal((2, 13, 24))
    y, cache = op.prefill(x[:, :5], step=2)
    rows = [y]
    for t in range(5, 13):
        y, cache = op.decode(x[:, t : t + 1], np.array([t]), cache, step=2)
        rows.append(y)
    np.testing.assert_allclose(np.concatenate(rows, axis=1), op(x, step=2), rtol=1e-11,
                               atol=1e-12)
    assert len(cache) == 13


@pytest.mark.parametrize("variant", VARIANTS)
def test_allowed_rows_of_p_sum_to_one(rng, variant):
    """Every row of P is a probability vector supported on the keys the mask allows."""
    op = build(_config(variant), rng)
    x = rng.standard_normal((2, 12, 24))
    P = op.weights(x, step=4)
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-12)
    assert np.all(P >= 0)
    pos = np.arange(12)
    allowed = op.mask.allowed(pos, pos, 4)
    assert np.all(P[..., ~allowed] == 0)
    if variant == "dma":  # top-w: exactly min(w, i + 1) keys per row
        np.testing.assert_array_equal((P > 0).sum(-1), np.broadcast_to(
            np.minimum(4, pos + 1), P.shape[:-1]))


def test_block_layouts_of_the_variants_cover_their_masks():
    """Each mask's block form visits every allowed entry (its support contains the mask)
    and skips the tiles it does not need."""
    pos = np.arange(24)
    for variant in ("mha", "ansan", "prflash"):
        mask = build(_config(variant), 0).mask
        allowed = mask.allowed(pos, pos, 3)
        for block in (3, 4, 8):
            layout = mask.layout(pos, pos, block, step=3)
            assert np.array_equal(layout.support() & allowed, allowed)
            assert layout.kept_blocks() == BlockLayout.from_dense(allowed, block).kept_blocks()


def test_prflash_with_p_one_is_causal_attention_on_every_route(rng, eager_flex):
    """p = 1 keeps every causal block: through the reference, SDPA, FlexAttention (its
    BlockMask lists every block J < I as full, the diagonal as partial) and the tiled
    recurrence, it is causal attention (run through SDPA's own causal kernel)."""
    x = torch.as_tensor(rng.standard_normal((2, 16, 24)), dtype=torch.float32)
    causal = build(OperatorConfig("mha", d_model=24, heads=4), 2, backend="torch",
                   dtype="float32")
    p_one = build(OperatorConfig("prflash", d_model=24, heads=4, p="one", block=4), 2,
                  backend="torch", dtype="float32")
    layout = p_one.mask.layout(np.arange(16), np.arange(16), step=5)
    assert layout.partial == ((0,), (1,), (2,), (3,))
    assert layout.full == ((), (0,), (0, 1), (0, 1, 2))
    expected = causal.forward(x, path="sdpa")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for route in ("reference", "sdpa", "flex", "tiled"):
            torch.testing.assert_close(p_one.forward(x, step=5, path=route), expected,
                                       rtol=1e-5, atol=1e-5, msg=route)
