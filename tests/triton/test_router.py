"""The router sends masked operator flows on CUDA tensors to the fused masked kernel.

Under the interpreter the tensors live on the CPU, so the router's device test
(``attention.router._on_cuda``) is patched to say CUDA, and every kernel launch is
recorded: the flows must run ``kernels.attention_kernel`` with their mask's rule and
their bias, and agree in float64 with the reference path on fresh random inputs.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

import attention.router
from attention.config import OperatorConfig, build
from attention.masks import BlockLayout
from attention.router import attend_fast, grouped_attention
from attention.triton import kernels, launch
from dynamics import simulate
from dynamics.fields.operator import OperatorField

from .helpers import TOLERANCE, relative_error, sphere, tensors

TOL = 1e3 * TOLERANCE[torch.float64]  # float64 kernels, summed over heads and RK4 stages


@pytest.fixture
def launches(monkeypatch):
    """The (kernel, ITER, RULE, BIAS, KEY_BIAS) of every launch, with "auto" seeing CUDA."""
    seen = []
    run = launch._run

    def spy(jit_kernel, autotuned, args, tiles, programs, step_m=None):
        name = "online" if jit_kernel is kernels.attention_kernel else "lowdim"
        seen.append((name, args.get("ITER"), args.get("RULE"), args.get("BIAS"),
                     args.get("KEY_BIAS")))
        return run(jit_kernel, autotuned, args, tiles, programs, step_m)

    monkeypatch.setattr(launch, "_run", spy)
    monkeypatch.setattr(attention.router, "_on_cuda", lambda x: True)
    return seen


def _operator(variant, **extra):
    cfg = OperatorConfig(variant, d_model=16, heads=2, **extra)  # head_dim 8: not low-d
    return build(cfg, 3, backend="torch", dtype="float64")


CAUSAL = ("online", kernels.ITER_CAUSAL, kernels.RULE_CAUSAL, kernels.BIAS_NONE, False)
ANCHORED = ("online", kernels.ITER_CAUSAL, kernels.RULE_ANCHORED, kernels.BIAS_NONE, False)


@pytest.mark.parametrize(("variant", "extra", "kernel"), [
    ("mha", {}, CAUSAL), ("gqa", dict(groups=1), CAUSAL),
    ("ansan", dict(anchors=(5, 6, 17, 30)), ANCHORED)], ids=["causal", "gqa", "anchored"])
def test_causal_and_anchored_flows_take_the_fused_masked_kernel(rng, device, launches, variant,
                                                                extra, kernel):
    op = _operator(variant, **extra).on(torch.empty(0, dtype=torch.float64, device=device))
    x = sphere(rng, 2, 37, 16, device, torch.float64)
    field, reference = OperatorField(op), OperatorField(replace(op, path="reference"))
    got = field(0.0, x)
    assert launches and set(launches) == {kernel}
    assert relative_error(got, reference(0.0, x).double().cpu()) < TOL
    launches.clear()
    times = [0.0, 0.2]
    fused = simulate(field, x, times, method="rk4", dt=0.1).final
    assert len(launches) == 8 and set(launches) == {kernel}  # 2 steps of 4 stages
    exact = simulate(reference, x, times, method="rk4", dt=0.1).final
    assert relative_error(fused, exact.cpu()) < TOL


@pytest.mark.parametrize(("variant", "extra", "kernel"), [
    ("prflash", dict(block=8, p_param=0.4), (kernels.ITER_LISTS, kernels.RULE_CAUSAL,
                                             kernels.BIAS_NONE, False)),
    ("prflash", dict(block=8, per_member=True), (kernels.ITER_LISTS, kernels.RULE_CAUSAL,
                                                 kernels.BIAS_NONE, False)),
    ("dma", {}, (kernels.ITER_CAUSAL, kernels.RULE_CAUSAL, kernels.BIAS_NONE, True)),
    ("dma", dict(window=5, dma_form="linear"), (kernels.ITER_ALL, kernels.RULE_DENSE,
                                                kernels.BIAS_NONE, True)),
    ("alibi", {}, (kernels.ITER_CAUSAL, kernels.RULE_CAUSAL, kernels.BIAS_LINEAR, False)),
    ("rope_alibi", dict(causal=False), (kernels.ITER_ALL, kernels.RULE_NONE,
                                        kernels.BIAS_TABLE, False)),
], ids=["prflash", "prflash-per-member", "dma", "dma-window", "alibi", "harmonic-full"])
def test_block_sparse_and_biased_operators_take_the_fused_kernel(rng, device, launches, variant,
                                                                 extra, kernel):
    op = _operator(variant, **extra).on(torch.empty(0, dtype=torch.float64, device=device))
    x = sphere(rng, 3, 41, 16, device, torch.float64)
    step = np.array([0, 2, 2]) if extra.get("per_member") else 2
    got = op.forward(x, step=step)
    assert launches and set(launches) == {("online", *kernel)}
    expected = replace(op, path="reference").forward(x, step=step)
    assert relative_error(got, expected.double().cpu()) < TOL


def test_dma_window_over_a_full_mask_falls_back_to_sdpa(rng, device, launches):
    """The kernel narrows only the causal mask by DMA's top-w: "auto" takes the next path."""
    op = _operator("dma", window=5, causal=False).on(torch.empty(0, dtype=torch.float64,
                                                                device=device))
    x = sphere(rng, 2, 30, 16, device, torch.float64)
    got = op.forward(x)
    assert launches == []
    assert relative_error(got, replace(op, path="reference").forward(x).cpu()) < TOL


