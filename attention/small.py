"""Dense attention for many small problems (batch of n, m <= a few hundred) on the CPU.

For a batch of small attention problems, SDPA's tiling and a max-reduction over short
rows cost more than the arithmetic. This path materialises the (batch, n, m) scores,
exponentiates them in place and never takes a row maximum: it shifts row i by the
a-priori bound

    c_i = |beta| * ||q_i|| * max_j ||k_j||  >=  max_j beta <q_i, k_j>,

so that every shifted score lies in [-2 c_i, 0]. Softmax is invariant under a per-row
shift, and no exponential overflows; none underflows to a zero row while 2 c_i stays
below the dtype's exponent range (``SAFE_SPAN``). On the sphere with Q = K = I the
bound is attained on the diagonal (c_i = beta), so the shift is the exact row maximum.
Where the bound is too loose the row maximum is taken as usual.

Only what SDPA and the reference already define is computed here (softmax, USA and
shifted USA, no mask); ``attention.router`` picks this path ("small").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attention.array_api import Array, backend_of
from attention.reference import Normalization

#: Largest 2 c_i for which exp(-2 c_i) is a normal number of the dtype, with margin.
SAFE_SPAN = {"float64": 600.0, "float32": 70.0}

#: n * m up to which the router's "auto" takes this path on the CPU.
SMALL_LIMIT = 128 * 128


def _row_norms(x: Array) -> Array:
    """||x_i|| with a trailing axis of size 1."""
    if backend_of(x) == "torch":
        return x.norm(dim=-1, keepdim=True)
    return np.sqrt(np.einsum("...i,...i->...", x, x))[..., None]


def _row_max(a: Array) -> Array:
    return a.amax(-1, keepdim=True) if backend_of(a) == "torch" else a.max(-1, keepdims=True)


def _exp_inplace(a: Array) -> Array:
    return a.exp_() if backend_of(a) == "torch" else np.exp(a, out=a)


def _with_ones(v: Array) -> Array:
    """v with a column of ones appended: (s @ [v, 1])[..., -1] is the row sum of s."""
    if backend_of(v) == "torch":
        import torch

        return torch.cat([v, v.new_ones((*v.shape[:-1], 1))], -1)
    return np.concatenate([v, np.ones_like(v[..., :1])], -1)


def small_attend(
    q: Array,
    k: Array,
    v: Array,
    beta: Any,
    *,
    normalization: Normalization = "softmax",
) -> Array:
    """A v for numpy arrays or CPU torch tensors q (..., n, e), k (..., m, e), v (..., m, f).

    ``beta`` is a scalar or broadcasts against (..., 1, 1). Same result as
    :func:`attention.reference.attend` without mask, to rounding.
    """
    s = q @ k.swapaxes(-1, -2)
    if not (np.ndim(beta) == 0 and float(beta) == 1.0):
        s *= beta
    if normalization == "softmax":
        q_norms = _row_norms(q)
        k_norms = q_norms if k is q else _row_norms(k)
        bound = abs(beta) * q_norms * _row_max(k_norms.swapaxes(-1, -2))
        loose = 2 * float(bound.max()) >= SAFE_SPAN.get(str(q.dtype).removeprefix("torch."), 0.0)
        s -= _row_max(s) if loose else bound
        out = _exp_inplace(s) @ _with_ones(v)
        return out[..., :-1] / out[..., -1:]
    if normalization == "usa-shifted":
        s -= beta
    return (_exp_inplace(s) @ v) / s.shape[-1]
