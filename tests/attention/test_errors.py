"""Bad input gets a clear error: shapes that do not fit, empty mask rows, probabilities and
bit widths out of range, unknown names."""

import numpy as np
import pytest
import torch

from attention.config import OperatorConfig, build
from attention.flex import flex_attend
from attention.masks import CAUSAL, BlockLayout, DenseMask
from attention.operator import Operator
from attention.positional import Rope
from attention.prflash import PrFlashMask, geometric
from attention.router import grouped_attention
from attention.variants.mfa import FactorizedHeads
from attention.variants.saq import Staircase
from attention.variants.standard import Projections
from dynamics.fields.operator import OperatorField


def test_head_shapes_that_do_not_fit(rng):
    with pytest.raises(ValueError, match="not divisible"):
        Projections(W_Q=rng.standard_normal((4, 8, 2)), W_K=rng.standard_normal((3, 8, 2)),
                    W_V=rng.standard_normal((3, 8, 2)))
    with pytest.raises(ValueError, match="do not fit"):
        Projections(W_Q=rng.standard_normal((2, 8, 3)), W_K=rng.standard_normal((1, 8, 2)),
                    W_V=rng.standard_normal((1, 8, 2)))
    with pytest.raises(ValueError, match="do not fit"):
        Projections(W_Q=rng.standard_normal((2, 8, 2)), W_K=rng.standard_normal((1, 7, 2)),
                    W_V=rng.standard_normal((1, 8, 2)))
    with pytest.raises(ValueError, match="even"):
        Projections(W_Q=rng.standard_normal((1, 8, 3)), W_K=rng.standard_normal((1, 8, 3)),
                    W_V=rng.standard_normal((1, 8, 3)), rope=Rope())
    with pytest.raises(ValueError, match="C = 5"):
        FactorizedHeads(S_q=rng.standard_normal((8, 4)), Q=rng.standard_normal((2, 4, 6)),
                        S_k=rng.standard_normal((8, 5)), O=rng.standard_normal((2, 5, 8)),
                        S_v=rng.standard_normal((8, 5)))
    with pytest.raises(ValueError, match="query and key head dimensions"):
        grouped_attention(rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((1, 1, 3, 5)),
                          rng.standard_normal((1, 1, 3, 5)), 1.0)
    with pytest.raises(ValueError, match="not divisible"):
        grouped_attention(rng.standard_normal((1, 3, 3, 4)), rng.standard_normal((1, 2, 3, 4)),
                          rng.standard_normal((1, 2, 3, 4)), 1.0)


def test_configs_that_do_not_fit():
    with pytest.raises(ValueError, match="not divisible"):
        OperatorConfig("gqa", d_model=16, heads=4, groups=3)
    with pytest.raises(ValueError, match="groups"):
        OperatorConfig("gqa", d_model=16, heads=4)
    with pytest.raises(ValueError, match="head_dim"):
        OperatorConfig("mha", d_model=10, heads=4)
    with pytest.raises(ValueError, match="unknown variant"):
        OperatorConfig("linear")
    with pytest.raises(ValueError, match="p must be"):
        OperatorConfig("prflash", p="uniform")


def test_tokens_that_do_not_fit_the_operator(rng):
    op = build(OperatorConfig("mha", d_model=8, heads=2), 0)
    with pytest.raises(ValueError, match="d = 8"):
        op(rng.standard_normal((1, 4, 6)))
    with pytest.raises(ValueError, match=r"\(batch, n, d\)"):
        op(rng.standard_normal((4, 8)))
    with pytest.raises(ValueError, match="positions"):
        op.forward(rng.standard_normal((1, 4, 8)), np.arange(3))
    wide = Operator(Projections(W_O=rng.standard_normal((1, 8, 5)), d=8))
    with pytest.raises(ValueError, match="R\\^d -> R\\^d"):
        OperatorField(wide)
    with pytest.raises(TypeError, match="Operator"):
        OperatorField(object())


def test_masks_that_would_leave_a_row_empty(rng):
    op = Operator(Projections(d=4), mask=CAUSAL)
    x = rng.standard_normal((1, 3, 4))
    cache = op.cache(x, np.arange(5, 8))
    with pytest.raises(ValueError, match="no key to attend"):
        op.attend(x, np.arange(3), cache)  # queries before every cached key
    table = np.eye(4, dtype=bool)
    table[1, 1] = False
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        DenseMask(table)


def test_probabilities_and_bit_widths_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        geometric(2.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        OperatorConfig("prflash", p="geometric", p_param=-0.5, d_model=8, heads=2)
    with pytest.raises(ValueError, match="step"):
        PrFlashMask(geometric(0.5), block=2).sample(4, step=-1)
    for bits in ((0,), (17,), (8, 2.5), (4, 8)):
        with pytest.raises(ValueError, match="bit widths"):
            Staircase(group=4, bits=bits, quant_group=2)
    with pytest.raises(ValueError, match="divide"):
        Staircase(group=6, bits=(4,), quant_group=4)


def test_route_and_normalisation_names(rng):
    q = rng.standard_normal((1, 1, 3, 2))
    with pytest.raises(ValueError, match="path must be"):
        grouped_attention(q, q, q, 1.0, path="triton")
    with pytest.raises(ValueError, match="normalization"):
        Operator(Projections(d=2), normalization="sparsemax")
    with pytest.raises(ValueError, match="torch"):
        grouped_attention(q, q, q, 1.0, path="sdpa")
    t = torch.as_tensor(q)
    with pytest.raises(ValueError, match="float32"):
        flex_attend(t, t, t, 1.0, layout=BlockLayout.from_dense(np.ones((3, 3), bool), 3))
    with pytest.raises(ValueError, match="divide"):
        flex_attend(t.float(), t.float(), t.float(), 1.0,
                    layout=BlockLayout.from_dense(np.ones((3, 3), bool), 2))


def test_random_masks_inside_a_jax_trace(rng):
    """A traced step draws its PrFlash mask through a host callback (the same draw as on the
    host); a mask drawn per batch member cannot be (the callback does not see the member)."""
    import jax
    import jax.numpy as jnp

    x = rng.standard_normal((2, 8, 8))
    cfg = dict(d_model=8, heads=2, block=2, p="geometric", p_param=0.5)
    op = build(OperatorConfig("prflash", **cfg), 1, backend="jax")
    got = jax.jit(lambda a, s: op(a, step=s))(jnp.asarray(x), jnp.asarray(3))
    np.testing.assert_allclose(np.asarray(got), build(OperatorConfig("prflash", **cfg), 1)(
        x, step=3), rtol=1e-12, atol=1e-13)
    per_member = build(OperatorConfig("prflash", per_member=True, **cfg), 1, backend="jax")
    with pytest.raises(ValueError, match="per_member"):
        jax.jit(lambda a, s: per_member(a, step=s))(jnp.asarray(x), jnp.asarray(3))
