"""The fused attention kernel against the materialised float64 reference, on random shapes."""

import numpy as np
import pytest
import torch

from attention.triton import Tiles, attend, attend_any, pairwise_extreme
from dynamics.observables import min_pairwise_inner

from .helpers import TOLERANCE, reference, relative_error, tensors

# (n, m, e, f, H, G): tile-ragged sizes, d in {2, 3, 16, 64}, grouped key/value heads
SHAPES = [
    (1, 1, 3, 3, 1, 1),
    (37, 37, 2, 2, 1, 1),
    (70, 45, 3, 3, 2, 1),
    (100, 100, 16, 16, 2, 2),
    (65, 130, 64, 64, 4, 2),
    (50, 50, 3, 16, 1, 1),
    (33, 33, 20, 7, 3, 1),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "n{}m{}e{}f{}H{}G{}".format(*s))
@pytest.mark.parametrize("normalization", ["softmax", "usa", "usa-shifted"])
def test_every_head_equals_the_reference(rng, device, shape, normalization):
    n, m, e, f, H, G = shape
    B = 2
    q = tensors(rng, (B, H, n, e), device, scale=0.6)
    k = tensors(rng, (B, G, m, e), device, scale=0.6)
    v = tensors(rng, (B, G, m, f), device)
    beta = float(rng.uniform(-1.5, 2.5))
    out = attend(q, k, v, beta, normalization=normalization)
    ref = reference(q, k, v, beta, normalization=normalization)
    assert out.shape == (B, H, n, f)
    # float32 scores carry a relative error ~eps, i.e. ~eps |s| absolute: e^s inherits it
    largest = abs(beta) * float(q.norm(dim=-1).max() * k.norm(dim=-1).max())
    assert relative_error(out, ref) < TOLERANCE[torch.float32] * (1 + largest)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("e", [3, 32])
def test_input_dtypes_accumulate_in_float32_or_float64(rng, device, dtype, e):
    n, H = 90, 2
    q, k, v = (tensors(rng, (1, H, n, e), device, dtype, scale=0.5) for _ in range(3))
    out = attend(q, k, v, 1.3, causal=True)
    assert out.dtype == dtype
    # the reference sees the same rounded inputs: what remains is the kernel's own error
    assert relative_error(out, reference(q, k, v, 1.3, causal=True)) < TOLERANCE[dtype]


def test_result_does_not_depend_on_the_tile_shape(rng, device):
    n, e = 77, 16
    q, k, v = (tensors(rng, (2, 2, n, e), device) for _ in range(3))
    outs = [attend(q, k, v, 0.9, causal=True, tiles=t)
            for t in (Tiles(16, 16), Tiles(32, 16), Tiles(64, 32), Tiles(128, 64))]
    ref = reference(q, k, v, 0.9, causal=True)
    for out in outs:
        assert relative_error(out, ref) < TOLERANCE[torch.float32]


@pytest.mark.parametrize("pv", ["dot", "fma"])
@pytest.mark.parametrize("f", [1, 3, 4])
def test_both_forms_of_the_weighted_sum(rng, device, pv, f):
    n = 70
    q, k = (tensors(rng, (2, 2, n, 3), device) for _ in range(2))
    v = tensors(rng, (2, 2, n, f), device)
    out = attend(q, k, v, 1.7, causal=True, pv=pv)
    assert relative_error(out, reference(q, k, v, 1.7, causal=True)) < TOLERANCE[torch.float32]


def test_lse_is_the_log_partition_function(rng, device):
    n, e = 60, 3
    q, k, v = (tensors(rng, (2, 3, n, e), device) for _ in range(3))
    beta = torch.tensor([[0.5, 1.0, -2.0], [3.0, 0.1, 1.0]])
    _, lse = attend(q, k, v, beta.to(device), return_lse=True)
    s = beta[..., None, None].double() * (q.cpu().double() @ k.cpu().double().transpose(-1, -2))
    np.testing.assert_allclose(lse.cpu().double(), torch.logsumexp(s, dim=-1), rtol=1e-6)


