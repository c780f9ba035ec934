"""The CUDA side of the ``rhs-rk4`` suite: the fused path, the GPU baselines, the card's rates.

* ``fused``           - the package's fused field (``dynamics.gpu.fuse(SA(beta))``): one
                        Triton launch per right-hand side, as ``simulate`` runs on CUDA;
                        ``kernel="online"`` forces it onto the online-softmax kernel (at
                        d <= 4 the default is the low-dimensional kernel,
                        ``attention/triton/lowdim.py``);
* ``padded_sdpa_rhs`` - torch SDPA + projection (on every device). On CUDA, SDPA's
                        memory-efficient kernel needs the head dimension to be a multiple of 4
                        (float32) or 8 (16-bit): d is zero-padded to that (the inner products
                        and the weighted sum do not change), else torch silently falls back
                        to its n x n math kernel;
* ``cuda_rates``      - the card's limits, measured once: float32 and TF32 GEMM rates
                        (cuBLAS, 8192^3) and the exp2 rate of the special-function units (a
                        Triton kernel of independent exp2 chains in registers).

The limit of one right-hand side uses the TF32 rate / 3 (the online kernel's float32
products are three TF32 products, "tf32x3") and the exp2 rate. At d <= 4 the fused path
is the low-dimensional kernel, whose products are float32 FMAs: there the exp2 rate alone
(n^2 / rate) is its floor, and the issue rate of about 8.5 instructions per pair
(n^2 * 8.5 / (SMs * 128 * clock)) a second one of the same size.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

from dynamics.fields.attention import SA
from dynamics.gpu import fuse
from dynamics.integrators.schemes import ClassicalRK4
from experiments.bench.registry import Case


def tokens(case: Case, x0: np.ndarray) -> torch.Tensor:
    """The float64 tokens ``x0`` as a torch tensor of the case's dtype on its device."""
    return torch.from_numpy(x0.astype(case.dtype)).to(case.device)


def fused(case: Case, x0: np.ndarray, kernel: str = "auto"):
    x = tokens(case, x0)
    field = fuse(SA(case.beta), kernel=kernel).on(x)
    scheme = ClassicalRK4()
    return {"rhs": lambda: field(0.0, x), "rk4": lambda: scheme.step(field, 0.0, x, case.h)}


def padded_sdpa_rhs(x: torch.Tensor, beta: float) -> torch.Tensor:
    """P^perp_x softmax(beta x x^T) x through SDPA on (batch, 1, n, d') inputs (the shape its
    fused kernels take), d' >= d padded on CUDA."""
    d = x.shape[-1]
    pad = (-d) % (4 if x.dtype == torch.float32 else 8) if x.is_cuda else 0
    xp = F.pad(x, (0, pad)) if pad else x
    x4 = xp[:, None]
    drive = F.scaled_dot_product_attention(x4, x4, x4, scale=beta)[:, 0, :, :d]
    return drive - (x * drive).sum(dim=-1, keepdim=True) * x


def _exp_kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def exp_chains(X, Y, ITERS: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        a = tl.load(X + offs)
        b, c, d = a + 0.25, a + 0.5, a + 0.75
        for _ in range(ITERS):
            a = tl.exp2(-a)
            b = tl.exp2(-b)
            c = tl.exp2(-c)
            d = tl.exp2(-d)
        tl.store(Y + offs, a + b + c + d)

    return exp_chains


def _median_ms(fn) -> float:
    import triton

    return float(triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median"))


@cache
def cuda_rates(dtype: str) -> dict[str, float]:
    """GEMM GFLOP/s (float32 and TF32, 8192^3) and exp2/s, measured on the current GPU."""
    size = 8192
    a, b = (torch.rand(size, size, device="cuda") for _ in range(2))
    flags = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        fp32 = 2 * size**3 / (_median_ms(lambda: a @ b) / 1e3) / 1e9
        torch.backends.cuda.matmul.allow_tf32 = True
        tf32 = 2 * size**3 / (_median_ms(lambda: a @ b) / 1e3) / 1e9
    finally:
        torch.backends.cuda.matmul.allow_tf32 = flags
    block, iters = 1024, 1024
    count = torch.cuda.get_device_properties(0).multi_processor_count * 64
    x = torch.rand(count * block, device="cuda")
    y = torch.empty_like(x)
    kernel = _exp_kernel()
    ms = _median_ms(lambda: kernel[(count,)](x, y, ITERS=iters, BLOCK=block, num_warps=8))
    exp_rate = 4 * iters * x.numel() / (ms / 1e3)
    return {"gemm_gflops": tf32 / 3, "fp32_gemm_gflops": fp32, "tf32_gemm_gflops": tf32,
            "exp_per_s": exp_rate}
