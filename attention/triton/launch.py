"""Launching the fused attention kernel: checks at the boundary, tiles, autotuning.

``fused_attention`` takes queries (B, H, n, e) and keys/values (B|1, G, m, .) with G
dividing H (query head h reads key/value head h // (H / G): MQA, GQA, MFA), and either
returns every head (B, H, n, f) (and optionally the log-partition function LSE) or sums
the heads and applies a flow epilogue, returning (B, n, f).

Inner products are ``tl.dot`` tiles with d zero-padded to a power of two >= 16 (the
smallest K triton 3.6 accepts): besides using the tensor cores, the dot's register layout gives each
thread a few rows and many columns, so the row maxima and sums of the online softmax
are cheap (an FMA loop over coordinates gets a layout with one column per thread and
spills). The float32 precision is ``"tf32x3"`` by default (three TF32 products: float32
accuracy at tensor-core speed); ``"ieee"`` is exact FMA arithmetic but slow, ``"tf32"``
fast and 1e-3 accurate. float64 has no tensor-core path in Triton: it loops over
coordinates with FMAs. bf16/fp16 inputs accumulate in
float32 (the interpreter upcasts them before ``tl.dot``, which it does not emulate),
float64 inputs in float64. On a GPU the tile shape is autotuned per problem class; the
interpreter runs one fixed configuration.

With at most 4 query/key and value coordinates, no mask but the causal one and no bias
(the flows on S^1, S^2, S^3), ``kernel="auto"`` launches ``lowdim.lowdim_kernel`` instead:
exact FMA scores, a fixed softmax shift from a Cauchy-Schwarz bound, per-thread
accumulators (3.3x the online kernel at n = 2^20, d = 3 on an H100).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import triton

from attention.masks import KernelBias
from attention.reference import check_normalization
from attention.triton import kernels, lowdim
from attention.triton.masks import Plan, distance_bias, key_bias_tensor, plan_mask

DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
PRECISIONS = ("tf32x3", "ieee", "tf32")
EPILOGUES = {None: kernels.EPI_NONE, "none": kernels.EPI_NONE, "tangent": kernels.EPI_TANGENT,
             "unit": kernels.EPI_UNIT}
NORMS = {"softmax": kernels.NORM_SOFTMAX, "usa": kernels.NORM_USA,
         "usa-shifted": kernels.NORM_USA_SHIFTED}


@dataclass(frozen=True)
class Tiles:
    """One kernel configuration: query and key tile sizes, warps, pipeline stages."""

    block_m: int
    block_n: int
    num_warps: int = 4
    num_stages: int = 2

    def config(self) -> triton.Config:
        return triton.Config({"BLOCK_M": self.block_m, "BLOCK_N": self.block_n},
                             num_warps=self.num_warps, num_stages=self.num_stages)


# Tile configurations autotuned on a GPU, per family. Measured on an H100 (triton 3.6,
# n = 65536, d = 3, float32): 64x64 with 4 warps was fastest (5.6 ms against 6.9-10.5 ms
# for 128x64, 64x128 and 128x128), and ptxas keeps it in registers; at d >= 64 the
# tf32x3 products need narrow key tiles (64x32: 26 ms at d = 64, 64x64: 46 ms).
FAMILIES: dict[str, tuple[Tiles, ...]] = {
    "dot32s": (Tiles(64, 64, 4, 1), Tiles(128, 64, 4, 2)),
    "dot32": (Tiles(64, 32, 4, 1), Tiles(128, 32, 8, 2)),
    "dot16": (Tiles(128, 64, 4, 3), Tiles(128, 128, 8, 3), Tiles(64, 64, 4, 3)),
    "f64": (Tiles(32, 32, 4, 1), Tiles(64, 32, 4, 1)),
}
# The low-dimensional kernel (lowdim.py): element-wise accumulators, so the tile is the
# number of (row, column) pairs each thread carries, BLOCK_M * BLOCK_N / (32 * num_warps).
LOWDIM_TILES: tuple[Tiles, ...] = (Tiles(64, 32, 4, 1), Tiles(32, 64, 2, 1), Tiles(128, 32, 8, 1))
INTERPRET_TILES = Tiles(64, 32)
KERNELS = ("auto", "lowdim", "online")
LOWDIM_KEY = ["n_bucket", "m_bucket", "E", "F", "NORM", "CAUSAL", "EPILOGUE", "SEPARATE",
              "V_IS_K", "FAST_EXP", "ACC_F64"]
AUTOTUNE_KEY = ["n_bucket", "m_bucket", "E", "F", "NORM", "ITER", "RULE", "BIAS", "KEY_BIAS",
                "EPILOGUE", "SEPARATE", "USE_DOT", "PRECISION", "PV_FMA"]


def runs_here(t: torch.Tensor) -> bool:
    """Whether the kernels can take ``t``: CUDA tensors compiled, CPU ones interpreted."""
    if not isinstance(t, torch.Tensor):
        return False
    return t.device.type == "cpu" if kernels.INTERPRET else t.device.type == "cuda"


@functools.cache
def _autotuned(family: str):
    """The kernel of a family (``FAMILIES``, or "lowdim") autotuned over its tiles."""
    if family == "lowdim":
        tiles, key, kernel = LOWDIM_TILES, LOWDIM_KEY, lowdim.lowdim_kernel
    else:
        tiles, key, kernel = FAMILIES[family], AUTOTUNE_KEY, kernels.attention_kernel
    return triton.autotune(configs=[t.config() for t in tiles], key=key)(kernel)


def _pow2(x: int, floor: int = 1) -> int:
    return max(floor, 1 << max(0, math.ceil(math.log2(max(x, 1)))))


def _bucket(x: int, cap: int = 16) -> int:
    """ceil(log2 x), capped: from 2^16 tokens on every size shares its tuned tiles."""
    return min(math.ceil(math.log2(max(x, 1))), cap)


def _check_inputs(q, k, v) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(t).__name__}")
        if t.ndim != 4:
            raise ValueError(f"{name} must have shape (batch, heads, tokens, dim), got "
                             f"{tuple(t.shape)}")
        if t.dtype not in DTYPES:
            raise TypeError(f"{name} has dtype {t.dtype}; the kernels take {DTYPES}")
        if not runs_here(t):
            where = "CPU tensors (TRITON_INTERPRET=1)" if kernels.INTERPRET else "CUDA tensors"
            raise ValueError(f"{name} is on {t.device}; the Triton kernels here take {where}")
    if not (q.dtype == k.dtype == v.dtype) or not (q.device == k.device == v.device):
        raise TypeError("q, k and v must share one dtype and one device")
    B, H, _, e = q.shape
    if k.shape[0] not in (1, B) or v.shape[0] != k.shape[0]:
        raise ValueError(f"k and v must have batch {B} or 1, got {k.shape[0]} and {v.shape[0]}")
    G = k.shape[1]
    if v.shape[1] != G or H % G:
        raise ValueError(f"k and v must have G key/value heads with G dividing the {H} query "
                         f"heads, got {k.shape[1]} and {v.shape[1]}")
    if k.shape[-1] != e or v.shape[2] != k.shape[2]:
        raise ValueError(f"k must be (., G, m, {e}) and v (., G, m, f); got {tuple(k.shape)} "
                         f"and {tuple(v.shape)}")
    if q.shape[2] == 0 or k.shape[2] == 0:
        raise ValueError("attention needs at least one query and one key")


def _beta_tensor(beta: Any, B: int, H: int, dtype, device) -> torch.Tensor:
    """beta (a number or anything broadcasting to (B, H)) as a (B, H) tensor."""
    t = torch.as_tensor(beta.detach() if isinstance(beta, torch.Tensor) else beta,
                        dtype=dtype).to(device)
    if t.ndim > 2:
        t = t.reshape(t.shape[:2]) if all(s == 1 for s in t.shape[2:]) else t
    try:
        return torch.broadcast_to(t.reshape((1,) * (2 - t.ndim) + tuple(t.shape)) if t.ndim < 2
                                  else t, (B, H)).contiguous()
    except RuntimeError as err:
        raise ValueError(f"beta of shape {tuple(t.shape)} does not broadcast to (batch {B}, "
                         f"heads {H})") from err


def _bias_terms(bias: Any, q, k, v, mask, causal: bool):
    """(kernel bias, mask, causal): a bias object's kernel form (``kernel_bias``); a mask
    it imposes (DMA's top-w over the causal or full mask) replaces the mask."""
    causal = causal or (isinstance(mask, str) and mask == "causal")
    kb = bias if isinstance(bias, KernelBias) else bias.kernel_bias(q, k, v, causal=causal)
    if kb.mask is None:
        return kb, mask, causal
    if mask is not None and not (isinstance(mask, str) and mask == "causal"):
        raise ValueError("a DMA window combines with causal attention only here")
    return kb, kb.mask, False


def _strides(q, k, v, x, out, lse, beta_t, separate: bool) -> dict[str, int]:
    """The stride arguments of the kernel (0 along broadcast axes)."""
    strides = dict(zip(("sqb", "sqh", "sqn", "sqe"), q.stride(), strict=True))
    strides.update(zip(("skb", "skg", "skn", "ske"), k.stride(), strict=True))
    strides.update(zip(("svb", "svg", "svn", "svf"), v.stride(), strict=True))
    if k.shape[0] == 1:
        strides.update(skb=0, svb=0)  # keys and values shared by the batch
    if separate:
        sob, soh, son, sof = out.stride()
    else:
        (sob, son, sof), soh = out.stride(), 0
    xs = x.stride() if x is not None else (0, 0, 0)
    ls = lse.stride() if lse is not None else (0, 0, 0)
    strides.update(sxb=xs[0], sxn=xs[1], sxf=xs[2], sob=sob, soh=soh, son=son, sof=sof,
                   slb=ls[0], slh=ls[1], sln=ls[2], sbb=beta_t.stride(0), sbh=beta_t.stride(1))
    return strides


def _family(dtype, e: int, f: int) -> str:
    if dtype == torch.float64:
        return "f64"
    if dtype == torch.float32:
        return "dot32s" if max(e, f) <= 16 else "dot32"
    return "dot16"


def fused_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: Any,
    *,
    normalization: str = "softmax",
    causal: bool = False,
    mask: Any = None,
    step: Any = 0,
    bias: Any = None,
    key_bias: Any = None,
    heads: str = "separate",
    x: torch.Tensor | None = None,
    epilogue: str | None = None,
    return_lse: bool = False,
    precision: str = "tf32x3",
    tiles: Tiles | None = None,
    pv: str = "auto",
    kernel: str = "auto",
):
    """Attention of every head, or the head sum with a flow epilogue (module docstring).

    beta:       inverse temperature, a number or broadcasting to (B, H)
    mask:       None, "causal", an ``attention.masks.KernelPlan`` or a mask object giving one
                (``kernel_plan``: Causal, AnchorMask, PrFlashMask, SlidingWindow, ...), or
                booleans broadcasting to (B, H, n, m); ``causal`` ANDs
                the causal mask in. ``step`` picks the draw of a resampled mask (PrFlash).
    bias:       an ``attention.masks.KernelBias`` or a bias object giving one (``kernel_bias``):
                ALiBi / harmonic slopes, or DMA's key bias and, with a window, its top-w mask
    key_bias:   a key-only additive bias (B|1, H|1, m)
    heads:      "separate" -> (B, H, n, f) [, LSE (B, H, n)]; "sum" -> (B, n, f)
    epilogue:   on the head sum: None, "tangent" (v - <x, v> x, needs x (B, n, f)) or "unit"
    pv:         the weighted sum of values in the online kernel: "dot" (``tl.dot``), "fma"
                (float32 FMAs in the scores' layout, f <= 4 only) or "auto" (fma for float32
                with f <= 4)
    kernel:     "lowdim" (``lowdim.py``: e, f <= 4, no mask but causal, no bias; exact FMA
                scores, a fixed softmax shift), "online" (the FlashAttention kernel, any
                case), or "auto": lowdim where it applies and ``pv`` is "auto"
    """
    _check_inputs(q, k, v)
    check_normalization(normalization)
    if heads not in ("separate", "sum"):
        raise ValueError(f"heads must be 'separate' or 'sum', got {heads!r}")
    if epilogue not in EPILOGUES:
        raise ValueError(f"epilogue must be None, 'tangent' or 'unit', got {epilogue!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if pv not in ("auto", "dot", "fma"):
        raise ValueError(f"pv must be 'auto', 'dot' or 'fma', got {pv!r}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    separate = heads == "separate"
    if separate and EPILOGUES[epilogue] != kernels.EPI_NONE:
        raise ValueError("an epilogue acts on the head sum: pass heads='sum'")
    if return_lse and not separate:
        raise ValueError("return_lse needs heads='separate'")
    B, H, n, e = q.shape
    G, m, f = k.shape[1], k.shape[2], v.shape[3]
    device, dtype = q.device, q.dtype
    f64 = dtype == torch.float64
    acc_dtype = torch.float64 if f64 else torch.float32
    if EPILOGUES[epilogue] == kernels.EPI_TANGENT:
        if x is None or not isinstance(x, torch.Tensor) or tuple(x.shape) != (B, n, f):
            raise ValueError(f"the tangent epilogue needs the points x of shape {(B, n, f)}")
        if x.device != device:
            raise ValueError("x must be on the device of q")

    bias_kind, bias_tensors = kernels.BIAS_NONE, {}
    if bias is not None:
        bias, mask, causal = _bias_terms(bias, q, k, v, mask, causal)
        key_bias = bias.key_bias if bias.key_bias is not None else key_bias
        if bias.slopes is not None:
            bias_kind, bias_tensors = distance_bias(bias, H, acc_dtype, device)
    block = 32 if kernels.INTERPRET else 64
    plan: Plan = plan_mask(mask, causal, B, H, n, m, device, step=step, block=block)
    kb_strides: dict[str, int] = {}
    if key_bias is not None:
        kb, kb_strides = key_bias_tensor(key_bias, B, H, m, acc_dtype, device)
        bias_tensors["KB"] = kb

    beta_t = _beta_tensor(beta, B, H, acc_dtype, device)
    out = torch.empty((B, H, n, f) if separate else (B, n, f), dtype=dtype, device=device)
    lse = torch.empty((B, H, n), dtype=acc_dtype, device=device) if return_lse else None

    plain = (bias_kind == kernels.BIAS_NONE and key_bias is None and (
        (plan.iter, plan.rule) in ((kernels.ITER_ALL, kernels.RULE_NONE),
                                   (kernels.ITER_CAUSAL, kernels.RULE_CAUSAL))))
    if kernel == "lowdim" and not (plain and max(e, f) <= 4):
        raise ValueError("kernel='lowdim' takes e, f <= 4 with no mask but causal and no bias")
    if kernel == "lowdim" or (kernel == "auto" and pv == "auto" and plain and max(e, f) <= 4):
        _launch_lowdim(q, k, v, x, out, lse, beta_t, normalization,
                       plan.iter == kernels.ITER_CAUSAL, epilogue, tiles)
        return (out, lse) if return_lse else out

    use_dot = not f64
    if pv == "fma" and (f > 4 or not use_dot):
        raise ValueError("pv='fma' takes at most 4 value coordinates in 16/32-bit floats")
    pv_fma = pv == "fma" or (pv == "auto" and use_dot and f <= 4 and dtype == torch.float32)
    upcast = use_dot and kernels.INTERPRET and dtype in (torch.bfloat16, torch.float16)
    prescale = f64 or not use_dot or dtype == torch.float32
    dummy_f = torch.zeros(1, dtype=acc_dtype, device=device)
    dummy_i = torch.zeros(1, dtype=torch.int32, device=device)

    tensors = {"Q": q, "K": k, "V": v, "X": x if x is not None else out, "OUT": out,
               "LSE": lse if lse is not None else dummy_f, "BETA": beta_t, "KB": dummy_f,
               "SLOPES": dummy_f, "DIST": dummy_f, "SEG": dummy_i, "ANC": dummy_i,
               "ANC_CUM": dummy_i, "MASK": torch.zeros(1, dtype=torch.uint8, device=device),
               "FULL_NUM": dummy_i, "FULL_IDX": dummy_i, "PART_NUM": dummy_i,
               "PART_IDX": dummy_i, **bias_tensors, **plan.tensors}
    plan_strides = ("skbb", "skbh", "skbn", "smb", "smh", "smn", "smm", "snb", "snq", "sib", "siq")
    strides = {**_strides(q, k, v, x, out, lse, beta_t, separate),
               **dict.fromkeys(plan_strides, 0), **kb_strides, **plan.strides}  # 0: not read

    scalars = {"n": n, "m": m, "H": H, "GROUP": H // G, "blk": max(plan.block, 1),
               **_buckets(n, m, B, H, separate)}
    constexprs = {"E": e, "F": f, "EP": _pow2(e, 16), "FP": _pow2(f, 8 if use_dot else 1),
                  "NORM": NORMS[normalization], "ITER": plan.iter, "RULE": plan.rule,
                  "BIAS": bias_kind, "KEY_BIAS": key_bias is not None,
                  "EPILOGUE": EPILOGUES[epilogue], "SEPARATE": separate,
                  "HEAD_LOOP": not separate and H > 1,
                  "WRITE_LSE": lse is not None, "USE_DOT": use_dot, "PRESCALE": prescale,
                  "UPCAST": upcast, "PRECISION": precision, "ACC_F64": f64,
                  "PV_FMA": pv_fma}
    launch = {**tensors, **strides, **scalars, **constexprs}
    step_m = None
    if plan.iter == kernels.ITER_LISTS:
        size = _pow2(plan.block, 16)
        tiles, step_m = Tiles(size, size, 4, 1), plan.block
    if tiles is not None and tiles.block_m % tiles.block_n and plan.iter == kernels.ITER_CAUSAL:
        raise ValueError("the causal band needs block_m to be a multiple of block_n")
    _run(kernels.attention_kernel, lambda: _autotuned(_family(dtype, e, f)), launch, tiles,
         (n, B, H if separate else 1), step_m)
    return (out, lse) if return_lse else out


def _buckets(n: int, m: int, B: int, H: int, separate: bool) -> dict[str, int]:
    """The autotuning keys for the problem size: log2 of queries and programs, of keys."""
    return {"n_bucket": _bucket(n) * 64 + _bucket(B * (H if separate else 1)),
            "m_bucket": _bucket(m)}


def _run(jit_kernel, autotuned, launch: dict, tiles: Tiles | None,
         programs: tuple[int, int, int], step_m: int | None = None) -> None:
    """Launch ``jit_kernel`` with ``tiles`` (in the interpreter: ``INTERPRET_TILES``), or
    ``autotuned()`` over its configurations. programs: (rows n, batch, heads) of the grid;
    a program covers ``step_m`` rows (default BLOCK_M)."""
    n, B, heads = programs
    if tiles is None and kernels.INTERPRET:
        tiles = INTERPRET_TILES
    if tiles is not None:
        grid = (triton.cdiv(n, step_m or tiles.block_m), B, heads)
        jit_kernel[grid](**launch, BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n,
                         num_warps=tiles.num_warps, num_stages=tiles.num_stages)
    else:
        autotuned()[lambda meta: (triton.cdiv(n, meta["BLOCK_M"]), B, heads)](**launch)


def _launch_lowdim(q, k, v, x, out, lse, beta_t, normalization: str, causal: bool,
                   epilogue: str | None, tiles: Tiles | None) -> None:
    """``fused_attention`` through ``lowdim.lowdim_kernel`` into ``out`` (and ``lse``)."""
    B, H, n, e = q.shape
    G, m, f = k.shape[1], k.shape[2], v.shape[3]
    separate = out.ndim == 4
    f64 = q.dtype == torch.float64
    kmax = torch.linalg.vector_norm(k.to(beta_t.dtype), dim=-1).amax(dim=2)  # (B|1, G)
    strides = _strides(q, k, v, x, out, lse, beta_t, separate)
    strides.update(skmb=kmax.stride(0) if kmax.shape[0] > 1 else 0, skmg=kmax.stride(1))
    launch = {"Q": q, "K": k, "V": v, "X": x if x is not None else out, "OUT": out,
              "LSE": lse if lse is not None else kmax, "BETA": beta_t, "KMAX": kmax,
              **strides, "n": n, "m": m, "H": H, "GROUP": H // G,
              **_buckets(n, m, B, H, separate), "E": e, "F": f, "NORM": NORMS[normalization],
              "CAUSAL": causal, "EPILOGUE": EPILOGUES[epilogue], "SEPARATE": separate,
              "HEAD_LOOP": not separate and H > 1, "WRITE_LSE": lse is not None,
              "V_IS_K": (v.data_ptr() == k.data_ptr() and v.shape == k.shape
                         and v.stride() == k.stride()),
              "FAST_EXP": lowdim.FAST_EXP and not (f64 or kernels.INTERPRET),
              "ACC_F64": f64}
    _run(lowdim.lowdim_kernel, lambda: _autotuned("lowdim"), launch, tiles,
         (n, B, H if separate else 1))


def pairwise_extreme(x: torch.Tensor, largest: bool = False) -> torch.Tensor:
    """min (or max) over i != j of <x_i, x_j> for x (B, n, d): shape (B,), never n x n.

    1 when n = 1 (no pair), matching ``dynamics.observables.min_pairwise_inner``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise ValueError("x must be a torch tensor of shape (batch, n, d)")
    if x.dtype not in DTYPES or not runs_here(x):
        raise ValueError(f"x must be a float tensor the kernels can take, got {x.dtype} on "
                         f"{x.device}")
    B, n, d = x.shape
    if n == 1:
        return torch.ones(B, dtype=x.dtype, device=x.device)
    f64 = x.dtype == torch.float64
    block = 64
    tiles = triton.cdiv(n, block)
    part = torch.empty((B, tiles), dtype=torch.float64 if f64 else torch.float32,
                       device=x.device)
    use_dot = not f64
    kernels.pairwise_kernel[(tiles, B)](
        x, part, x.stride(0), x.stride(1), x.stride(2), part.stride(0), n, D=d,
        DP=_pow2(d, 16), LARGEST=largest, USE_DOT=use_dot, F64=f64, BLOCK=block,
        num_warps=4)
    best = part.amax(dim=1) if largest else part.amin(dim=1)
    return best.to(x.dtype)
