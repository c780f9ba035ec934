"""One router for attention: one table of paths, each declaring what it takes; one call.

Every path computes the grouped attention of :mod:`attention.reference` for queries
q (B, H, n, e), keys k (B|1, G, m, e) and values v (B|1, G, m, f) with G | H,

    o^h_i = sum_j P^h_ij v^{g(h)}_j,
    P^h_i. = normalise( scale <q^h_i, k^{g(h)}_j> + b^h_ij  over the keys j with M_ij = 1 ),

and is tested against that reference on random inputs. ``ROUTES`` is the one table: each
entry declares the backends, devices, dtypes, head dimensions, normalisations, mask kinds
("none", "causal", "dense" booleans, "planned": a mask object over positions 0..n-1) and
bias kinds ("none", "dense" values, "planned": a bias object) it takes. ``path="auto"``
runs the first entry that takes the call and whose size rule admits it (a path that finds
it cannot express the call after all returns None and the next one runs); a path by name
is checked against its entry, and a ValueError names what it does not take.

    name           what runs                                      auto: when
    triton-lowdim  fused low-d kernel (``attention.triton``)      CUDA tensors, e, f <= 4
    triton         fused online-softmax kernel, masks and biases  CUDA tensors
    small          dense, a-priori row shift (``attention.small``) CPU, unmasked, n m <= SMALL_LIMIT
    sdpa           torch scaled_dot_product_attention (``sdpa``)  torch; numpy lent if unmasked
    chunked        the reference in blocks of query rows          n m > DENSE_LIMIT
    reference      the dense matrix (``attention.reference``)     always
    flex, tiled    FlexAttention (``flex``), the FA2 recurrence   by name only
                   over the block layout (``online_softmax``)

Fused paths get mask and bias objects, which describe themselves to the kernel
(``Mask.kernel_plan``, ``Bias.kernel_bias``); the others their dense forms (:func:`dense_call`).
"auto" takes Triton for CUDA tensors only (:func:`_on_cuda`), never for CPU ones, even in
Triton's interpreter. No path stores an n x m matrix above DENSE_LIMIT entries except
"reference" by name. Entries: :func:`grouped_attention` (operators), :func:`attend_fast`
((..., n, e) inputs with broadcasting leading axes: the fields).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from attention.array_api import Array, backend_of, namespace, on_cuda, to_numpy
from attention.flex import flex_attend
from attention.masks import Bias, BlockLayout, Mask, check_rows, positions
from attention.online_softmax import tiled_attention
from attention.reference import (
    NORMALIZATIONS,
    NORMALIZATIONS_ALL,
    as_batch_of_heads,
    attend_chunked,
    check_heads,
    check_normalization,
    four_d,
    grouped,
    grouped_weights,
)
from attention.sdpa import sdpa_attend
from attention.small import SMALL_LIMIT, small_attend

DENSE_LIMIT = 4096 * 4096
FLOATS = ("float32", "float64", "bfloat16", "float16")


@dataclass(frozen=True)
class Call:
    """What a call asks besides q, k, v and the scale. mask: None, booleans (n, m), (B, n, m)
    or (B|1, H|1, n, m), or a ``Mask`` object over positions 0..n-1 (read at ``step``);
    bias: None, values broadcasting to (B, H, n, m), or a ``Bias`` object; lend: numpy
    arrays may borrow torch's SDPA (under "auto", and always for ``attend_fast``)."""

    normalization: str = "softmax"
    causal: bool = False
    mask: Any = None
    bias: Any = None
    step: Any = 0
    sinkhorn_iterations: int = 3
    layout: BlockLayout | None = None
    flex_compiled: bool = True
    lend: bool = False


def _kinds(call: Call, fused: bool) -> tuple[str, str]:
    """(mask kind, bias kind) of the call (module docstring) as a path with or without
    kernel plans sees it: objects are "planned" for fused paths, "dense" for the others."""
    mask = ("causal" if call.causal else "none") if call.mask is None else (
        "planned" if fused and isinstance(call.mask, Mask) else "dense")
    bias = "none" if call.bias is None else (
        "planned" if fused and isinstance(call.bias, Bias) else "dense")
    return mask, bias


def _on_cuda(x: Array) -> bool:
    """Whether "auto" may take the fused kernels: a CUDA torch tensor (tests patch this)."""
    return on_cuda(x)


class Facts(NamedTuple):
    """What the table reads off the queries, once per call (``facts``)."""

    backend: str
    device: str
    dtype: str


def facts(q: Array) -> Facts:
    backend = backend_of(q)
    return Facts(backend, q.device.type if backend == "torch" else "cpu", _name(q.dtype))


_name = functools.cache(lambda dtype: str(dtype).removeprefix("torch."))


