"""Suite ``rhs-rk4``: one right-hand side and one RK4 step of SA on the sphere.

For tokens x (batch, n, d) on the unit sphere the right-hand side is

    f(x)_i = P^perp_{x_i} sum_j A_ij x_j,   A = softmax_j(beta <x_i, x_j>),
    P^perp_x v = v - <x, v> x,

and the step is classical RK4 followed by the retraction x -> x / |x|. Implementations:

* ``default-numpy`` / ``default-torch`` - the package: ``SA(beta)(0.0, x)`` and
  ``ClassicalRK4().step(field, 0.0, x, h)`` on numpy arrays / torch tensors;
* ``symmetric``   - ``attention.symmetric.symmetric_rhs`` (numba, CPU): tiles over pairs
  (I, J <= I) with one shift beta max |x|^2, each exponential serving two rows;
* ``sdpa``        - written here directly: torch ``scaled_dot_product_attention`` on
  (batch, 1, n, d) inputs (the shape its fused kernel takes), then the projection;
* ``numpy-dense`` - written here directly: the n x n scores, softmax in place, matmul,
  projection. It is the only CPU path that stores an n x n matrix.

On ``--device cuda`` (``experiments.bench.gpu``): ``triton-fused`` - the package's fused
field (``dynamics.gpu``: one Triton launch per right-hand side, what ``simulate`` runs on
CUDA); ``default-torch`` - ``SA(beta)(0, x)`` on CUDA tensors (the Triton attention
through ``attend_fast``, then the projection in torch); ``sdpa``; ``torch-dense`` - the
materialised n x n version on the GPU (``dense_torch``, written here).

The baselines share an RK4 written here, independent of the package's tableau
code. Every path is checked against the package's materialised float64 reference
(``attention.reference``, via ``SA(beta, path="reference")``).

The machine's limit for one right-hand side (DESIGN, "Performance model") is
estimated as  batch (4 n^2 d / F + n^2 / E)  seconds, with F the GEMM rate and E the
exp rate measured here with torch at the same thread count (on CUDA: the TF32 GEMM
rate and the special-function units' exp2 rate, measured on the card); an RK4 step is
four of them (the O(n d) projection and stage combinations are left out).
"""

from __future__ import annotations

import time
from functools import cache, partial

import numpy as np
import torch

from attention.symmetric import symmetric_rhs
from dynamics.fields.attention import SA
from dynamics.integrators.schemes import ClassicalRK4
from experiments.bench.cli import run_suite_command
from experiments.bench.gpu import cuda_rates, fused, padded_sdpa_rhs, tokens
from experiments.bench.registry import Case, Grid, Implementation, Ratio, Suite


def _inputs(case: Case, seed: int) -> np.ndarray:
    """Tokens drawn uniformly on the sphere, float64 (batch, n, d)."""
    x = np.random.default_rng(seed).standard_normal((case.batch, case.n, case.d))
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _rk4(f, x, h: float, norm):
    """Classical RK4 step followed by the retraction y / |y|."""
    k1 = f(x)
    k2 = f(x + (h / 2) * k1)
    k3 = f(x + (h / 2) * k2)
    k4 = f(x + h * k3)
    y = x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return y / norm(y)


# -- the package's default path ------------------------------------------------------------
def _default(case: Case, x0: np.ndarray, backend: str = "numpy"):
    x = x0.astype(case.dtype) if backend == "numpy" else tokens(case, x0)
    field = SA(case.beta)
    scheme = ClassicalRK4()
    return {
        "rhs": lambda: field(0.0, x),
        "rk4": lambda: scheme.step(field, 0.0, x, case.h),
    }


# -- the symmetric tiled CPU field ---------------------------------------------------------------
def _symmetric(case: Case, x0: np.ndarray):
    x = np.ascontiguousarray(x0.astype(case.dtype))
    f = partial(symmetric_rhs, beta=case.beta)
    return {"rhs": lambda: f(x), "rk4": lambda: _rk4(f, x, case.h, _numpy_norm)}


