"""The low-dimensional kernel (fixed softmax shift, element-wise accumulators) for e, f <= 4."""

import math

import numpy as np
import pytest
import torch

from attention.masks import Causal
from attention.triton import Tiles, attend, flow_rhs, fused_attention
from attention.triton.launch import LOWDIM_TILES
from attention.triton.lowdim import EXACT_GAP, OVERFLOW_MARGIN

from .helpers import TOLERANCE, reference, relative_error, sphere, tensors

TOL = TOLERANCE[torch.float32]

# (n, m, e, f, H, G): ragged sizes, every e and f up to 4, grouped key/value heads
SHAPES = [
    (1, 1, 1, 1, 1, 1),
    (37, 37, 2, 2, 1, 1),
    (70, 45, 3, 3, 2, 1),
    (65, 65, 4, 4, 4, 2),
    (50, 97, 3, 1, 1, 1),
    (33, 33, 1, 4, 3, 3),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "n{}m{}e{}f{}H{}G{}".format(*s))
@pytest.mark.parametrize("normalization", ["softmax", "usa", "usa-shifted"])
def test_every_head_equals_the_reference(rng, device, shape, normalization):
    n, m, e, f, H, G = shape
    q = tensors(rng, (2, H, n, e), device, scale=0.8)
    k = tensors(rng, (2, G, m, e), device, scale=0.8)
    v = tensors(rng, (2, G, m, f), device)
    beta = float(rng.uniform(-2.0, 3.0))
    causal = n == m and n > 1
    out = attend(q, k, v, beta, normalization=normalization, causal=causal, kernel="lowdim")
    ref = reference(q, k, v, beta, normalization=normalization, causal=causal)
    largest = abs(beta) * float(q.norm(dim=-1).max() * k.norm(dim=-1).max())
    assert relative_error(out, ref) < TOL * (1 + largest)


@pytest.mark.parametrize("causal", [False, True])
def test_result_does_not_depend_on_the_tile_shape(rng, device, causal):
    # block_m < block_n too: the causal band starts at the key tile holding the first row
    n = 150
    q, k, v = (tensors(rng, (1, 2, n, 3), device) for _ in range(3))
    ref = reference(q, k, v, 1.3, causal=causal)
    for tiles in (*LOWDIM_TILES, Tiles(32, 64, 2, 1), Tiles(16, 32, 1, 1)):
        out = attend(q, k, v, 1.3, causal=causal, tiles=tiles, kernel="lowdim")
        assert relative_error(out, ref) < TOL, tiles


def test_lse_is_the_log_partition_function(rng, device):
    q, k, v = (tensors(rng, (2, 3, 60, 3), device) for _ in range(3))
    beta = torch.tensor([[0.5, 1.0, -2.0], [3.0, 0.1, 1.0]])
    _, lse = attend(q, k, v, beta.to(device), return_lse=True, kernel="lowdim")
    s = beta[..., None, None].double() * (q.cpu().double() @ k.cpu().double().transpose(-1, -2))
    np.testing.assert_allclose(lse.cpu().double(), torch.logsumexp(s, dim=-1), rtol=1e-6)


def test_a_far_longer_key_forces_the_exact_row_maximum(rng, device):
    # one key 40x longer than the rest: the Cauchy-Schwarz bound U_i sits hundreds of
    # binary orders above every row's own score, so the fixed shift U_i - 64 would flush
    # every term of most rows to zero; the kernel must take the exact maximum instead
    n, beta = 90, 10.0
    q, k, v = (tensors(rng, (1, 1, n, 3), device) for _ in range(3))
    k[:, :, 7] *= 40.0
    log2e = 1 / math.log(2)
    upper = beta * log2e * q.norm(dim=-1) * k.norm(dim=-1).max()
    own = beta * log2e * (q * k).sum(-1)
    assert float((upper - OVERFLOW_MARGIN - own).max()) > EXACT_GAP  # the branch is taken
    out = attend(q, k, v, beta, kernel="lowdim")
    largest = beta * float(q.norm(dim=-1).max() * k.norm(dim=-1).max())
    assert relative_error(out, reference(q, k, v, beta)) < TOL * largest