def test_cpu_tensors_never_take_triton_under_auto(rng, monkeypatch):
    seen = []
    monkeypatch.setattr(launch, "_run", lambda *a, **k: seen.append(a))
    op = _operator("ansan", anchors=(3, 9))
    x = sphere(rng, 2, 20, 16, "cpu", torch.float64)
    OperatorField(op)(0.0, x)
    attend_fast(x, x, x, 2.0)
    assert seen == []


def test_the_table_refuses_what_a_named_path_does_not_take(rng, device):
    q = tensors(rng, (1, 2, 16, 8), device, torch.float64)
    c = q.cpu()
    allowed = np.tril(np.ones((16, 16), dtype=bool))
    refusals = [
        ("'triton-lowdim' does not take head dimension 8", q, dict(path="triton-lowdim")),
        ("'triton' does not take normalization 'sinkhorn'", q, dict(path="triton",
                                                                    normalization="sinkhorn")),
        ("'triton' does not take bias 'dense'", q, dict(path="triton", bias=q[..., :1] * 0 + 1)),
        ("'small' does not take mask 'dense'", c, dict(path="small", mask=allowed)),
        ("'flex' does not take dtype 'float64'", c, dict(path="flex")),
        ("'chunked' does not take bias 'dense'", c, dict(path="chunked", bias=c[..., :1, :1])),
    ]
    for message, t, options in refusals:
        with pytest.raises(ValueError, match=message):
            grouped_attention(t, t, t, 1.0, **options)
    with pytest.raises(ValueError, match="path must be one of"):
        grouped_attention(q, q, q, 1.0, path="flash")


def test_named_triton_path_equals_the_reference_with_a_layout_mask(rng, device):
    """By name the fused kernel runs wherever it runs; a dense mask goes in as a table."""
    q = tensors(rng, (2, 2, 48, 4), device, torch.float64)
    k, v = (tensors(rng, (2, 1, 48, 4), device, torch.float64) for _ in range(2))
    allowed = rng.random((48, 48)) < 0.3
    allowed |= np.eye(48, dtype=bool)
    got = grouped_attention(q, k, v, 0.9, mask=allowed, path="triton")
    expected = grouped_attention(q, k, v, 0.9, mask=allowed, path="reference")
    assert relative_error(got, expected.cpu()) < TOL
    layout = BlockLayout.from_dense(allowed, 16)
    tiled = grouped_attention(q, k, v, 0.9, mask=allowed, path="tiled", layout=layout)
    assert relative_error(tiled, expected.cpu()) < TOL
