"""The fused flow right-hand side, the CUDA route of simulate, dispatch and boundary errors."""

import numpy as np
import pytest
import torch

from attention.router import attend_fast
from attention.triton import attend, flow_rhs
from dynamics import SA, USA, MultiHeadAttention, Noisy, PeriLN, PreLN, PureSelfAttention, simulate
from dynamics.gpu import FusedAttention, GraphedScheme, fuse, route
from dynamics.integrators.schemes import FIXED_STEP_SCHEMES

from .helpers import TOLERANCE, reference, relative_error, sphere, tensors

TOL = TOLERANCE[torch.float32]


@pytest.mark.parametrize("d", [2, 3, 16, 64])
def test_tangent_epilogue_is_the_projected_head_sum(rng, device, d):
    B, n = 2, 83
    x = sphere(rng, B, n, d, device)
    betas = torch.tensor([0.7, -1.2, 3.0])
    q = x[:, None].expand(B, 3, n, d)
    out = flow_rhs(x, q, x[:, None], x[:, None], betas.to(device))
    xd = x.cpu().double()
    drive = sum(reference(xd[:, None], xd[:, None], xd[:, None], float(b))[:, 0] for b in betas)
    expected = drive - (xd * drive).sum(-1, keepdim=True) * xd
    assert relative_error(out, expected) < TOL
    # the velocity is tangent: <x_i, f_i> = 0 up to rounding
    assert (x * out).sum(-1).abs().max() < 1e-5


def test_unit_and_identity_epilogues(rng, device):
    x = sphere(rng, 1, 40, 3, device)
    drive = reference(x[:, None], x[:, None], x[:, None], 2.0)[:, 0]
    unit = flow_rhs(x, x[:, None], x[:, None], x[:, None], 2.0, epilogue="unit")
    assert relative_error(unit, drive / drive.norm(dim=-1, keepdim=True)) < TOL
    plain = flow_rhs(x, x[:, None], x[:, None], x[:, None], 2.0, epilogue=None)
    assert relative_error(plain, drive) < TOL


FIELDS = {
    "SA": lambda rng: SA(2.0),
    "USA-causal": lambda rng: USA(1.0, causal=True),
    "pure": lambda rng: PureSelfAttention(0.5),
    "PreLN": lambda rng: PreLN(1.5),
    "PeriLN": lambda rng: PeriLN(1.0),
    "multihead": lambda rng: MultiHeadAttention(
        (SA(1.0), SA(2.0, Q=rng.standard_normal((3, 3)), V=rng.standard_normal((3, 3))))),
}


@pytest.mark.parametrize("name", list(FIELDS))
def test_fused_field_equals_the_field(rng, device, name):
    field = FIELDS[name](rng)
    x = sphere(rng, 2, 45, 3, device)
    fused = fuse(field).on(x)
    assert isinstance(fused, FusedAttention)
    reference_field = field.on(x.cpu().double())
    expected = reference_field(0.0, x.cpu().double())
    assert relative_error(fused(0.0, x), expected) < 5 * TOL
    if hasattr(field, "drive") and name != "PeriLN":
        assert relative_error(fused.drive(0.0, x), reference_field.drive(0.0, x.cpu().double())) \
            < 5 * TOL


def test_simulate_on_the_triton_route_matches_the_native_route(rng, device):
    x0 = sphere(rng, 2, 30, 3, device)
    times = [0.0, 0.25, 0.6]
    fused = simulate(SA(3.0), x0, times, method="rk4", dt=0.1, engine="triton", reduce=False)
    native = simulate(SA(3.0), x0.cpu().double(), times, method="rk4", dt=0.1, engine="native",
                      reduce=False)
    assert fused.values.device.type == device
    assert relative_error(fused.values, native.values) < 1e-5
    norms = torch.linalg.vector_norm(fused.values, dim=-1)
    assert (norms - 1).abs().max() < 1e-6


def test_adaptive_steps_and_clustering_event_on_the_triton_route(rng, device):
    cap = rng.standard_normal((2, 12, 3)) * 0.6 + np.array([0.0, 0.0, 1.0])  # one hemisphere
    x0 = torch.as_tensor(cap / np.linalg.norm(cap, axis=-1, keepdims=True)).to(device)
    kwargs = dict(method="dopri5", rtol=1e-6, atol=1e-8, stop_when_clustered=0.01, reduce=False)
    fused = simulate(SA(1.0), x0, [0.0, 8.0], engine="triton", **kwargs)
    native = simulate(SA(1.0), x0.cpu(), [0.0, 8.0], engine="native", **kwargs)
    assert np.all(np.isfinite(native.cluster_time))
    np.testing.assert_allclose(fused.cluster_time, native.cluster_time, rtol=1e-6)


