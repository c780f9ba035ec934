"""The Triton kernels: a fused attention-flow forward and a pairwise-extreme reduction.

``attention_kernel`` computes, for one query tile of one batch member, every head h of

    O_h,i = sum_j A_ij v_j,   A from s_ij = beta_h <q_i, k_j> + b_ij  (masked: -inf)

with the FlashAttention-2 online softmax (running maximum mu, normaliser l; attention.md
§7.1), in base 2: scores carry beta log2(e), so p = exp2(s - mu). It never stores an
n x m matrix. The normalisation is softmax (O / l) or USA (O e^{mu} / m, optionally
shifted by e^{-beta}). Either every head is written, or the heads are summed and an
epilogue is applied to the sum on the fly: the tangent projection v - <x, v> x (the flow
on the sphere) or v / |v| (Peri-LN).

Scores are ``tl.dot`` tiles (d zero-padded to a power of two): on a GPU the dot's
register layout keeps a few rows and many columns per thread, which makes the row
reductions of the softmax cheap. The weighted sum of the values is a second ``tl.dot``,
or, for at most 4 value coordinates in float32 (the flows on S^1 and S^2), FMAs into
per-coordinate row accumulators in that same layout: exact, and cheaper than splitting
P into TF32 parts. float64 (no tensor cores in Triton) loops over coordinates with FMAs
throughout. Key tiles are visited in
three ways: all of them (ragged tail masked), the causal band (tiles below the
diagonal unmasked, the diagonal tile masked; anchored masks skip tiles that hold no
key of the query tile's segments and no anchor), or explicit block lists (PrFlash,
FlexAttention's BlockMask): absent blocks are never loaded. Plain pointer arithmetic
only, so the kernels run on triton 3.6 to 3.9 and in the interpreter.

The interpreter is chosen at import: with ``TRITON_INTERPRET=1`` in the environment the
kernels run on CPU tensors (slowly); otherwise they need CUDA tensors.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

INTERPRET: bool = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

LOG2E = 1.4426950408889634  # host-side constants; the kernels read the constexpr twins
LN2 = 0.6931471805599453
_LOG2E = tl.constexpr(LOG2E)
_LN2 = tl.constexpr(LN2)

# ITER: how key tiles are visited
ITER_ALL, ITER_CAUSAL, ITER_LISTS = 0, 1, 2
# RULE: the elementwise mask on visited tiles that need one
RULE_NONE, RULE_CAUSAL, RULE_ANCHORED, RULE_DENSE = 0, 1, 2, 3
# BIAS: distance bias -m_h g(|i - j|)
BIAS_NONE, BIAS_LINEAR, BIAS_TABLE = 0, 1, 2
# NORM
NORM_SOFTMAX, NORM_USA, NORM_USA_SHIFTED = 0, 1, 2
# EPILOGUE on the head sum
EPI_NONE, EPI_TANGENT, EPI_UNIT = 0, 1, 2


@triton.jit
def _tile(
    acc, a0, a1, a2, a3, m_i, l_i, q, q_base, k_base, v_base, kb_base, m_base, DIST,
                SEG, ANC,
    rows, rows64, row_ok, seg_q, anc_q, j0, kstep, m, scale2, slope2,
    sqn, sqe, skn, ske, svn, svf, skbn, smn, smm,
    E: tl.constexpr, F: tl.constexpr, EP: tl.constexpr, FP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BOUNDS: tl.constexpr, RULE: tl.constexpr,
    BIAS: tl.constexpr, KEY_BIAS: tl.constexpr, USE_DOT: tl.constexpr,
    PRESCALE: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    PV_FMA: tl.constexpr,
):
    """One key tile [j0, j0 + BLOCK_N): scores, mask, online-softmax update of (acc, mu, l).

    With PV_FMA the weighted sum of the (at most 4) value coordinates is accumulated in
    a0..a3 by FMAs in the scores' own register layout (exact float32, no conversion of P
    to a dot operand); otherwise in acc, by ``tl.dot`` or, in float64, a coordinate loop.
    """
    offs_n = tl.arange(0, BLOCK_N)
    cols = j0 + offs_n
    col_ok = (offs_n < kstep) & (cols < m)
    cols64 = cols.to(tl.int64)
    if USE_DOT:
        offs_e = tl.arange(0, EP)
        k = tl.load(k_base + cols64[:, None] * skn + offs_e[None, :] * ske,
                    mask=col_ok[:, None] & (offs_e[None, :] < E), other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION)
    else:
        s = tl.zeros([BLOCK_M, BLOCK_N], dtype=acc.dtype)
        if E <= 16:
            for c in tl.static_range(E):
                qc = tl.load(q_base + rows64 * sqn + c * sqe, mask=row_ok, other=0.0)
                kc = tl.load(k_base + cols64 * skn + c * ske, mask=col_ok, other=0.0)
                s += (qc.to(acc.dtype) * scale2)[:, None] * kc.to(acc.dtype)[None, :]
        else:
            for c in range(E):
                qc = tl.load(q_base + rows64 * sqn + c * sqe, mask=row_ok, other=0.0)
                kc = tl.load(k_base + cols64 * skn + c * ske, mask=col_ok, other=0.0)
                s += (qc.to(acc.dtype) * scale2)[:, None] * kc.to(acc.dtype)[None, :]
    if not PRESCALE:
        s = s * scale2
    if BIAS == 1:
        s = s - slope2 * tl.abs(rows[:, None] - cols[None, :]).to(s.dtype)
    if BIAS == 2:
        g = tl.load(DIST + tl.abs(rows[:, None] - cols[None, :]),
                    mask=row_ok[:, None] & col_ok[None, :], other=0.0)
        s = s - slope2 * g.to(s.dtype)
    if KEY_BIAS:
        s = s + tl.load(kb_base + cols64 * skbn, mask=col_ok, other=0.0).to(s.dtype)[None, :]
    if BOUNDS or RULE != 0:
        ok = col_ok[None, :] & row_ok[:, None]
        if RULE == 1:
            ok = ok & (cols[None, :] <= rows[:, None])
        if RULE == 2:
            seg_k = tl.load(SEG + cols, mask=col_ok, other=-1)
            anc_k = tl.load(ANC + cols, mask=col_ok, other=0)
            same = seg_k[None, :] == seg_q[:, None]
            summary = (anc_k[None, :] != 0) & (anc_q[:, None] == 0)
            ok = ok & (cols[None, :] <= rows[:, None]) & (same | summary)
        if RULE == 3:
            allowed = tl.load(m_base + rows64[:, None] * smn + cols64[None, :] * smm,
                              mask=row_ok[:, None] & col_ok[None, :], other=0)
            ok = ok & (allowed != 0)
        s = tl.where(ok, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.exp2(s - m_use[:, None])
    alpha = tl.exp2(m_i - m_use)
    l_i = l_i * alpha + tl.sum(p, 1)
    offs_f = tl.arange(0, FP)
    if PV_FMA:
        a0 = a0 * alpha + tl.sum(p * tl.load(v_base + cols64 * svn, mask=col_ok,
                                             other=0.0).to(p.dtype)[None, :], 1)
        if F > 1:
            a1 = a1 * alpha + tl.sum(p * tl.load(v_base + cols64 * svn + svf, mask=col_ok,
                                                 other=0.0).to(p.dtype)[None, :], 1)
        if F > 2:
            a2 = a2 * alpha + tl.sum(p * tl.load(v_base + cols64 * svn + 2 * svf, mask=col_ok,
                                                 other=0.0).to(p.dtype)[None, :], 1)
        if F > 3:
            a3 = a3 * alpha + tl.sum(p * tl.load(v_base + cols64 * svn + 3 * svf, mask=col_ok,
                                                 other=0.0).to(p.dtype)[None, :], 1)
    elif USE_DOT:
        acc = acc * alpha[:, None]
        v = tl.load(v_base + cols64[:, None] * svn + offs_f[None, :] * svf,
                    mask=col_ok[:, None] & (offs_f[None, :] < F), other=0.0)
        if UPCAST:
            v = v.to(tl.float32)
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PRECISION)
    else:
        acc = acc * alpha[:, None]
        if F <= 16:
            for c in tl.static_range(F):
                vc = tl.load(v_base + cols64 * svn + c * svf, mask=col_ok, other=0.0)
                part = tl.sum(p * vc.to(p.dtype)[None, :], 1)
                acc += tl.where(offs_f[None, :] == c, part[:, None], 0.0)
        else:
            for c in range(F):
                vc = tl.load(v_base + cols64 * svn + c * svf, mask=col_ok, other=0.0)
                part = tl.sum(p * vc.to(p.dtype)[None, :], 1)
                acc += tl.where(offs_f[None, :] == c, part[:, None], 0.0)
    return acc, a0, a1, a2, a3, m_new, l_i


@triton.jit
def _head(
    h, b, pid_m, start_m, Q, K, V, KB, SLOPES, DIST, SEG, ANC, ANC_CUM, MASK, BETA,
    FULL_NUM, FULL_IDX, PART_NUM, PART_IDX,
    sqb, sqh, sqn, sqe, skb, skg, skn, ske, svb, svg, svn, svf,
    sbb, sbh, skbb, skbh, skbn, smb, smh, smn, smm, snb, snq, sib, siq,
    rows, rows64, row_ok, seg_q, anc_q, seg_first, n, m, GROUP, kstep,
    E: tl.constexpr, F: tl.constexpr, EP: tl.constexpr, FP: tl.constexpr,
    NORM: tl.constexpr, ITER: tl.constexpr, RULE: tl.constexpr, BIAS: tl.constexpr,
    KEY_BIAS: tl.constexpr, USE_DOT: tl.constexpr, PRESCALE: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr, ACC_F64: tl.constexpr,
    PV_FMA: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Head h of batch member b for one query tile: (O normalised, mu, l)."""
    h64 = tl.cast(h, tl.int64)
    g64 = tl.cast(h // GROUP, tl.int64)
    q_base = Q + b * sqb + h64 * sqh
    k_base = K + b * skb + g64 * skg
    v_base = V + b * svb + g64 * svg
    kb_base = KB + b * skbb + h64 * skbh
    m_base = MASK + b * smb + h64 * smh
    scale2 = tl.load(BETA + b * sbb + h64 * sbh) * _LOG2E
    if BIAS != 0:
        slope2 = tl.load(SLOPES + h)
    else:
        slope2 = 0.0
    if USE_DOT:
        offs_e = tl.arange(0, EP)
        q = tl.load(q_base + rows64[:, None] * sqn + offs_e[None, :] * sqe,
                    mask=row_ok[:, None] & (offs_e[None, :] < E), other=0.0)
        if UPCAST:
            q = q.to(tl.float32)
        if PRESCALE:
            q = (q * scale2).to(q.dtype)
    else:
        q = 0.0
    offs_f = tl.arange(0, FP)
    if ACC_F64:
        acc = tl.zeros([BLOCK_M, FP], dtype=tl.float64)
    else:
        acc = tl.zeros([BLOCK_M, FP], dtype=tl.float32)
    l_i = tl.sum(acc, 1)
    m_i = l_i + float("-inf")
    a0 = l_i
    a1 = l_i
    a2 = l_i
    a3 = l_i
    if ITER == 0:
        m_full = (m // BLOCK_N) * BLOCK_N
        for j0 in range(0, m_full, BLOCK_N):
            acc, a0, a1, a2, a3, m_i, l_i = _tile(
                acc, a0, a1, a2, a3, m_i, l_i, q, q_base, k_base, v_base, kb_base, m_base, DIST,
                SEG, ANC, rows, rows64, row_ok, seg_q, anc_q, j0, kstep, m, scale2, slope2,
                sqn, sqe, skn, ske, svn, svf, skbn, smn, smm,
                E, F, EP, FP, BLOCK_M, BLOCK_N, False, RULE, BIAS, KEY_BIAS, USE_DOT,
                PRESCALE, UPCAST, PRECISION, PV_FMA)
        if m_full < m:
            acc, a0, a1, a2, a3, m_i, l_i = _tile(
                acc, a0, a1, a2, a3, m_i, l_i, q, q_base, k_base, v_base, kb_base, m_base, DIST,
                SEG, ANC, rows, rows64, row_ok, seg_q, anc_q, m_full, kstep, m, scale2, slope2,
                sqn, sqe, skn, ske, svn, svf, skbn, smn, smm,
                E, F, EP, FP, BLOCK_M, BLOCK_N, True, RULE, BIAS, KEY_BIAS, USE_DOT,
                PRESCALE, UPCAST, PRECISION, PV_FMA)
    elif ITER == 1:
        for j0 in range(0, start_m, BLOCK_N):
            if RULE == 2:
                seg_last = tl.load(SEG + j0 + BLOCK_N - 1)
                anchors = tl.load(ANC_CUM + j0 + BLOCK_N) - tl.load(ANC_CUM + j0)
                if (seg_last >= seg_first) | (anchors > 0):
                    acc, a0, a1, a2, a3, m_i, l_i = _tile(
                        acc, a0, a1, a2, a3, m_i, l_i, q, q_base, k_base, v_base, kb_base, m_base,
                        DIST, SEG, ANC, rows, rows64, row_ok, seg_q, anc_q, j0, kstep, m, scale2,
                        slope2, sqn, sqe, skn, ske, svn, svf, skbn, smn, smm,
                        E, F, EP, FP, BLOCK_M, BLOCK_N, False, 2, BIAS, KEY_BIAS,
                        USE_DOT, PRESCALE, UPCAST, PRECISION, PV_FMA)
            else:
                acc, a0, a1, a2, a3, m_i, l_i = _tile(
                    acc, a0, a1, a2, a3, m_i, l_i, q, q_base, k_base, v_base, kb_base, m_base, DIST,
                    SEG, ANC, rows, rows64, row_ok, seg_q, anc_q, j0, kstep, m, scale2, slope2,
                    sqn, sqe, skn, ske, svn, svf, skbn, smn, smm,
                    E, F, EP, FP, BLOCK_M, BLOCK_N, False, 0, BIAS, KEY_BIAS, USE_DOT,
                    PRESCALE, UPCAST, PRECISION, PV_FMA)
        band_end = tl.minimum(start_m + BLOCK_M, n)
        for j0 in range(start_m, band_end, BLOCK_N):
            acc, a0, a1, a2, a3, m_i, l_i = _tile(
                acc, a0, a1, a2, a3, m_i, l_i, q, q_base, k_base, v_base, kb_base, m_base, DIST,
                SEG, ANC, rows, rows64, row_ok, seg_q, anc_q, j0, kstep, m, scale2, slope2,
                sqn, sqe, skn, ske, svn, svf, skbn, smn, smm,
                E, F, EP, FP, BLOCK_M, BLOCK_N, True, RULE, BIAS, KEY_BIAS, USE_DOT,
                PRESCALE, UPCAST, PRECISION, PV_FMA)
    else:
        full = tl.load(FULL_NUM + b * snb + pid_m * snq)
        for t in range(0, full):
            J = tl.load(FULL_IDX + b * sib + pid_m * siq + t)
            acc, a0, a1, a2, a3, m_i, l_i = _tile(
                acc, a0, a1, a2, a3, m_i, l_i, q, q_base, k_base, v_base, kb_base, m_base, DIST,
                SEG, ANC, rows, rows64, row_ok, seg_q, anc_q, J * kstep, kstep, m, scale2, slope2,
                sqn, sqe, skn, ske, svn, svf, skbn, smn, smm,
                E, F, EP, FP, BLOCK_M, BLOCK_N, True, 0, BIAS, KEY_BIAS, USE_DOT,
                PRESCALE, UPCAST, PRECISION, PV_FMA)
        part = tl.load(PART_NUM + b * snb + pid_m * snq)
        for t in range(0, part):
            J = tl.load(PART_IDX + b * sib + pid_m * siq + t)
            acc, a0, a1, a2, a3, m_i, l_i = _tile(
                acc, a0, a1, a2, a3, m_i, l_i, q, q_base, k_base, v_base, kb_base, m_base, DIST,
                SEG, ANC, rows, rows64, row_ok, seg_q, anc_q, J * kstep, kstep, m, scale2, slope2,
                sqn, sqe, skn, ske, svn, svf, skbn, smn, smm,
                E, F, EP, FP, BLOCK_M, BLOCK_N, True, RULE, BIAS, KEY_BIAS, USE_DOT,
                PRESCALE, UPCAST, PRECISION, PV_FMA)
    if PV_FMA:
        acc = tl.where(offs_f[None, :] == 0, a0[:, None], acc)
        acc = tl.where(offs_f[None, :] == 1, a1[:, None], acc)
        acc = tl.where(offs_f[None, :] == 2, a2[:, None], acc)
        acc = tl.where(offs_f[None, :] == 3, a3[:, None], acc)
    seen = l_i > 0
    if NORM == 0:
        o = acc / tl.where(seen, l_i, 1.0)[:, None]
    elif NORM == 1:
        o = acc * (tl.exp2(m_i) / m)[:, None]
    else:
        o = acc * (tl.exp2(m_i - scale2) / m)[:, None]
    return o, m_i, l_i


@triton.jit
def attention_kernel(
    Q, K, V, X, OUT, LSE, BETA, KB, SLOPES, DIST, SEG, ANC, ANC_CUM, MASK,
    FULL_NUM, FULL_IDX, PART_NUM, PART_IDX,
    sqb, sqh, sqn, sqe, skb, skg, skn, ske, svb, svg, svn, svf,
    sxb, sxn, sxf, sob, soh, son, sof, slb, slh, sln,
    sbb, sbh, skbb, skbh, skbn, smb, smh, smn, smm, snb, snq, sib, siq,
    n, m, H, GROUP, blk, n_bucket, m_bucket,
    E: tl.constexpr, F: tl.constexpr, EP: tl.constexpr, FP: tl.constexpr,
    NORM: tl.constexpr, ITER: tl.constexpr, RULE: tl.constexpr, BIAS: tl.constexpr,
    KEY_BIAS: tl.constexpr, EPILOGUE: tl.constexpr, SEPARATE: tl.constexpr,
    HEAD_LOOP: tl.constexpr, WRITE_LSE: tl.constexpr, USE_DOT: tl.constexpr,
    PRESCALE: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    ACC_F64: tl.constexpr, PV_FMA: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Program (query tile, batch member[, head]); see the module docstring.

    SEPARATE: one head per program, written with its LSE. Otherwise the heads are summed
    (HEAD_LOOP when there are several) and the epilogue is applied to the sum.
    """
    pid_m = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    if ITER == 2:
        qstep = blk
        kstep = blk
    else:
        qstep = BLOCK_M
        kstep = BLOCK_N
    start_m = pid_m * qstep
    offs_m = tl.arange(0, BLOCK_M)
    rows = start_m + offs_m
    row_ok = (offs_m < qstep) & (rows < n)
    rows64 = rows.to(tl.int64)
    offs_f = tl.arange(0, FP)
    f_ok = row_ok[:, None] & (offs_f[None, :] < F)
    if RULE == 2:
        seg_q = tl.load(SEG + rows, mask=row_ok, other=0)
        anc_q = tl.load(ANC + rows, mask=row_ok, other=0)
        seg_first = tl.load(SEG + start_m)
    else:
        seg_q = rows
        anc_q = rows
        seg_first = 0
    if SEPARATE:
        h0 = tl.program_id(2)
    else:
        h0 = 0
    o, m_i, l_i = _head(
        h0, b, pid_m, start_m, Q, K, V, KB, SLOPES, DIST, SEG, ANC, ANC_CUM, MASK, BETA,
        FULL_NUM, FULL_IDX, PART_NUM, PART_IDX,
        sqb, sqh, sqn, sqe, skb, skg, skn, ske, svb, svg, svn, svf,
        sbb, sbh, skbb, skbh, skbn, smb, smh, smn, smm, snb, snq, sib, siq,
        rows, rows64, row_ok, seg_q, anc_q, seg_first, n, m, GROUP, kstep,
        E, F, EP, FP, NORM, ITER, RULE, BIAS, KEY_BIAS, USE_DOT, PRESCALE, UPCAST, PRECISION,
        ACC_F64, PV_FMA, BLOCK_M, BLOCK_N)
    if SEPARATE:
        h64 = tl.cast(h0, tl.int64)
        tl.store(OUT + b * sob + h64 * soh + rows64[:, None] * son + offs_f[None, :] * sof,
                 o.to(OUT.dtype.element_ty), mask=f_ok)
        if WRITE_LSE:
            seen = l_i > 0
            lse = tl.where(seen, (m_i + tl.log2(tl.where(seen, l_i, 1.0))) * _LN2,
                           float("-inf"))
            tl.store(LSE + b * slb + h64 * slh + rows64 * sln, lse, mask=row_ok)
    else:
        if HEAD_LOOP:
            for h in range(1, H):
                o_h, _, _ = _head(
                    h, b, pid_m, start_m, Q, K, V, KB, SLOPES, DIST, SEG, ANC, ANC_CUM, MASK,
                    BETA, FULL_NUM, FULL_IDX, PART_NUM, PART_IDX,
                    sqb, sqh, sqn, sqe, skb, skg, skn, ske, svb, svg, svn, svf,
                    sbb, sbh, skbb, skbh, skbn, smb, smh, smn, smm, snb, snq, sib, siq,
                    rows, rows64, row_ok, seg_q, anc_q, seg_first, n, m, GROUP, kstep,
                    E, F, EP, FP, NORM, ITER, RULE, BIAS, KEY_BIAS, USE_DOT, PRESCALE, UPCAST,
                    PRECISION, ACC_F64, PV_FMA, BLOCK_M, BLOCK_N)
                o += o_h
        if EPILOGUE == 1:
            x = tl.load(X + b * sxb + rows64[:, None] * sxn + offs_f[None, :] * sxf,
                        mask=f_ok, other=0.0).to(o.dtype)
            o = o - tl.sum(x * o, 1)[:, None] * x
        if EPILOGUE == 2:
            o = o / tl.sqrt(tl.sum(o * o, 1))[:, None]
        tl.store(OUT + b * sob + rows64[:, None] * son + offs_f[None, :] * sof,
                 o.to(OUT.dtype.element_ty), mask=f_ok)


@triton.jit
def pairwise_kernel(
    X, PART, sxb, sxn, sxd, spb, n, D: tl.constexpr, DP: tl.constexpr, LARGEST: tl.constexpr,
    USE_DOT: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr,
):
    """PART[b, I] = min (or max) over j > i of <x_i, x_j> for the rows i of tile I: the
    upper triangle of the Gram matrix is visited once, the diagonal excluded; rows with
    no partner give +-3 (outside [-1, 1] for unit vectors)."""
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    base = X + b * sxb
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    row_ok = rows < n
    rows64 = rows.to(tl.int64)
    if LARGEST:
        fill = -3.0
    else:
        fill = 3.0
    if F64:
        best = tl.zeros([BLOCK], dtype=tl.float64) + fill
    else:
        best = tl.zeros([BLOCK], dtype=tl.float32) + fill
    if USE_DOT:
        offs_d = tl.arange(0, DP)
        a = tl.load(base + rows64[:, None] * sxn + offs_d[None, :] * sxd,
                    mask=row_ok[:, None] & (offs_d[None, :] < D), other=0.0).to(tl.float32)
    for j0 in range(pid * BLOCK, n, BLOCK):
        cols = j0 + tl.arange(0, BLOCK)
        col_ok = cols < n
        cols64 = cols.to(tl.int64)
        if USE_DOT:
            bt = tl.load(base + cols64[:, None] * sxn + offs_d[None, :] * sxd,
                         mask=col_ok[:, None] & (offs_d[None, :] < D), other=0.0).to(tl.float32)
            g = tl.dot(a, tl.trans(bt), input_precision="tf32x3")
        else:
            g = tl.zeros([BLOCK, BLOCK], dtype=best.dtype)
            for c in tl.static_range(D):
                xc = tl.load(base + rows64 * sxn + c * sxd, mask=row_ok, other=0.0)
                yc = tl.load(base + cols64 * sxn + c * sxd, mask=col_ok, other=0.0)
                g += xc.to(best.dtype)[:, None] * yc.to(best.dtype)[None, :]
        keep = (cols[None, :] > rows[:, None]) & col_ok[None, :] & row_ok[:, None]
        g = tl.where(keep, g.to(best.dtype), fill)
        if LARGEST:
            best = tl.maximum(best, tl.max(g, 1))
        else:
            best = tl.minimum(best, tl.min(g, 1))
    if LARGEST:
        tile = tl.max(best, 0)
    else:
        tile = tl.min(best, 0)
    tl.store(PART + b * spb + pid, tile)
