"""One call for A v on any backend: picks the fastest path that computes the same thing.

Paths (each is tested against :func:`attention.reference.attend` on random inputs):

* ``"reference"`` - materialise the n x m matrix (array API; any backend);
* ``"chunked"``   - the same in blocks of query rows, memory O(chunk * m);
* ``"sdpa"``      - torch ``scaled_dot_product_attention`` (numpy arrays go through
  ``torch.from_numpy`` without a copy);
* ``"small"``     - dense with an a-priori row shift (:mod:`attention.small`), for
  batches of small problems on the CPU;
* ``"triton"``    - the fused Triton kernel (:mod:`attention.triton`), for CUDA tensors.

``"auto"`` takes Triton for CUDA torch tensors when triton is installed, ``"small"`` for
unmasked numpy and CPU torch problems with n * m <= ``SMALL_LIMIT``, SDPA for larger torch
and numpy arrays, and for JAX the dense reference up
to n * m = 4096^2 entries per batch element and the chunked form above it. No path
stores an n x n matrix above n = 4096 except ``"reference"`` when asked for by name.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from attention.backend import Array, backend_of
from attention.reference import Normalization, attend, attend_chunked, check_normalization
from attention.sdpa import sdpa_attend
from attention.small import SMALL_LIMIT, small_attend

Path = Literal["auto", "reference", "chunked", "sdpa", "small", "triton"]
PATHS: tuple[str, ...] = ("auto", "reference", "chunked", "sdpa", "small", "triton")
DENSE_LIMIT = 4096 * 4096


def _chunk_rows(m: int) -> int:
    """Query rows per block so that one block holds about 2^22 scores."""
    return max(64, (1 << 22) // max(m, 1))


def _triton_route(q: Array, path: str):
    """``attention.triton`` when it should and can take q (CUDA torch), else None."""
    if path not in ("auto", "triton"):
        return None
    if path == "auto" and getattr(getattr(q, "device", None), "type", None) != "cuda":
        return None
    try:
        import attention.triton as kernels
    except ImportError as err:
        if path == "triton":
            raise ValueError(
                "path='triton' needs triton: pip install 'attention-flows[triton]'"
            ) from err
        return None
    if kernels.runs_here(q):
        return kernels
    if path == "triton":
        raise ValueError(f"path='triton' needs CUDA torch tensors, got {type(q).__name__}")
    return None


def _numpy_via_torch(q, k, v, beta, normalization, causal) -> Array | None:
    import torch

    tq, tk, tv = (torch.from_numpy(np.ascontiguousarray(a)) for a in (q, k, v))
    tb = torch.from_numpy(np.asarray(beta, dtype=q.dtype)) if np.ndim(beta) else beta
    out = sdpa_attend(tq, tk, tv, tb, normalization=normalization, causal=causal)
    return None if out is None else out.numpy()


def attend_fast(
    q: Array,
    k: Array,
    v: Array,
    beta: Any,
    *,
    normalization: Normalization = "softmax",
    causal: bool = False,
    path: Path = "auto",
) -> Array:
    """A v for q (..., n, e), k (..., m, e), v (..., m, f); see the module docstring."""
    check_normalization(normalization)
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    backend = backend_of(q)
    n, m = q.shape[-2], k.shape[-2]
    kernels = _triton_route(q, path) if backend == "torch" else None
    if kernels is not None:
        return kernels.attend_any(q, k, v, beta, normalization=normalization, causal=causal)
    if path == "triton":
        raise ValueError("path='triton' needs CUDA torch tensors")
    on_cpu = backend == "numpy" or (backend == "torch" and q.device.type == "cpu")
    if path == "small" or (path == "auto" and on_cpu and not causal and n * m <= SMALL_LIMIT):
        if not on_cpu or causal:
            raise ValueError("path='small' needs unmasked numpy or CPU torch inputs")
        return small_attend(q, k, v, beta, normalization=normalization)
    if path in ("auto", "sdpa") and backend in ("torch", "numpy"):
        if backend == "torch":
            out = sdpa_attend(q, k, v, beta, normalization=normalization, causal=causal)
        else:
            out = _numpy_via_torch(q, k, v, beta, normalization, causal)
        if out is not None:
            return out
        if path == "sdpa":
            raise ValueError(
                f"SDPA cannot express normalization={normalization!r} on this device; "
                "use path='chunked'"
            )
    elif path == "sdpa":
        raise ValueError("path='sdpa' needs torch or numpy arrays; JAX uses 'reference'/'chunked'")
    if path == "reference" or (path == "auto" and n * m <= DENSE_LIMIT):
        return attend(q, k, v, beta, normalization=normalization, causal=causal)
    return attend_chunked(
        q, k, v, beta, normalization=normalization, causal=causal, chunk=_chunk_rows(m)
    )