@functools.cache
def _kernel_devices() -> tuple[str, ...]:
    """Where the Triton paths run: CUDA, the CPU in Triton's interpreter; () without triton."""
    if importlib.util.find_spec("triton") is None:
        return ()
    return ("cuda", "cpu") if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") else (
        "cuda",)


@dataclass(frozen=True)
class Route:
    """One path of the table (module docstring). ``run(q, k, v, scale, call)`` returns o
    (B, H, n, f) or None; ``rule(q, k, v, call, facts)`` names a further limit (None: none);
    ``auto(q, k)`` says whether "auto" may pick it (None: by name only); devices None: any."""

    name: str
    run: Callable[..., Any]
    backends: tuple[str, ...]
    normalizations: tuple[str, ...]
    masks: tuple[str, ...]
    biases: tuple[str, ...]
    devices: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    max_head_dim: int | None = None
    fused: bool = False
    rule: Callable[..., str | None] = lambda q, k, v, call, facts: None
    auto: Callable[..., bool] | None = lambda q, k: True

    def unsupported(self, q: Array, k: Array, v: Array, call: Call, f: Facts) -> str | None:
        """What in this call the path does not take (None: it takes the call)."""
        if self.fused and not _kernel_devices():
            return "calls without triton (pip install 'attention-flows[triton]')"
        devices = _kernel_devices() if self.fused else self.devices
        head = max(q.shape[-1], v.shape[-1])
        for what, value, allowed in (
                ("arrays of", f.backend, self.backends), ("tensors on", f.device, devices),
                ("dtype", f.dtype, self.dtypes),
                ("normalization", call.normalization, self.normalizations),
                *zip(("mask", "bias"), _kinds(call, self.fused), (self.masks, self.biases),
                     strict=True)):
            if allowed is not None and value not in allowed:
                return f"{what} {value!r} (it takes {', '.join(allowed)})"
        if self.max_head_dim is not None and head > self.max_head_dim:
            return f"head dimension {head} (it takes at most {self.max_head_dim})"
        return self.rule(q, k, v, call, f)


# -- the paths -----------------------------------------------------------------------------