# -- baseline: torch SDPA + projection ------------------------------------------------------
def _torch_norm(y: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(y, dim=-1, keepdim=True)


# -- baseline on CUDA: materialised torch -------------------------------------------------------
def _dense_torch_rhs(x: torch.Tensor, beta: float) -> torch.Tensor:
    s = torch.matmul(x, x.transpose(-1, -2))  # (batch, n, n), the one stored matrix
    s.mul_(beta)
    s.sub_(s.amax(dim=-1, keepdim=True))
    s.exp_()
    drive = torch.matmul(s, x) / s.sum(dim=-1, keepdim=True)
    return drive - (x * drive).sum(dim=-1, keepdim=True) * x


def dense_torch(case: Case, x0: np.ndarray):
    """The materialised version on the GPU: one (batch, n, n) buffer for the scores."""
    x = tokens(case, x0)
    f = partial(_dense_torch_rhs, beta=case.beta)
    return {"rhs": lambda: f(x), "rk4": lambda: _rk4(f, x, case.h, _torch_norm)}


def _sdpa(case: Case, x0: np.ndarray):
    x = tokens(case, x0)
    f = partial(padded_sdpa_rhs, beta=case.beta)
    return {"rhs": lambda: f(x), "rk4": lambda: _rk4(f, x, case.h, _torch_norm)}


# -- baseline: materialised numpy --------------------------------------------------------------
def _dense_numpy_rhs(x: np.ndarray, beta: float) -> np.ndarray:
    s = x @ np.swapaxes(x, -1, -2)  # (batch, n, n), the one stored matrix
    s *= beta
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    drive = (s @ x) / s.sum(axis=-1, keepdims=True)
    return drive - np.sum(x * drive, axis=-1, keepdims=True) * x


def _numpy_norm(y: np.ndarray) -> np.ndarray:
    return np.linalg.norm(y, axis=-1, keepdims=True)


def _numpy_dense(case: Case, x0: np.ndarray):
    x = x0.astype(case.dtype)
    f = partial(_dense_numpy_rhs, beta=case.beta)
    return {"rhs": lambda: f(x), "rk4": lambda: _rk4(f, x, case.h, _numpy_norm)}


# -- the reference ---------------------------------------------------------------------------
def _reference(case: Case, x0: np.ndarray) -> dict[str, np.ndarray]:
    """float64, through the package's materialised attention (``attention.reference``)."""
    field = SA(case.beta, path="reference")
    return {"rhs": field(0.0, x0), "rk4": ClassicalRK4().step(field, 0.0, x0, case.h)}


# -- the machine's limit ------------------------------------------------------------------------
@cache
def _rates(dtype: str, device: str, threads: int) -> dict[str, float]:
    """GEMM GFLOP/s (two 1024 x 1024 matrices) and exp/s (2^22 entries), best of 5."""
    tdtype = getattr(torch, dtype)
    a, b = (torch.rand(1024, 1024, dtype=tdtype, device=device) for _ in range(2))
    e = torch.rand(1 << 22, dtype=tdtype, device=device) - 1
    out = torch.empty_like(e)

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    gemm = 2 * 1024**3 / best(lambda: torch.matmul(a, b)) / 1e9
    exp = e.numel() / best(lambda: torch.exp(e, out=out))
    return {"gemm_gflops": gemm, "exp_per_s": exp}


def _limit(case: Case, op: str) -> tuple[float, dict[str, float]]:
    if case.device != "cpu":
        rates = cuda_rates(case.dtype)
    else:
        rates = _rates(case.dtype, case.device, torch.get_num_threads())
    n2 = case.n * case.n
    rhs = case.batch * (4 * n2 * case.d / (1e9 * rates["gemm_gflops"]) + n2 / rates["exp_per_s"])
    return rhs * (4 if op == "rk4" else 1), rates


def _work(case: Case, op: str) -> dict[str, float]:
    """Exponentials and FLOPs (4 n^2 d: scores and the weighted sum) of one call."""
    calls = 4 if op == "rk4" else 1
    n2 = case.n * case.n * case.batch * calls
    return {"exp": float(n2), "flop": float(4 * n2 * case.d)}


SUITE = Suite(
    name="rhs-rk4",
    summary="one SA right-hand side and one RK4 step on the sphere",
    ops=("rhs", "rk4"),
    implementations=(
        Implementation("default-numpy", "default", "SA(beta)(0, x), x numpy", _default),
        Implementation("default-torch", "default", "SA(beta)(0, x), x torch",
                       partial(_default, backend="torch"),
                       devices=("cpu", "cuda")),
        Implementation("symmetric", "default", "numba: symmetric tiles, one shift, fused "
                       "projection (attention.symmetric)", _symmetric),
        Implementation("sdpa", "baseline", "torch SDPA (4-d) + projection", _sdpa,
                       devices=("cpu", "cuda")),
        Implementation(
            "numpy-dense", "baseline", "numpy: n x n scores, softmax, matmul, projection",
            _numpy_dense, stores_dense=True,
        ),
    ),
    reference=_reference,
    inputs=_inputs,
    ratios=(
        Ratio("default/SDPA", "default-numpy", "sdpa", "<= 1 (no slower than SDPA + projection)"),
        Ratio("default-torch/SDPA", "default-torch", "sdpa", "<= 1"),
        Ratio("symmetric/SDPA", "symmetric", "sdpa",
              "<= 0.5 at n = 16384, d = 3; <= 1 at d = 64 (float32)"),
        Ratio("numpy/default", "numpy-dense", "default-numpy", ">= 4 at n = 16384"),
        Ratio("fused/SDPA", "triton-fused", "sdpa", "<= 0.5 at n = 65536, d <= 16, float32"),
        Ratio("fused/default-torch", "triton-fused", "default-torch", "<= 1"),
        Ratio("dense/fused", "torch-dense", "triton-fused", ">= 1"),
        Ratio("fused/online", "triton-fused", "triton-online", "<= 1"),
    ),
    grid=Grid(n=(256, 1024, 4096, 16384), d=(3, 64), dtypes=("float32", "float64")),
    quick=Grid(n=(256, 1024), d=(3, 64), dtypes=("float32", "float64")),
    limit=_limit,
    work=_work,
    # the paths added on CUDA (``Suite.for_device``); the fused one first: the reference for
    # agreement and the path set against the limit
    device_implementations={"cuda": (
        Implementation("triton-fused", "default", "fused Triton field (dynamics.gpu), CUDA",
                       fused, devices=("cuda",)),
        Implementation("triton-online", "baseline", "the fused field on the online-softmax "
                       "kernel", partial(fused, kernel="online"), devices=("cuda",)),
        Implementation("torch-dense", "baseline", "torch on the GPU: n x n scores, softmax, "
                       "matmul, projection", dense_torch, stores_dense=True, devices=("cuda",)),
    )},
    device_grids={"cuda": (Grid(n=(4096, 65536, 1 << 20), d=(3, 16, 64, 128), dtypes=("float32",)),
                           Grid(n=(4096,), d=(3, 64), dtypes=("float32",)))},
)


def run(args) -> int:
    """``python -m experiments bench --suite rhs-rk4``."""
    return run_suite_command(SUITE, args)
