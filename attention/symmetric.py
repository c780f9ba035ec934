"""The sphere's self-attention field for one large member (n in the thousands), on the CPU.

    velocity_i = P_{x_i} sum_j softmax_j(beta <x_i, x_j>) x_j,   P_x v = v - <x, v> x,

for tokens x (n, d) (Q = K = V = I), through the structure of the sphere:

1. one shift. For beta >= 0, m = beta max_i |x_i|^2 >= beta <x_i, x_j> (Cauchy-Schwarz), so
   every exponent beta <x_i, x_j> - m is <= 0 and the softmax needs no running maximum: one
   pass. The diagonal term e^{beta (|x_i|^2 - max |x|^2)} ~ 1 keeps every row sum >= ~1, so
   no normaliser underflows. (For beta < 0 no common shift does both; it raises.)
2. symmetry. e^{beta <x_i, x_j> - m} = e^{beta <x_j, x_i> - m}: each pair of tiles (I, J),
   J < I, is computed once and serves rows I (weights times x_J) and rows J (the transposed
   weights times x_I) - half the exponentials (and, with BLAS, 3/4 of the FLOPs) of a
   softmax that does not know it.
3. fusion. The row sums Z_i and drives sum_j e_ij x_j are summed first; 1/Z and the
   tangent projection are applied once at the end.

Tiles of ``TILE`` = 256 rows; the pairs of tiles (J <= I, numbered row by row) are cut
into one contiguous run of equal work per numba thread, each with its own float64 sums,
reduced, normalised and projected at the end. Inside a pair of tiles everything is in x's
dtype (float32: the scores, the exponentials and the pair's partial sums, 256 terms at
most); each pair's sums are added to the float64 sums, so the error does not grow with n.

Two ways through a pair of tiles, by dimension:

* d <= 3 (padded to 3 with zeros): one fused, vectorised loop per row i of I over the
  columns j of J - score, exponential, row i's sums (reductions), and the columns' sums
  (e_ij x_i added to column j's drive, kept for the pair in a (3, T) float32 buffer);
* d >= ``BLAS_MIN_D`` = 4: three BLAS products per pair (numba's np.dot: scores
  x_I x_J^T, then E x_J and E^T x_I, sgemm / dgemm) around one vectorised exponential
  pass. OpenBLAS is held to one thread while numba's threads call it (each call would
  otherwise start its own threads: 19 s instead of 0.5 s at n = 8192, d = 64).

Measured (one thread, float32, a pair of 256-tiles, ns per pair of tokens; AMD EPYC,
AVX2): d = 3 fused loop 0.93-0.99 (BLAS 1.5-1.7; a two-row unrolled loop 1.04, slower: it
spills registers); d = 64 BLAS 5.5-5.7, ~70 GFLOP/s of the 384 FLOP per pair (sgemm alone
on these shapes: 85 GFLOP/s); the hand loop at d = 64 is 14x slower. Tiles of 128, 256,
384 and 512 rows were within the noise of a shared machine for both paths (d = 64: 128 is
~20% slower per pair); 256 keeps the float32 partial sums short. A dynamic schedule (one
pair per chunk, per-thread sums by numba's thread id) measured the same as the static
runs (n = 16384, d = 3: 380-406 ms against 351-375 ms on a loaded machine) and cannot be
cached on disk, so the runs are static.

The exponential is a vectorisable polynomial (``exp32`` / ``exp64``): Cody-Waite reduction
a = k ln 2 + r, |r| <= ln 2 / 2, a polynomial for e^r (float32: Cephes' degree-7 expf
polynomial; float64: Taylor to degree 12, as ``kernels.exp_row``) and 2^k written into the
exponent bits by a bit cast. No libm call in the hot loops, so LLVM vectorises them (AVX2:
8 float32 lanes).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

TILE = 256
"""Rows per tile (both paths; see ``symmetric_rhs``)."""

SPREAD_LIMIT = {np.dtype(np.float32): 50.0, np.dtype(np.float64): 600.0}
"""Largest beta (max |x|^2 - min |x|^2) within a member: row i's own term is
e^{-beta (max |x|^2 - |x_i|^2)}, and its row sum must stay far above the exponentials'
floor (e^-87 in float32, e^-700 in float64: n such terms must be negligible next to it).
On the sphere between retractions (|x| = 1 + O(h^2)) it bounds nothing in practice."""

BLAS_MIN_D = 4
"""From this dimension on the tiles' products go through BLAS (sgemm / dgemm); below it (d <= 3,
padded to 3) one fused hand-written loop per row."""

_FLAGS = {"reassoc", "contract"}  # sums may be reassociated; NaN and inf keep their meaning
_EXP_FLAGS = {"contract"}  # the range reduction must not be reassociated

# -- float32 exponential --------------------------------------------------------------------
_F32_LOG2E = np.float32(1.4426950408889634)
_F32_ROUNDER = np.float32(12582912.0)  # 1.5 * 2^23: t + rounder has round(t) in its low bits
_F32_C1 = np.float32(0.693359375)  # ln 2 = C1 + C2, C1 with 9 significant bits (k C1 exact)
_F32_C2 = np.float32(-2.12194440e-4)
_F32_LOW = np.float32(-87.0)  # e^-87 = 1.6e-38 > the smallest normal float32
_P0 = np.float32(1.9875691500e-4)  # Cephes expf: e^r = 1 + r + r^2 P(r), |r| <= ln 2 / 2
_P1 = np.float32(1.3981999507e-3)
_P2 = np.float32(8.3334519073e-3)
_P3 = np.float32(4.1665795894e-2)
_P4 = np.float32(1.6666665459e-1)
_P5 = np.float32(5.0000001201e-1)
_ONE32 = np.float32(1.0)

# -- float64 exponential (kernels.exp_row's, one value at a time) ----------------------------
_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 0.6931471803691238, 1.9082149292705877e-10
_ROUNDER = 6755399441055744.0  # 1.5 * 2^52
_LOW = -700.0


@intrinsic
def _scale(typingctx, t):
    """2^k from t = k + rounder (float32: 1.5 * 2^23, float64: 1.5 * 2^52), whose low bits
    hold k: (bits(t) - bits(rounder) + bias) << mantissa bits, read as a float."""
    if t not in (types.float32, types.float64):
        return None
    wide = t == types.float64
    width, mantissa = (64, 52) if wide else (32, 23)
    offset = (0x4338000000000000 - 1023) if wide else (0x4B400000 - 127)

    def codegen(context, builder, signature, args):
        integer = ir.IntType(width)
        bits = builder.bitcast(args[0], integer)
        bits = builder.sub(bits, ir.Constant(integer, offset))
        bits = builder.shl(bits, ir.Constant(integer, mantissa))
        return builder.bitcast(bits, context.get_value_type(t))

    return t(t), codegen


@njit(cache=True, nogil=True, fastmath=_EXP_FLAGS)
def exp32(a):
    """e^a in float32 for a <= 88 (below -87: e^-87). Max relative error 8.2e-8 (0.68 ulp)
    against float64 numpy over every float32 in [-87, 88] (measured; tested < 1e-7)."""
    v = max(a, _F32_LOW)
    t = v * _F32_LOG2E + _F32_ROUNDER
    k = t - _F32_ROUNDER
    r = (v - k * _F32_C1) - k * _F32_C2
    p = _P0
    p = p * r + _P1
    p = p * r + _P2
    p = p * r + _P3
    p = p * r + _P4
    p = p * r + _P5
    p = (p * (r * r) + r) + _ONE32
    return p * _scale(t)


@njit(cache=True, nogil=True, fastmath=_EXP_FLAGS)
def exp64(a):
    """e^a in float64 for a <= 709 (below -700: e^-700), as ``kernels.exp_row``; max relative
    error 4.4e-16 against numpy over [-700, 709] (measured; tested < 1e-15)."""
    v = max(a, _LOW)
    t = v * _LOG2E + _ROUNDER
    k = t - _ROUNDER
    r = (v - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _scale(t)


def exp(a):
    """e^a by ``exp32`` (float32 a) or ``exp64`` (float64 a), in compiled code."""
    raise NotImplementedError("exp is for numba-compiled code")


@overload(exp)
def _exp_overload(a):
    if a == types.float32:
        return lambda a: exp32(a)
    return lambda a: exp64(a)


@njit(cache=True, nogil=True)
def exp_array(a, out):
    """out = e^a elementwise (``exp32`` for float32 arrays, ``exp64`` for float64): the
    polynomial exponentials as the tiles use them, for tests and measurements."""
    for j in range(a.shape[0]):
        out[j] = exp(a[j])


# -- one pair of tiles ------------------------------------------------------------------------
@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _pair_loops(x, xt, beta, shift, i0, i1, j0, j1, symmetric, zcol, dcol, z, drive):
    """Rows i0:i1 against columns j0:j1 for x (n, 3) (d < 3 padded with zeros), xt = x^T,
    one fused loop per row. Adds each row's sums to z (n,) and drive (n, 3) (float64); with
    ``symmetric``, also the columns' (the same exponentials, transposed), gathered over the
    pair in zcol (T,), dcol (3, T) first."""
    d = x.shape[1]
    width = j1 - j0
    zero = x.dtype.type(0.0)
    b = x.dtype.type(beta)
    m = x.dtype.type(shift)
    if symmetric:
        for j in range(width):
            zcol[j] = zero
        for k in range(d):
            for j in range(width):
                dcol[k, j] = zero
    x0, x1, x2 = xt[0, j0:j1], xt[1, j0:j1], xt[2, j0:j1]
    d0, d1, d2 = dcol[0], dcol[1], dcol[2]
    for i in range(i0, i1):
        c0, c1, c2 = b * x[i, 0], b * x[i, 1], b * x[i, 2]
        y0, y1, y2 = x[i, 0], x[i, 1], x[i, 2]
        s, a0, a1, a2 = zero, zero, zero, zero
        if symmetric:
            for j in range(width):
                e = exp(c0 * x0[j] + c1 * x1[j] + c2 * x2[j] - m)
                s += e
                a0 += e * x0[j]
                a1 += e * x1[j]
                a2 += e * x2[j]
                zcol[j] += e
                d0[j] += e * y0
                d1[j] += e * y1
                d2[j] += e * y2
        else:
            for j in range(width):
                e = exp(c0 * x0[j] + c1 * x1[j] + c2 * x2[j] - m)
                s += e
                a0 += e * x0[j]
                a1 += e * x1[j]
                a2 += e * x2[j]
        z[i] += s
        drive[i, 0] += a0
        drive[i, 1] += a1
        drive[i, 2] += a2
    if symmetric:
        for j in range(width):
            z[j0 + j] += zcol[j]
        for j in range(width):
            for k in range(d):
                drive[j0 + j, k] += dcol[k, j]


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _pair_blas(x, beta, shift, i0, i1, j0, j1, symmetric, zcol, z, drive):
    """As ``_pair_loops``, with the three products (scores x_I x_J^T, then E x_J and
    E^T x_I) by BLAS (numba's np.dot: sgemm / dgemm) and the exponentials in between."""
    d = x.shape[1]
    zero = x.dtype.type(0.0)
    b = x.dtype.type(beta)
    m = x.dtype.type(shift)
    xi, xj = x[i0:i1], x[j0:j1]
    scores = np.dot(xi, xj.T)
    width = j1 - j0
    for j in range(width):
        zcol[j] = zero
    for i in range(i1 - i0):
        s = zero
        srow = scores[i]
        for j in range(width):
            e = exp(b * srow[j] - m)
            srow[j] = e
            s += e
            zcol[j] += e
        z[i0 + i] += s
    rows = np.dot(scores, xj)
    for i in range(i1 - i0):
        for k in range(d):
            drive[i0 + i, k] += rows[i, k]
    if symmetric:
        cols = np.dot(scores.T, xi)
        for j in range(width):
            z[j0 + j] += zcol[j]
            for k in range(d):
                drive[j0 + j, k] += cols[j, k]


@njit(cache=True, nogil=True)
def _pair_of(p):
    """The p-th pair of tiles (I, J), J <= I, in the order (0,0), (1,0), (1,1), (2,0), ..."""
    big = int((np.sqrt(8.0 * p + 1.0) - 1.0) / 2.0)
    while big * (big + 1) // 2 > p:
        big -= 1
    while (big + 1) * (big + 2) // 2 <= p:
        big += 1
    return big, p - big * (big + 1) // 2


@njit(cache=True, nogil=True)
def _shift(x, beta):
    """beta max_i |x_i|^2, in float64."""
    top = 0.0
    for i in range(x.shape[0]):
        s = 0.0
        for k in range(x.shape[1]):
            s += float(x[i, k]) * float(x[i, k])
        top = max(top, s)
    return beta * top


@njit(cache=True, nogil=True)
def _operands(x, use_blas):
    """(x, x^T) as the pairs read them: for the hand-written loops, x padded with zero
    columns to d = 3."""
    n, d = x.shape
    if use_blas or d >= 3:
        return x, np.ascontiguousarray(x.T)
    padded = np.zeros((n, 3), x.dtype)
    padded[:, :d] = x
    return padded, np.ascontiguousarray(padded.T)


@njit(cache=True, nogil=True)
def _pair(xs, xt, beta, shift, tile, p, zcol, dcol, z, drive, use_blas):
    """The p-th pair of tiles, its sums added to z, drive."""
    n = xs.shape[0]
    big, small = _pair_of(p)
    i0, i1 = big * tile, min(n, (big + 1) * tile)
    j0, j1 = small * tile, min(n, (small + 1) * tile)
    if use_blas:
        _pair_blas(xs, beta, shift, i0, i1, j0, j1, big != small, zcol, z, drive)
    else:
        _pair_loops(xs, xt, beta, shift, i0, i1, j0, j1, big != small, zcol, dcol, z, drive)


@njit(cache=True, nogil=True)
def _finish(x, z, drive, out):
    """out = P_x (drive / z), from the per-chunk sums z (chunks, n), drive (chunks, n, >= d)."""
    n, d = x.shape
    for i in range(n):
        total = 0.0
        for t in range(z.shape[0]):
            total += z[t, i]
        radial = 0.0
        for k in range(d):
            v = 0.0
            for t in range(z.shape[0]):
                v += drive[t, i, k]
            v /= total
            drive[0, i, k] = v
            radial += v * float(x[i, k])
        for k in range(d):
            out[i, k] = drive[0, i, k] - radial * float(x[i, k])


@njit(cache=True, nogil=True)
def _member_serial(x, beta, tile, use_blas, out):
    """One member, pairs of tiles in order, on the calling thread."""
    n = x.shape[0]
    xs, xt = _operands(x, use_blas)
    shift = _shift(x, beta)
    width = xs.shape[1]
    zcol = np.empty(tile, x.dtype)
    dcol = np.empty((width, tile), x.dtype)
    z = np.zeros((1, n))
    drive = np.zeros((1, n, width))
    tiles = (n + tile - 1) // tile
    for p in range(tiles * (tiles + 1) // 2):
        _pair(xs, xt, beta, shift, tile, p, zcol, dcol, z[0], drive[0], use_blas)
    _finish(x, z, drive, out)


@njit(cache=True, parallel=True)
def _member_chunks(x, beta, tile, use_blas, chunks, out):
    """One member, the pairs of tiles cut into ``chunks`` contiguous runs of equal work,
    one per prange iteration, each with its own float64 sums."""
    n = x.shape[0]
    xs, xt = _operands(x, use_blas)
    shift = _shift(x, beta)
    width = xs.shape[1]
    zcol = np.empty((chunks, tile), x.dtype)
    dcol = np.empty((chunks, width, tile), x.dtype)
    z = np.zeros((chunks, n))
    drive = np.zeros((chunks, n, width))
    tiles = (n + tile - 1) // tile
    pairs = tiles * (tiles + 1) // 2
    for c in prange(chunks):
        for p in range(c * pairs // chunks, (c + 1) * pairs // chunks):
            _pair(xs, xt, beta, shift, tile, p, zcol[c], dcol[c], z[c], drive[c], use_blas)
    _finish(x, z, drive, out)


@njit(cache=True, parallel=True)
def _members(x, beta, tile, use_blas, out):
    """Every member of x (batch, n, d) on one thread, members spread over the threads."""
    for b in prange(x.shape[0]):
        _member_serial(x[b], beta, tile, use_blas, out[b])


# -- BLAS threads ------------------------------------------------------------------------------
@functools.cache
def _openblas_threads():
    """(get, set) of the thread count of scipy's OpenBLAS - the BLAS numba's np.dot calls -
    or None where it cannot be found (another BLAS: left as it is)."""
    import scipy
    import scipy.linalg.cython_blas  # loads the library

    folder = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    for path in sorted(glob.glob(os.path.join(folder, "libscipy_openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):
            get = getattr(lib, prefix + "get_num_threads", None)
            put = getattr(lib, prefix + "set_num_threads", None)
            if get is not None and put is not None:
                get.restype, put.argtypes = ctypes.c_int, (ctypes.c_int,)
                return get, put
    return None


@contextlib.contextmanager
def _single_threaded_blas():
    """One OpenBLAS thread per caller inside: numba's threads already use every core, and an
    OpenBLAS call from each of them would start its own threads (oversubscription)."""
    calls = _openblas_threads()
    if calls is None:
        yield
        return
    get, put = calls
    previous = get()
    put(1)
    try:
        yield
    finally:
        put(previous)


# -- the entry point -------------------------------------------------------------------------
def symmetric_rhs(x: np.ndarray, beta: float, out: np.ndarray | None = None, *,
                  tile: int = TILE) -> np.ndarray:
    """The projected self-attention velocity of tokens x (n, d) or (batch, n, d), float32 or
    float64, in x's dtype (module docstring): P_{x_i} sum_j softmax_j(beta <x_i, x_j>) x_j.

    beta must be finite and >= 0: the one shift beta max |x|^2 bounds every score only then
    (for beta < 0 the scores' maximum is row-dependent and the symmetric one-pass scheme
    does not apply; ValueError). Points need not lie exactly on the sphere (the shift uses
    their largest norm), as long as beta (max |x|^2 - min |x|^2) <= ``SPREAD_LIMIT``
    (ValueError otherwise). A batch runs its members one after another, each over all threads, or -
    many members, or small ones - members in parallel, one thread each. ``out``, if given,
    must have x's shape and dtype and be C-contiguous.
    """
    beta = float(beta)
    if not 0.0 <= beta < np.inf:
        raise ValueError(f"symmetric_rhs needs a finite beta >= 0 (one shift for every row), "
                         f"got {beta}")
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"symmetric_rhs takes float32 or float64 tokens, got {x.dtype}")
    if x.ndim not in (2, 3) or min(x.shape) < 1:
        raise ValueError(f"tokens must be (n, d) or (batch, n, d), got shape {x.shape}")
    if tile < 8:
        raise ValueError(f"tile must be >= 8, got {tile}")
    x = np.ascontiguousarray(x)
    if out is None:
        out = np.empty_like(x)
    elif out.shape != x.shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous array of x's shape and dtype")
    batch = x.reshape((-1, *x.shape[-2:]))
    squares = np.einsum("bnd,bnd->bn", batch, batch, dtype=np.float64)
    spread = beta * float(np.max(squares.max(axis=1) - squares.min(axis=1)))
    if not spread <= SPREAD_LIMIT[x.dtype]:
        raise ValueError(
            f"beta (max |x|^2 - min |x|^2) = {spread:.3g} exceeds {SPREAD_LIMIT[x.dtype]} for "
            f"{x.dtype}: the tokens are too far from a common sphere for one shift per member "
            "(rows with small norms would underflow); retract them first")
    result = out.reshape(batch.shape)
    members, n, d = batch.shape
    use_blas = d >= BLAS_MIN_D
    threads = numba.get_num_threads()
    with _single_threaded_blas() if use_blas else contextlib.nullcontext():
        if threads == 1 or (members == 1 and n < 2 * tile):
            for b in range(members):
                _member_serial(batch[b], beta, tile, use_blas, result[b])
        elif members >= 2 * threads or n < 2 * tile:
            _members(batch, beta, tile, use_blas, result)
        else:
            for b in range(members):
                _member_chunks(batch[b], beta, tile, use_blas, threads, result[b])
    return out