def _flat(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A path written for (..., n, e) inputs, run on grouped heads as (B, G, r, n, e) queries
    against (B, G, 1, m, e) keys (r = H / G), so that broadcasting shares the groups."""

    def run(q, k, v, scale, call):
        B, H, n, e = q.shape
        G = k.shape[1]
        if G == H:
            return fn(q, k, v, scale, call)
        xp, r = namespace(q), H // G
        o = fn(xp.reshape(q, (B, G, r, n, e)), k[:, :, None], v[:, :, None],
               grouped(scale, G, r), call)
        return None if o is None else xp.reshape(o, (B, H, n, v.shape[-1]))

    return run


def _reference(q, k, v, scale, call):
    w = grouped_weights(q, k, scale, mask=call.mask, causal=call.causal, bias=call.bias,
                        normalization=call.normalization,
                        sinkhorn_iterations=call.sinkhorn_iterations)
    (B, H, n, m), G, xp = w.shape, k.shape[1], namespace(w, v)
    return xp.reshape(xp.reshape(w, (B, G, H // G, n, m)) @ v[:, :, None], (B, H, n, v.shape[-1]))


def _sdpa(q, k, v, scale, call):
    if backend_of(q) == "numpy":  # unmasked: lent to torch without a copy
        import torch

        tq, tk, tv = (torch.from_numpy(np.ascontiguousarray(a)) for a in (q, k, v))
        ts = torch.from_numpy(np.asarray(scale, dtype=q.dtype)) if np.ndim(scale) else scale
        out = sdpa_attend(tq, tk, tv, ts, normalization=call.normalization, causal=call.causal)
        return None if out is None else out.numpy()
    return sdpa_attend(q, k, v, scale, normalization=call.normalization, causal=call.causal,
                       mask=call.mask, bias=call.bias)


def _sdpa_rule(q, k, v, call, f) -> str | None:
    masked = call.mask is not None or call.bias is not None
    if f.backend == "numpy" and (masked or not call.lend):
        return ("numpy arrays here: they are lent to torch only for unmasked calls, under "
                "'auto' or through attend_fast")
    if call.normalization != "softmax" and (masked or f.device != "cpu"
                                            or q.shape[-1] != v.shape[-1]):
        return "USA with a mask, a bias, a CUDA tensor or e != f (the CPU flash kernel's)"
    return None


def _blocks(call: Call, n: int, m: int) -> tuple[np.ndarray | None, BlockLayout]:
    """(mask, layout) for the block paths: one host mask combining the call's mask and
    causal flag (None: everything allowed), (n, m) or (B|1, H|1, n, m) for masks that differ
    per member or head (DMA's top-w); the call's layout (checked), or the tiling of that
    mask (its union over heads) by the largest of 128, 64, ..., 1 dividing both lengths
    (Flex tiles by whole blocks)."""
    dense = None if call.mask is None else four_d(np.asarray(to_numpy(call.mask), dtype=bool))
    if dense is not None and dense.shape[:2] == (1, 1):
        dense = dense[0, 0]
    if call.causal:
        c = np.arange(m)[None, :] <= np.arange(n)[:, None]
        dense = c if dense is None else dense & c
    layout = call.layout
    if layout is not None and (layout.n, layout.m) != (n, m):
        raise ValueError(f"the block layout is for ({layout.n}, {layout.m}), got ({n}, {m})")
    if layout is None:
        b = 128
        while n % b or m % b:
            b //= 2
        union = np.ones((n, m), dtype=bool) if dense is None else dense
        layout = BlockLayout.from_dense(union if union.ndim == 2 else union.any(axis=(0, 1)), b)
    return dense, layout


def _flex(q, k, v, scale, call):
    dense, layout = _blocks(call, q.shape[2], k.shape[2])
    return flex_attend(q, k, v, scale, layout=layout, mask=dense, bias=call.bias,
                       compiled=call.flex_compiled)


def _tiled(q, k, v, scale, call):
    B, H, n, e = q.shape
    G, r, xp = k.shape[1], H // k.shape[1], namespace(q)
    dense, layout = _blocks(call, n, k.shape[2])
    out, _ = tiled_attention(
        xp.reshape(q, (B, G, r, n, e)), k[:, :, None], v[:, :, None], grouped(scale, G, r),
        layout=layout, mask=grouped(four_d(dense), G, r), bias=grouped(four_d(call.bias), G, r))
    return xp.reshape(out, (B, H, n, v.shape[-1]))


def _triton(kernel: str) -> Callable[..., Any]:
    def run(q, k, v, scale, call):
        from attention.triton import fused_attention  # optional: triton

        mask = call.mask if isinstance(call.mask, Mask) else four_d(call.mask)
        return fused_attention(q, k, v, scale, normalization=call.normalization,
                               causal=call.causal, mask=mask, step=call.step, bias=call.bias,
                               kernel=kernel)

    return run


def _kernel_rule(q, k, v, call, f) -> str | None:
    if (call.causal or isinstance(call.mask, Mask)) and q.shape[2] != k.shape[2]:
        return "causal or planned masks with n != m"
    if isinstance(call.bias, Bias) and call.bias.restricts and call.mask is not None:
        return "a bias that narrows the mask (DMA's window) with a mask but the causal one"
    return None


def _small(q, k, v, s, c):
    return small_attend(q, k, v, s, normalization=c.normalization)


def _chunked(q, k, v, s, c):  # blocks of about 2^22 scores
    return attend_chunked(q, k, v, s, normalization=c.normalization, causal=c.causal,
                          chunk=max(64, (1 << 22) // max(k.shape[-2], 1)))


ANY, KINDS = ("numpy", "torch", "jax"), ("none", "causal", "dense")
ROUTES: tuple[Route, ...] = (
    Route("triton-lowdim", _triton("lowdim"), ("torch",), NORMALIZATIONS, ("none", "causal"),
          ("none",), dtypes=FLOATS, max_head_dim=4, fused=True, rule=_kernel_rule,
          auto=lambda q, k: _on_cuda(q)),
    Route("triton", _triton("online"), ("torch",), NORMALIZATIONS, (*KINDS, "planned"),
          ("none", "planned"), dtypes=FLOATS, fused=True, rule=_kernel_rule,
          auto=lambda q, k: _on_cuda(q)),
    Route("small", _flat(_small), ("numpy", "torch"), NORMALIZATIONS, ("none",), ("none",),
          ("cpu",), auto=lambda q, k: q.shape[2] * k.shape[2] <= SMALL_LIMIT),
    Route("sdpa", _sdpa, ("torch", "numpy"), NORMALIZATIONS, KINDS, ("none", "dense"),
          rule=_sdpa_rule),
    Route("chunked", _flat(_chunked), ANY, NORMALIZATIONS, ("none", "causal"), ("none",),
          auto=lambda q, k: q.shape[2] * k.shape[2] > DENSE_LIMIT),
    Route("reference", _reference, ANY, NORMALIZATIONS_ALL, KINDS, ("none", "dense")),
    Route("flex", _flex, ("torch",), ("softmax",), KINDS, ("none", "dense"), dtypes=("float32",),
          auto=None),
    Route("tiled", _tiled, ANY, ("softmax",), KINDS, ("none", "dense"), auto=None),
)
BY_NAME = {route.name: route for route in ROUTES}
PATHS: tuple[str, ...] = ("auto", *BY_NAME)


# -- the router ----------------------------------------------------------------------------


def check_path(path: str) -> None:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")


def dense_call(call: Call, q: Array, k: Array, v: Array, q_pos: Any = None,
               k_pos: Any = None) -> Call:
    """``call`` with a mask object replaced by its booleans at the given positions (default
    0..n-1, where a causal mask becomes the causal flag) and a bias object by its values
    (and the mask it narrows)."""
    mask, causal, bias = call.mask, call.causal, call.bias
    if not isinstance(mask, Mask) and not isinstance(bias, Bias):
        return call
    aligned = q_pos is None
    if aligned:
        q_pos = k_pos = positions(q.shape[-2])
    if isinstance(mask, Mask):
        if mask.causal and aligned:
            mask, causal = None, True
        else:
            mask = mask.allowed(q_pos, k_pos, call.step)
            check_rows(mask)
    if isinstance(bias, Bias):
        values = bias.values(q, k, v, q_pos, k_pos)
        if bias.restricts:
            if causal:
                mask, causal = q_pos[None, :] <= q_pos[:, None], False
            mask = bias.restrict(mask, values)
        bias = values
    return replace(call, mask=mask, causal=causal, bias=bias)


def choose(q: Array, k: Array, v: Array, call: Call, path: str = "auto") -> Iterator[Route]:
    """The path by name (checked), or under "auto" the paths that take the call, in the
    table's order."""
    check_path(path)
    f = facts(q)
    if path != "auto":
        why = BY_NAME[path].unsupported(q, k, v, call, f)
        if why is not None:
            raise ValueError(f"path must be 'auto' or one that takes this call: {path!r} does "
                             f"not take {why}")
        return iter([BY_NAME[path]])
    return (r for r in ROUTES if r.auto is not None and r.auto(q, k)
            and r.unsupported(q, k, v, call, f) is None)


def route(q: Array, k: Array, v: Array, scale: Any, call: Call, path: str = "auto") -> Array:
    """o (B, H, n, f) by the path ``path`` or, under "auto", the first that can."""
    dense = None
    for r in choose(q, k, v, call, path):
        if not r.fused and dense is None:
            dense = dense_call(call, q, k, v)
        out = r.run(q, k, v, scale, call if r.fused else dense)
        if out is not None:
            return out
    raise ValueError(f"path={path!r} cannot express normalization={call.normalization!r} on "
                     "this device; use path='chunked'")


def grouped_attention(
    q: Array,
    k: Array,
    v: Array,
    scale: Any,
    *,
    mask: Any = None,
    causal: bool = False,
    bias: Any = None,
    normalization: str = "softmax",
    sinkhorn_iterations: int = 3,
    path: str = "auto",
    layout: BlockLayout | None = None,
    flex_compiled: bool = True,
    step: Any = 0,
) -> Array:
    """o (B, H, n, f) = P v for q (B, H, n, e), k (B|1, G, m, e), v (B|1, G, m, f).

    mask: None, booleans (n, m), (B, n, m) or (B|1, H|1, n, m), or a ``Mask`` over
    positions 0..n-1 drawn at ``step``; causal: additionally require key index <= query
    index; bias: None, values broadcasting to (B, H, n, m), or a ``Bias``; layout: the
    block form of the mask for "flex" and "tiled" (built from it when omitted);
    flex_compiled: False runs FlexAttention's unfused implementation (same semantics).
    """
    check_path(path)
    check_normalization(normalization, NORMALIZATIONS_ALL)
    check_heads(q, k, v)
    if mask is not None and not isinstance(mask, Mask):
        check_rows(mask, causal)
    call = Call(normalization, causal, mask, bias, step, sinkhorn_iterations, layout,
                flex_compiled, lend=path == "auto")
    return route(q, k, v, scale, call, path)


def attend_fast(
    q: Array,
    k: Array,
    v: Array,
    beta: Any,
    *,
    normalization: str = "softmax",
    causal: bool = False,
    path: str = "auto",
) -> Array:
    """A v for q (..., n, e), k (..., m, e), v (..., m, f) with broadcasting leading axes
    and beta a number or broadcasting against (..., 1, 1): the leading axes become the
    batch of :func:`route` (one head), numpy arrays may borrow torch's SDPA."""
    check_normalization(normalization)
    check_path(path)
    q4, k4, v4, beta, lead = as_batch_of_heads(q, k, v, beta)
    out = route(q4, k4, v4, beta, Call(normalization, causal, lend=True), path)
    return out.reshape(*lead, q.shape[-2], v.shape[-1])
