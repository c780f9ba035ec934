"""The low-dimensional kernel: attention over at most 4 coordinates with a fixed softmax shift.

For the flows on S^1, S^2 and S^3 (e, f <= 4) the arithmetic per (query i, key j) pair is a
handful of FMAs around one exponential, and the online softmax's per-tile row maxima,
rescalings and cross-thread row reductions cost more than the pair itself. This kernel
removes all three:

* **a fixed shift per row** instead of a running maximum. In base 2 (scores carry
  beta log2 e) every score obeys s_ij <= U_i = |q_i| max_j |k_j| (Cauchy-Schwarz) and
  s_ij* >= L_i for the one key j* = min(i, m - 1) (a key every row may see, causal or not),
  so the row maximum lies in [L_i, U_i]. The shift c_i = max(L_i, U_i - 64) keeps every
  term 2^(s - c_i) <= 2^64 (no overflow for m < 2^60 keys) and the largest term >= 2^(L_i - c_i).
  When some row of the tile has c_i - L_i > 100 (only for beta |q| |k| above ~70), that
  largest term could leave float32's normal range, and the tile takes the exact row
  maximum in a first pass over the keys instead (scores only, no exponentials).
* **element-wise accumulators**: every thread keeps its own (row, column-slot) partial sums
  of 2^(s - c_i) and of 2^(s - c_i) v_j over all key tiles, reduced across threads once at
  the end. Inside the loop a pair costs e + 1 + f FMAs/adds and one exponential, with no
  data exchanged between threads.
* **exact float32 scores**: the e <= 4 products are FMAs, not TF32 tensor-core products.

On a GPU the exponential is the special-function unit's ``ex2.approx.ftz.f32`` (the
interpreter has no inline PTX and uses ``tl.exp2``). Inputs are float32, bfloat16, float16
(computed in float32) or float64 (computed in float64). Key tiles are all of them (ragged
tail masked) or the causal band; heads, shared key/value heads, the head sum with the flow
epilogues and the LSE are as in ``kernels.attention_kernel``.
"""

from __future__ import annotations

import triton
import triton.language as tl

from attention.triton.kernels import _LN2, _LOG2E

FAST_EXP = True  # on a GPU: ex2.approx.ftz.f32 by inline PTX (False: tl.exp2, for comparison)
OVERFLOW_MARGIN = 64.0  # c_i >= U_i - 64: every term 2^(s - c_i) <= 2^64
EXACT_GAP = 100.0  # c_i - L_i above this: the exact row maximum (first pass)
_OVERFLOW_MARGIN = tl.constexpr(OVERFLOW_MARGIN)  # the kernels read the constexpr twins
_EXACT_GAP = tl.constexpr(EXACT_GAP)


@triton.jit
def _exp2(x, FAST_EXP: tl.constexpr):
    if FAST_EXP:
        return tl.inline_asm_elementwise("ex2.approx.ftz.f32 $0, $1;", "=f,f", [x],
                                         dtype=tl.float32, is_pure=True, pack=1)
    else:
        return tl.exp2(x)


@triton.jit
def _load(ptr, ok, ACC: tl.constexpr, MASKED: tl.constexpr):
    if MASKED:
        return tl.load(ptr, mask=ok, other=0.0).to(ACC)
    else:
        return tl.load(ptr).to(ACC)


@triton.jit
def _coords(base, idx64, s_row, s_col, ok, D: tl.constexpr, ACC: tl.constexpr,
            MASKED: tl.constexpr = True):
    """The first four coordinates of rows idx (0 beyond D, and where not ok if MASKED)."""
    row = base + idx64 * s_row
    c0 = _load(row, ok, ACC, MASKED)
    c1 = c0 * 0
    c2 = c0 * 0
    c3 = c0 * 0
    if D > 1:
        c1 = _load(row + s_col, ok, ACC, MASKED)
    if D > 2:
        c2 = _load(row + 2 * s_col, ok, ACC, MASKED)
    if D > 3:
        c3 = _load(row + 3 * s_col, ok, ACC, MASKED)
    return c0, c1, c2, c3


@triton.jit
def _keys(k_base, v_base, cols, m, skn, ske, svn, svf, E: tl.constexpr, F: tl.constexpr,
          MASKED: tl.constexpr, V_IS_K: tl.constexpr, ACC: tl.constexpr):
    """The coordinates of keys and values ``cols`` (k0..k3, v0..v3; zero where cols >= m)."""
    cols64 = cols.to(tl.int64)
    k0, k1, k2, k3 = _coords(k_base, cols64, skn, ske, cols < m, E, ACC, MASKED)
    if V_IS_K:
        v0, v1, v2, v3 = k0, k1, k2, k3
    else:
        v0, v1, v2, v3 = _coords(v_base, cols64, svn, svf, cols < m, F, ACC, MASKED)
    return k0, k1, k2, k3, v0, v1, v2, v3