def test_rows_with_no_allowed_key_give_zero_and_no_nan(rng, device):
    n = 50
    q, k, v = (tensors(rng, (2, 2, n, 3), device) for _ in range(3))
    mask = torch.as_tensor(rng.random((2, 1, n, n)) < 0.5)
    mask[:, :, [0, 17, 49]] = False
    out, lse = attend(q, k, v, 1.0, mask=mask.to(device), return_lse=True)
    assert not torch.isnan(out).any()
    assert out[:, :, [0, 17, 49]].abs().max() == 0
    assert torch.isneginf(lse[:, :, [0, 17, 49]]).all()
    # the reference refuses empty rows (attention.masks.check_rows): give them a key there
    # and compare the other rows, which that key does not touch
    filled = mask.clone()
    filled[:, :, [0, 17, 49], 0] = True
    others = [i for i in range(n) if i not in (0, 17, 49)]
    expected = reference(q, k, v, 1.0, mask=filled)[:, :, others]
    assert relative_error(out[:, :, others], expected) < TOLERANCE[torch.float32]


def test_shared_key_value_heads_equal_repeated_ones(rng, device):
    n, e = 40, 16
    q = tensors(rng, (2, 4, n, e), device)
    k, v = (tensors(rng, (1, 1, n, e), device) for _ in range(2))
    shared = attend(q, k, v, 1.0)
    repeated = attend(q, k.expand(2, 4, n, e).contiguous(), v.expand(2, 4, n, e).contiguous(), 1.0)
    torch.testing.assert_close(shared, repeated, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("n", "e"), [(300, 3), (1000, 3), (520, 64)])
def test_larger_sequences(rng, device, n, e):
    q, k, v = (tensors(rng, (1, 1, n, e), device, scale=0.4) for _ in range(3))
    out = attend(q, k, v, 2.0, causal=e == 3, tiles=Tiles(128, 64) if n > 500 else None)
    ref = reference(q, k, v, 2.0, causal=e == 3)
    assert relative_error(out, ref) < TOLERANCE[torch.float32]


def test_any_leading_axes_and_per_member_beta(rng, device):
    q, k, v = (tensors(rng, (3, 2, 21, 3), device) for _ in range(3))
    beta = torch.as_tensor(rng.uniform(0.5, 2.0, (3, 1, 1, 1)), dtype=torch.float32)
    out = attend_any(q, k, v, beta.to(device), normalization="usa")
    ref = reference(q.reshape(6, 1, 21, 3), k.reshape(6, 1, 21, 3), v.reshape(6, 1, 21, 3),
                    beta.expand(3, 2, 1, 1).reshape(6, 1, 1, 1), normalization="usa")
    assert relative_error(out.reshape(6, 1, 21, 3), ref) < TOLERANCE[torch.float32]


@pytest.mark.parametrize(("n", "d", "dtype"), [(1, 3, torch.float32), (130, 3, torch.float32),
                                               (70, 20, torch.float32), (65, 3, torch.float64)])
def test_pairwise_extreme_equals_the_gram_minimum(rng, device, n, d, dtype):
    x = tensors(rng, (3, n, d), device, dtype)
    x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    expected = min_pairwise_inner(x.cpu().double())
    np.testing.assert_allclose(pairwise_extreme(x).cpu().double(), expected,
                               rtol=0, atol=1e-12 if dtype == torch.float64 else 1e-6)
    if n > 1:
        g = x.cpu().double() @ x.cpu().double().transpose(-1, -2)
        g -= 10 * torch.eye(n, dtype=g.dtype)
        np.testing.assert_allclose(pairwise_extreme(x, largest=True).cpu().double(),
                                   g.amax(dim=(-2, -1)), rtol=0, atol=1e-6)
