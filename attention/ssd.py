"""SSD with RoPE: the linear-attention counterpart of the variants (attention.md §6.2, §8 #11).

Mamba-2's state space duality (SSD) written as masked attention, per head h,

    y_i = sum_{j <= i} <R_i C_i, R_j B_j> exp(A sum_{t=j+1}^{i} Delta_t) Delta_j x_j + D x_i,

with x_j = x_j W_x (p channels), B_j = x_j W_B and C_j = x_j W_C (N state channels),
Delta_j = softplus(x_j W_dt + b_dt) > 0 and A < 0 (a decay). Wonderful Matrices
(arXiv 2412.11834, the Cheems code) rotates B and C with the rotary tables of Q and K:
since <R_i C_i, R_j B_j> = <C_i, R_{j-i} B_j>, the kernel depends on relative positions
only, and the recurrence keeps its constant state,

    h_i = exp(A Delta_i) h_{i-1} + Delta_i (R_i B_i) (x) x_i   (N x p),
    y_i = (R_i C_i) h_i + D x_i.

Three forms compute the same y: ``"quadratic"`` (the n x n masked matrix),
``"recurrent"`` (the scan above: what a decoder runs, holding H N p numbers and no
per-token cache) and ``"chunked"`` (quadratic inside chunks, the recurrence between
them: the SSD algorithm). Shapes: W_x (H, d, p), W_B and W_C (H, d, N), W_dt (d, H),
b_dt, A and D (H,); the output concatenates the heads, (batch, n, H p). B and C are per
head here (Mamba-2 may share them across heads: give equal slices).

An optional output map W_out (H p, d_out) closes the layer as Cheems's ``out_proj`` does
(there H p = d and W_out is d x d): y W_out, (batch, n, d_out). With d_out = d the layer is
a map R^{n x d} -> R^{n x d}, the right-hand side of a flow (``dynamics.fields.ssd``).

SSD is not an :class:`attention.operator.Operator`: its kernel <R_i C_i, R_j B_j> times a
decay is not normalised over the keys (no softmax, no router path), and a decoder keeps a
constant state instead of a per-token cache. ``attention.ssd_layer.SSDLayer`` is its torch
layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from attention.array_api import Array, device, from_numpy, namespace, rng
from attention.masks import as_backend_mask, convert_arrays, positions
from attention.positional import Rope
from attention.variants.standard import check_weight

FORMS: tuple[str, ...] = ("quadratic", "recurrent", "chunked")
ROPE = Rope()


@dataclass(frozen=True)
class StateSpaceDuality:
    """SSD with RoPE on B and C (module docstring); ``rope`` None gives plain Mamba-2 SSD;
    ``W_out`` None leaves the heads concatenated (width H p)."""

    W_x: Any
    W_B: Any
    W_C: Any
    W_dt: Any
    b_dt: Any
    A: Any
    D: Any
    rope: Rope | None = ROPE
    W_out: Any = None

    ARRAYS: ClassVar[tuple[str, ...]] = ("W_x", "W_B", "W_C", "W_dt", "b_dt", "A", "D",
                                         "W_out")

    def __post_init__(self) -> None:
        H, d, p = check_weight("W_x", self.W_x)
        hb, _, N = check_weight("W_B", self.W_B, rows=d)
        hc, _, nc = check_weight("W_C", self.W_C, rows=d)
        if hb != H or hc != H or nc != N:
            raise ValueError(f"W_B and W_C must both have shape ({H}, {d}, N), got "
                             f"{tuple(self.W_B.shape)} and {tuple(self.W_C.shape)}")
        if tuple(self.W_dt.shape) != (d, H):
            raise ValueError(f"W_dt must have shape ({d}, {H}), got {tuple(self.W_dt.shape)}")
        for name in ("b_dt", "A", "D"):
            if tuple(getattr(self, name).shape) != (H,):
                raise ValueError(f"{name} must have shape ({H},), got "
                                 f"{tuple(getattr(self, name).shape)}")
        if self.rope is not None and N % 2:
            raise ValueError(f"RoPE on B and C needs an even state size N, got {N}")
        d_out = H * p
        if self.W_out is not None:
            shape = tuple(getattr(self.W_out, "shape", ()))
            if len(shape) != 2 or shape[0] != H * p:
                raise ValueError(f"W_out must have shape ({H * p}, d_out) (heads x head_dim "
                                 f"rows), got {shape}")
            d_out = int(shape[1])
        for key, value in (("n_heads", H), ("d_in", d), ("head_dim", p), ("state_dim", N),
                           ("d_out", d_out)):
            object.__setattr__(self, key, value)

    @classmethod
    def init(cls, d: int, heads: int, state: int, head_dim: int | None = None, *,
             seed: Any = 0, backend: str = "numpy", rope: Rope | None = ROPE,
             output: bool = False) -> Any:
        """Random weights: W ~ N(0, 1/d); Delta's bias so that softplus(b_dt) is uniform on
        [1e-3, 1e-1]; A = -e^u with u uniform on [0, log 16]; D = 1 (Mamba-2's ranges).
        ``output``: also an output map W_out (H p, d) ~ N(0, 1/(H p)), drawn after the rest
        (the other weights of a seed do not change)."""
        gen = rng(seed)
        p = head_dim if head_dim is not None else d // heads
        dt = np.exp(gen.uniform(np.log(1e-3), np.log(1e-1), heads))
        arrays = {
            "W_x": gen.standard_normal((heads, d, p)) / np.sqrt(d),
            "W_B": gen.standard_normal((heads, d, state)) / np.sqrt(d),
            "W_C": gen.standard_normal((heads, d, state)) / np.sqrt(d),
            "W_dt": gen.standard_normal((d, heads)) / np.sqrt(d),
            "b_dt": np.log(np.expm1(dt)),
            "A": -np.exp(gen.uniform(0.0, np.log(16.0), heads)),
            "D": np.ones(heads),
        }
        if output:
            arrays["W_out"] = gen.standard_normal((heads * p, d)) / np.sqrt(heads * p)
        return cls(**{k: from_numpy(a, backend) for k, a in arrays.items()}, rope=rope)

    def on(self, like: Array) -> StateSpaceDuality:
        """These weights on the backend, dtype and device of ``like``."""
        return convert_arrays(self, like)

    @property
    def state_elements(self) -> int:
        """Numbers a decoder holds per layer, whatever the sequence length: H N p."""
        return self.n_heads * self.state_dim * self.head_dim

    # -- the pieces ----------------------------------------------------------------------
    def _inputs(self, x: Array, pos: Any) -> tuple[Array, Array, Array, Array]:
        """(x_h (B, H, n, p), R B (B, H, n, N), R C (B, H, n, N), Delta (B, H, n))."""
        if getattr(x, "ndim", None) != 3 or x.shape[-1] != self.d_in:
            raise ValueError(f"tokens must have shape (batch, n, {self.d_in}), got "
                             f"{tuple(getattr(x, 'shape', ()))}")
        pos = positions(x.shape[-2], pos)
        xp = namespace(x)
        xh = x[:, None]
        b, c = xh @ self.W_B, xh @ self.W_C
        if self.rope is not None:
            b, c = self.rope(b, pos), self.rope(c, pos)
        pre = x @ self.W_dt + self.b_dt
        delta = xp.permute_dims(xp.logaddexp(xp.zeros_like(pre), pre), (0, 2, 1))
        return xh @ self.W_x, b, c, delta

    def forward(self, x: Array, pos: Any = None, *, form: str = "chunked",
                chunk: int = 16) -> Array:
        """y (B, n, H p), or y W_out (B, n, d_out), for tokens x (B, n, d) at positions
        ``pos`` (default 0..n-1)."""
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
        xh, b, c, delta = self._inputs(x, pos)
        xp = namespace(x)
        if form == "quadratic":
            y = _block(xh, b, c, delta, self.A)
        elif form == "recurrent":
            y, _ = _scan(xh, b, c, delta, self.A)
        else:
            y, _ = _chunked(xh, b, c, delta, self.A, chunk)
        y = y + self.D[:, None, None] * xh
        B, H, n, p = y.shape
        y = xp.reshape(xp.permute_dims(y, (0, 2, 1, 3)), (B, n, H * p))
        return y if self.W_out is None else y @ self.W_out

    __call__ = forward

    def state(self, x: Array, pos: Any = None) -> Array:
        """The recurrent state h_n (B, H, N, p) after the tokens x: all a decoder keeps."""
        xh, b, c, delta = self._inputs(x, pos)
        return _scan(xh, b, c, delta, self.A)[1]


def _block(xh: Array, b: Array, c: Array, delta: Array, A: Array) -> Array:
    """sum_{j <= i} <c_i, b_j> exp(A (cum_i - cum_j)) delta_j x_j inside one block."""
    xp = namespace(xh)
    n = xh.shape[-2]
    cum = xp.cumulative_sum(A[:, None] * delta, axis=-1)
    gap = cum[..., :, None] - cum[..., None, :]
    lower = as_backend_mask(np.arange(n)[None, :] <= np.arange(n)[:, None], gap)
    decay = xp.exp(xp.where(lower, gap, -xp.inf))
    kernel = (c @ xp.matrix_transpose(b)) * decay
    return kernel @ (delta[..., None] * xh)


def _scan(xh: Array, b: Array, c: Array, delta: Array, A: Array) -> tuple[Array, Array]:
    """The recurrence token by token: (y (B, H, n, p), final state (B, H, N, p))."""
    xp = namespace(xh)
    B, H, n, p = xh.shape
    N = b.shape[-1]
    h = xp.zeros((B, H, N, p), dtype=xh.dtype, device=device(xh))
    rows = []
    for i in range(n):
        keep = xp.exp(A * delta[..., i])[..., None, None]
        h = keep * h + (delta[..., i, None, None] * b[..., i, :, None]) * xh[..., i, None, :]
        rows.append(c[..., i, None, :] @ h)
    return xp.concat(rows, axis=-2), h


def _chunked(xh: Array, b: Array, c: Array, delta: Array, A: Array,
             chunk: int) -> tuple[Array, Array]:
    """The SSD algorithm: quadratic inside chunks, the state carried between them."""
    xp = namespace(xh)
    n = xh.shape[-2]
    h = None
    rows = []
    for s in range(0, n, chunk):
        sl = slice(s, min(s + chunk, n))
        xs, bs, cs, ds = xh[..., sl, :], b[..., sl, :], c[..., sl, :], delta[..., sl]
        y = _block(xs, bs, cs, ds, A)
        cum = xp.cumulative_sum(A[:, None] * ds, axis=-1)
        if h is not None:
            y = y + xp.exp(cum)[..., None] * (cs @ h)
        tail = xp.exp(cum[..., -1:] - cum)[..., None] * ds[..., None] * bs
        new = xp.matrix_transpose(tail) @ xs
        h = new if h is None else xp.exp(cum[..., -1])[..., None, None] * h + new
        rows.append(y)
    return xp.concat(rows, axis=-2), h