@triton.jit
def _scores(q0, q1, q2, q3, shift, k0, k1, k2, k3, cols, rows, m, E: tl.constexpr,
            MASKED: tl.constexpr, CAUSAL: tl.constexpr):
    """s_ij - shift_i for the keys ``cols`` (-inf where masked), (BLOCK_M, BLOCK_N)."""
    s = tl.fma(q0[:, None], k0[None, :], -shift[:, None])
    if E > 1:
        s = tl.fma(q1[:, None], k1[None, :], s)
    if E > 2:
        s = tl.fma(q2[:, None], k2[None, :], s)
    if E > 3:
        s = tl.fma(q3[:, None], k3[None, :], s)
    if MASKED:
        ok = (cols < m)[None, :]
        if CAUSAL:
            ok = ok & (cols[None, :] <= rows[:, None])
        s = tl.where(ok, s, float("-inf"))
    return s


@triton.jit
def _accumulate(l, a0, a1, a2, a3, q0, q1, q2, q3, shift, k0, k1, k2, k3, v0, v1, v2, v3,
                cols, rows, m, E: tl.constexpr, F: tl.constexpr, MASKED: tl.constexpr,
                CAUSAL: tl.constexpr, FAST_EXP: tl.constexpr):
    """Add one key tile's 2^(s - shift) and 2^(s - shift) v_j to the per-thread sums."""
    p = _exp2(_scores(q0, q1, q2, q3, shift, k0, k1, k2, k3, cols, rows, m, E, MASKED, CAUSAL),
              FAST_EXP)
    l += p
    a0 = tl.fma(p, v0[None, :], a0)
    if F > 1:
        a1 = tl.fma(p, v1[None, :], a1)
    if F > 2:
        a2 = tl.fma(p, v2[None, :], a2)
    if F > 3:
        a3 = tl.fma(p, v3[None, :], a3)
    return l, a0, a1, a2, a3


@triton.jit
def _masked_tile(l, a0, a1, a2, a3, q0, q1, q2, q3, shift, k_base, v_base, j0, rows, m,
                 skn, ske, svn, svf, E: tl.constexpr, F: tl.constexpr, CAUSAL: tl.constexpr,
                 V_IS_K: tl.constexpr, FAST_EXP: tl.constexpr, ACC: tl.constexpr,
                 BLOCK_N: tl.constexpr):
    """One key tile [j0, j0 + BLOCK_N) with the ragged end (and the causal rule) masked."""
    cols = j0 + tl.arange(0, BLOCK_N)
    k0, k1, k2, k3, v0, v1, v2, v3 = _keys(k_base, v_base, cols, m, skn, ske, svn, svf, E, F,
                                           True, V_IS_K, ACC)
    return _accumulate(l, a0, a1, a2, a3, q0, q1, q2, q3, shift, k0, k1, k2, k3, v0, v1, v2,
                       v3, cols, rows, m, E, F, True, CAUSAL, FAST_EXP)


@triton.jit
def _sweep(l, a0, a1, a2, a3, q0, q1, q2, q3, shift, k_base, v_base, j_begin, j_end, rows, m,
           skn, ske, svn, svf, E: tl.constexpr, F: tl.constexpr, V_IS_K: tl.constexpr,
           FAST_EXP: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr):
    """The whole key tiles of [j_begin, j_end), unmasked, each tile's keys loaded while the
    previous tile is computed (the loads' latency hides behind a tile of arithmetic). The
    look-ahead of the last tile re-reads that tile, so no load needs a mask."""
    cols = j_begin + tl.arange(0, BLOCK_N)
    k0, k1, k2, k3, v0, v1, v2, v3 = _keys(k_base, v_base, cols, m, skn, ske, svn, svf, E, F,
                                           True, V_IS_K, ACC)
    for j0 in range(j_begin, j_end, BLOCK_N):
        ahead = tl.minimum(j0 + BLOCK_N, j_end - BLOCK_N) + tl.arange(0, BLOCK_N)
        n0, n1, n2, n3, w0, w1, w2, w3 = _keys(k_base, v_base, ahead, m, skn, ske, svn, svf,
                                               E, F, False, V_IS_K, ACC)
        l, a0, a1, a2, a3 = _accumulate(l, a0, a1, a2, a3, q0, q1, q2, q3, shift, k0, k1, k2,
                                        k3, v0, v1, v2, v3, cols, rows, m, E, F, False, False,
                                        FAST_EXP)
        k0, k1, k2, k3, v0, v1, v2, v3 = n0, n1, n2, n3, w0, w1, w2, w3
    return l, a0, a1, a2, a3