def test_large_beta_on_the_sphere_is_the_nearest_neighbours_average(rng, device):
    # with q = k = x on the sphere the own score is the row maximum: no first pass needed
    x = sphere(rng, 2, 120, 3, device)
    beta = 400.0
    out = flow_rhs(x, x[:, None], x[:, None], x[:, None], beta, kernel="lowdim")
    online = flow_rhs(x, x[:, None], x[:, None], x[:, None], beta, kernel="online")
    xd = x.cpu().double()
    drive = reference(xd[:, None], xd[:, None], xd[:, None], beta)[:, 0]
    expected = drive - (xd * drive).sum(-1, keepdim=True) * xd
    # float32 scores carry ~eps beta absolute error, which the exponential passes on
    assert relative_error(out, expected) < TOL * beta
    assert relative_error(out, expected) <= 2 * relative_error(online, expected) + TOL


@pytest.mark.parametrize("epilogue", ["tangent", "unit", None])
def test_both_kernels_give_the_same_flow(rng, device, epilogue):
    x = sphere(rng, 2, 75, 3, device)
    q = tensors(rng, (2, 3, 75, 3), device, scale=0.7)
    betas = torch.tensor([0.8, -1.5, 2.5]).to(device)
    args = (x, q, x[:, None], x[:, None], betas)
    lowdim = flow_rhs(*args, epilogue=epilogue, kernel="lowdim")
    online = flow_rhs(*args, epilogue=epilogue, kernel="online")
    assert relative_error(lowdim, online.cpu().double()) < 2 * TOL
    if epilogue == "tangent":
        assert (x * lowdim).sum(-1).abs().max() < 1e-5


def test_auto_takes_the_lowdim_kernel_only_where_it_applies(rng, device):
    q, k, v = (tensors(rng, (1, 1, 40, 3), device) for _ in range(3))
    # identical bits: auto and an explicit lowdim launch run the same kernel
    torch.testing.assert_close(attend(q, k, v, 1.0, tiles=Tiles(64, 32)),
                               attend(q, k, v, 1.0, tiles=Tiles(64, 32), kernel="lowdim"),
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match="lowdim"):
        attend(tensors(rng, (1, 1, 40, 16), device), tensors(rng, (1, 1, 40, 16), device),
               tensors(rng, (1, 1, 40, 16), device), 1.0, kernel="lowdim")
    mask = torch.as_tensor(rng.random((1, 1, 40, 40)) < 0.5).to(device)
    with pytest.raises(ValueError, match="lowdim"):
        attend(q, k, v, 1.0, mask=mask, kernel="lowdim")
    with pytest.raises(ValueError, match="kernel must be one of"):
        attend(q, k, v, 1.0, kernel="flash")
    # a causal Mask object is the causal band, which the lowdim kernel takes
    out = fused_attention(q, k, v, 1.0, mask=Causal(), kernel="lowdim")
    assert relative_error(out, reference(q, k, v, 1.0, causal=True)) < TOL


@pytest.mark.parametrize("kernel", ["lowdim", "online"])
@pytest.mark.parametrize("normalization", ["usa", "usa-shifted"])
def test_float64_usa_is_exact_to_rounding(rng, device, kernel, normalization):
    # the 1/m factor is formed in the accumulator's precision (a float32 1/m would leave
    # a relative error up to 6e-8)
    q, k, v = (tensors(rng, (2, 1, 999, 3), device, torch.float64) for _ in range(3))
    out = attend(q, k, v, 1.7, normalization=normalization, kernel=kernel)
    ref = reference(q, k, v, 1.7, normalization=normalization)
    assert relative_error(out, ref) < TOLERANCE[torch.float64]