def test_noisy_fields_fuse_their_drift(rng, device):
    field = Noisy(SA(1.0), kappa=4.0)
    x0 = sphere(rng, 1, 20, 3, device)
    fused = route(field, x0, "triton")
    assert isinstance(fused, Noisy) and isinstance(fused.field, FusedAttention)
    a = simulate(field, x0, [0.0, 0.2], method="euler-maruyama", dt=0.1, seed=3, engine="triton")
    b = simulate(field, x0.cpu().double(), [0.0, 0.2], method="euler-maruyama", dt=0.1, seed=3,
                 engine="native")
    assert relative_error(a.values, b.values) < 1e-5


def test_graphed_scheme_steps_like_its_base(rng, device):
    """On a GPU the step is a CUDA-graph replay; elsewhere it falls back to the base."""
    x = sphere(rng, 2, 33, 3, device)
    field = fuse(SA(2.0)).on(x)
    base = FIXED_STEP_SCHEMES["rk4"]
    graphed = GraphedScheme(base, 0.1)
    expected = base.step(field, 0.0, x, 0.1)
    for _ in range(2):  # capture, then replay
        torch.testing.assert_close(graphed.step(field, 0.0, x, 0.1), expected)
    x2 = sphere(rng, 2, 33, 3, device)
    torch.testing.assert_close(graphed.step(field, 0.0, x2, 0.1), base.step(field, 0.0, x2, 0.1))


def test_dispatch_routes_only_cuda_tensors_to_triton_by_default(rng, device):
    q, k, v = (tensors(rng, (2, 17, 3), device) for _ in range(3))
    forced = attend_fast(q, k, v, 1.0, path="triton")
    auto = attend_fast(q, k, v, 1.0)
    expected = reference(q[:, None], k[:, None], v[:, None], 1.0)[:, 0]
    assert relative_error(forced, expected) < TOL
    assert relative_error(auto, expected) < TOL


def test_engine_auto_keeps_cpu_fields_unfused(rng):
    x = torch.as_tensor(rng.standard_normal((1, 5, 3)))
    field = SA(1.0)
    assert route(field, x, "auto") is field
    assert route(field, x, "native") is field


def test_boundary_errors(rng, device):
    q = tensors(rng, (1, 2, 10, 3), device)
    k = tensors(rng, (1, 1, 10, 3), device)
    with pytest.raises(ValueError, match="batch, heads, tokens"):
        attend(q[0], k, k, 1.0)
    with pytest.raises(TypeError, match="dtype"):
        attend(q.to(torch.int32), k, k, 1.0)
    with pytest.raises(ValueError, match="dividing"):
        attend(q, tensors(rng, (1, 3, 10, 3), device), tensors(rng, (1, 3, 10, 3), device), 1.0)
    with pytest.raises(ValueError, match="normalization"):
        attend(q, k, k, 1.0, normalization="sparsemax")
    with pytest.raises(ValueError, match="at most 4 value coordinates"):
        attend(q, k, tensors(rng, (1, 1, 10, 5), device), 1.0, pv="fma")
    with pytest.raises(ValueError, match="beta"):
        attend(q, k, k, torch.ones(5, device=device))
    with pytest.raises(ValueError, match="heads='sum'"):
        attend(q, k, k, 1.0, epilogue="tangent")
    with pytest.raises(ValueError, match="points x"):
        flow_rhs(None, q, k, k, 1.0)
    with pytest.raises(ValueError, match="as many keys as queries"):
        attend(q, tensors(rng, (1, 1, 12, 3), device), tensors(rng, (1, 1, 12, 3), device), 1.0,
               causal=True)
    with pytest.raises(ValueError, match="fuses attention fields"):
        route(object(), q[:, 0], "triton")
    with pytest.raises(ValueError, match="engine"):
        simulate(SA(1.0), q[:, 0], [0.0, 0.1], method="rk4", dt=0.1, engine="warp")