@triton.jit
def _row_max(q0, q1, q2, q3, zero, k_base, start_m, rows, m, skn, ske,
             E: tl.constexpr, CAUSAL: tl.constexpr, ACC: tl.constexpr, BLOCK_M: tl.constexpr,
             BLOCK_N: tl.constexpr):
    """max_j s_ij over the keys each row sees (the exact shift), (BLOCK_M,)."""
    best = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC) + float("-inf")
    if CAUSAL:
        end = tl.minimum(start_m + BLOCK_M, m)
    else:
        end = m
    for j0 in range(0, end, BLOCK_N):
        cols = j0 + tl.arange(0, BLOCK_N)
        k0, k1, k2, k3 = _coords(k_base, cols.to(tl.int64), skn, ske, cols < m, E, ACC)
        best = tl.maximum(best, _scores(q0, q1, q2, q3, zero, k0, k1, k2, k3, cols, rows, m, E,
                                        True, CAUSAL))
    return tl.max(best, 1)


@triton.jit
def _head(h, b, start_m, rows, row_ok, Q, K, V, KMAX, BETA,
          sqb, sqh, sqn, sqe, skb, skg, skn, ske, svb, svg, svn, svf, skmb, skmg, sbb, sbh,
          m, GROUP, E: tl.constexpr, F: tl.constexpr, NORM: tl.constexpr,
          CAUSAL: tl.constexpr, V_IS_K: tl.constexpr, FAST_EXP: tl.constexpr, ACC: tl.constexpr,
          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Head h of batch member b for one query tile: (o0..o3 normalised, shift, l)."""
    h64 = tl.cast(h, tl.int64)
    g64 = tl.cast(h // GROUP, tl.int64)
    k_base = K + b * skb + g64 * skg
    v_base = V + b * svb + g64 * svg
    scale2 = tl.load(BETA + b * sbb + h64 * sbh).to(ACC) * _LOG2E
    rows64 = rows.to(tl.int64)
    q0, q1, q2, q3 = _coords(Q + b * sqb + h64 * sqh, rows64, sqn, sqe, row_ok, E, ACC)
    q0, q1, q2, q3 = q0 * scale2, q1 * scale2, q2 * scale2, q3 * scale2
    # the shift: U_i bounds every score, L_i is the score of the key min(i, m - 1)
    upper = tl.sqrt(q0 * q0 + q1 * q1 + q2 * q2 + q3 * q3) * tl.load(
        KMAX + b * skmb + g64 * skmg).to(ACC)
    zero = q0 * 0
    own = tl.minimum(rows, m - 1)
    k0, k1, k2, k3 = _coords(k_base, own.to(tl.int64), skn, ske, row_ok, E, ACC)
    lower = q0 * k0 + q1 * k1 + q2 * k2 + q3 * k3
    shift = tl.maximum(lower, upper - _OVERFLOW_MARGIN)
    if tl.max(tl.where(row_ok, shift - lower, 0.0), 0) > _EXACT_GAP:
        shift = _row_max(q0, q1, q2, q3, zero, k_base, start_m, rows, m, skn, ske, E, CAUSAL,
                         ACC, BLOCK_M, BLOCK_N)
        shift = tl.where(row_ok, shift, 0.0)
    l = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC)
    a0 = l
    a1 = l
    a2 = l
    a3 = l
    # whole key tiles unmasked, then the masked rest: the ragged end, or the causal band
    if CAUSAL:
        swept = (start_m // BLOCK_N) * BLOCK_N
        end = tl.minimum(start_m + BLOCK_M, m)
    else:
        swept = (m // BLOCK_N) * BLOCK_N
        end = m
    l, a0, a1, a2, a3 = _sweep(l, a0, a1, a2, a3, q0, q1, q2, q3, shift, k_base, v_base, 0,
                               swept, rows, m, skn, ske, svn, svf, E, F, V_IS_K, FAST_EXP, ACC,
                               BLOCK_N)
    for j0 in range(swept, end, BLOCK_N):
        l, a0, a1, a2, a3 = _masked_tile(l, a0, a1, a2, a3, q0, q1, q2, q3, shift, k_base,
                                         v_base, j0, rows, m, skn, ske, svn, svf, E, F, CAUSAL,
                                         V_IS_K, FAST_EXP, ACC, BLOCK_N)
    l_i = tl.sum(l, 1)
    if NORM == 0:
        scale = 1.0 / tl.where(l_i > 0, l_i, 1.0)
    elif NORM == 1:
        scale = tl.exp2(shift) / m
    else:
        scale = tl.exp2(shift - scale2) / m
    o0 = tl.sum(a0, 1) * scale
    o1 = tl.sum(a1, 1) * scale
    o2 = tl.sum(a2, 1) * scale
    o3 = tl.sum(a3, 1) * scale
    return o0, o1, o2, o3, shift, l_i


@triton.jit
def lowdim_kernel(
    Q, K, V, X, OUT, LSE, BETA, KMAX,
    sqb, sqh, sqn, sqe, skb, skg, skn, ske, svb, svg, svn, svf,
    sxb, sxn, sxf, sob, soh, son, sof, slb, slh, sln, sbb, sbh, skmb, skmg,
    n, m, H, GROUP, n_bucket, m_bucket,
    E: tl.constexpr, F: tl.constexpr, NORM: tl.constexpr, CAUSAL: tl.constexpr,
    EPILOGUE: tl.constexpr, SEPARATE: tl.constexpr, HEAD_LOOP: tl.constexpr,
    WRITE_LSE: tl.constexpr, V_IS_K: tl.constexpr, FAST_EXP: tl.constexpr,
    ACC_F64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Program (query tile, batch member[, head]); see the module docstring.

    KMAX (B|1, G): max_j |k_j| per key head. V_IS_K: the values are the keys (the pure
    flows, V = K = I), loaded once. SEPARATE: one head per program, written
    with its LSE; otherwise the heads are summed and the epilogue (1 tangent, 2 unit)
    applied to the sum.
    """
    if ACC_F64:
        ACC: tl.constexpr = tl.float64
    else:
        ACC: tl.constexpr = tl.float32
    pid_m = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    start_m = pid_m * BLOCK_M
    rows = start_m + tl.arange(0, BLOCK_M)
    row_ok = rows < n
    rows64 = rows.to(tl.int64)
    if SEPARATE:
        h0 = tl.program_id(2)
    else:
        h0 = 0
    o0, o1, o2, o3, shift, l_i = _head(
        h0, b, start_m, rows, row_ok, Q, K, V, KMAX, BETA,
        sqb, sqh, sqn, sqe, skb, skg, skn, ske, svb, svg, svn, svf, skmb, skmg, sbb, sbh,
        m, GROUP, E, F, NORM, CAUSAL, V_IS_K, FAST_EXP, ACC, BLOCK_M, BLOCK_N)
    if SEPARATE:
        out = OUT + b * sob + tl.cast(h0, tl.int64) * soh + rows64 * son
        if WRITE_LSE:
            seen = l_i > 0
            lse = tl.where(seen, (shift + tl.log2(tl.where(seen, l_i, 1.0))) * _LN2,
                           float("-inf"))
            tl.store(LSE + b * slb + tl.cast(h0, tl.int64) * slh + rows64 * sln, lse,
                     mask=row_ok)
    else:
        if HEAD_LOOP:
            for h in range(1, H):
                p0, p1, p2, p3, _, _ = _head(
                    h, b, start_m, rows, row_ok, Q, K, V, KMAX, BETA,
                    sqb, sqh, sqn, sqe, skb, skg, skn, ske, svb, svg, svn, svf, skmb, skmg,
                    sbb, sbh, m, GROUP, E, F, NORM, CAUSAL, V_IS_K, FAST_EXP, ACC, BLOCK_M,
                    BLOCK_N)
                o0, o1, o2, o3 = o0 + p0, o1 + p1, o2 + p2, o3 + p3
        if EPILOGUE == 1:
            x0, x1, x2, x3 = _coords(X + b * sxb, rows64, sxn, sxf, row_ok, F, ACC)
            radial = x0 * o0 + x1 * o1 + x2 * o2 + x3 * o3
            o0, o1, o2, o3 = o0 - radial * x0, o1 - radial * x1, o2 - radial * x2, o3 - radial * x3
        if EPILOGUE == 2:
            inv = 1.0 / tl.sqrt(o0 * o0 + o1 * o1 + o2 * o2 + o3 * o3)
            o0, o1, o2, o3 = o0 * inv, o1 * inv, o2 * inv, o3 * inv
        out = OUT + b * sob + rows64 * son
    dtype = OUT.dtype.element_ty
    tl.store(out, o0.to(dtype), mask=row_ok)
    if F > 1:
        tl.store(out + sof, o1.to(dtype), mask=row_ok)
    if F > 2:
        tl.store(out + 2 * sof, o2.to(dtype), mask=row_ok)
    if F > 3:
        tl.store(out + 3 * sof, o3.to(dtype), mask=row_ok)
