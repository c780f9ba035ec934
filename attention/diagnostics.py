"""Per-head diagnostics of an attention layer against the clustering theorems.

For a layer ``Operator`` whose heads are ``Projections`` (MHA, GQA, MQA; also MFA/MFA-KR
``FactorizedHeads`` without query_norm, see ``head_matrices``; MLA is refused), query
head h reads key/value group g(h) = h // (H/G) and the layer is

    y_i = sum_h sum_j P^h_ij x_j W_V^g W_O^h,   P^h_i. = softmax_j( s x_i W_Q^h W_K^{gT} x_j^T )

with s = ``operator.effective_scale`` (1/sqrt(d_h) for imported models). Per head:

* B_h = s W_Q^h W_K^{g(h)T}   (d x d): the bilinear form of the scores, x_i B_h x_j^T. In the
  notation of 2312.10794 (2.3) and 2305.05465 it is beta Q^T K (beta absorbed);
* V_h = W_V^{g(h)} W_O^h      (d x d): the value-output map in the package's row convention
  (tokens are rows, x -> x V_h). The papers write tokens as columns, x -> V x, so **their V
  is V_h^T** (``paper_value``); the spectra agree, the eigenvectors used for predictions
  (phi_1, the leading eigenspace) are those of V_h^T, i.e. the left eigenvectors of V_h.
* the eigenvalues of V_h (complex in general), sorted by real part (largest first);
  the singular values of B_h; sym(B) = (B + B^T)/2, anti(B) = (B - B^T)/2 and their
  relative Frobenius norms |sym|_F/|B|_F, |anti|_F/|B|_F;
* ``effective_beta`` = r^2 |sym(B_h)|_F / sqrt(d): the inverse temperature beta of the
  model Q = K = I (scores beta <x_i, x_j>) whose form beta I has the same Frobenius norm as
  sym(B_h), for tokens of norm r (``radius``; r = 1 for the package's unit-sphere flows,
  r = sqrt(d) for LayerNorm outputs without gain). Only sym(B) enters the self-score
  x B x^T, and footnote 2 of 2312.10794 is the rescaling argument: the 1/sqrt(d) of the
  implementation "together with the typical size of Q and K produces beta". For B = b I it
  is exactly r^2 b; with r = sqrt(d) it is sqrt(d |sym B|_F^2), the "effective beta" of
  the authors' ALBERT notebook (spec §5.2, ``albert_eigvals.ipynb``). ``beta_max`` =
  r^2 lambda_max(sym B) is the largest self-score.

Biases (b_Q, b_K, b_V, b_O) are **ignored** for B_h and V_h: the theorems are stated for
linear maps, and a biased head is reported with a caveat. RoPE, a positional bias, a
mask other than the causal one and normalisations other than softmax/USA are also
reported as caveats (the theorems do not cover them). Several heads: none of the
theorems covers the multi-head flow (2.7) (2312.10794 §2.4); each head's classification
is about the flow of that head alone (``head_operator``).

Which results apply (``results``; hypotheses checked up to the relative tolerance
``tol``: a matrix identity M = N is accepted when |M - N|_2 <= tol |M|_2, a strict
inequality a > b when a - b > tol times the matrix's norm). Sources as in
shared/specs/paper.md; 2305.05465 statements as quoted by its Lean formalization (v6 labels).

Setting "euclidean" (2305.05465, pure attention (9.1) in R^d, softmax, beta absorbed,
rescaled z = e^{-tV} x):

* Thm 3.1 (t:Idcase11int): V = I_d and Q^T K symmetric positive definite: the z_i tend to
  0 or to the boundary of a convex polytope K (the limit set S is finite, vertices of K
  within S within dK u {0}). V = c I, c > 0, is V = I after the time change t -> ct [I].
* Thm 4.1 (l:3hyperplanes11, Definition d:good): the eigenvalue lambda_1 of V of largest
  modulus is real, positive and simple, lambda_1 > |lambda_2| >= ..., and
  <Q phi_1, K phi_1> > 0 for its eigenvector phi_1 (Q^T K need not be definite): every
  phi_1^*(z_i) converges to one of <= 3 values {0, a, b}, so the z_i approach <= 3 parallel
  hyperplanes (level sets of phi_1^*). Since x = e^{tV} z and rho(V|_G) < lambda_1, the
  directions x_i/|x_i| off the middle hyperplane tend to +-phi_1 [I].
* Thm 5.1 (t:multiplicity, Definition d:goodmulti): V paranormal, i.e. R^d = F + G with
  V-invariant F, G, V = lambda I on F, lambda > 0, rho(V|_G) < lambda, and Q^T K symmetric
  positive definite: the z_i approach (dK u {0}) x G for a polytope K in F. The directions
  of x concentrate on F [I]. Checked as: the eigenvalues of largest modulus all equal one
  real lambda > 0, with as many independent eigenvectors as their multiplicity k.
* Thm C.5 (t:cas-Idintro): V = -I_d and Q^T K = I_d: x_i(t) -> 0 and the attention tends
  to the uniform matrix 1/n. Checked up to V = -c I, Q^T K = b I, c, b > 0 (time change
  and x -> sqrt(b) x [I]).
* Thm 2.1 (t:boolean): d = 1, V > 0, QK > 0: the attention matrix tends to a Boolean one
  (rows e_a or e_b but at most one), rank <= 3.
* Conjecture c:codim (§4): k >= 1 eigenvalues of V with positive real part: the z_i approach
  <= 3 parallel affine subspaces of codimension k (no hypothesis on Q, K). Reported with
  kind "conjecture"; it never sets the regime.

Setting "sphere" (2312.10794 v4, (2.3) with LayerNorm as the unit sphere, SA or USA):

* V = c I, c > 0 (time change [I]), arbitrary Q, K: Lemma 6.4 (all tokens in an open
  hemisphere: exponential collapse to one point), Thm 6.3 (d >= n, i.i.d. uniform start:
  one point a.s.), Thm 4.2 (one cluster with probability -> 1 as beta -> 0).
  If moreover Q^T K = b I, b >= 0 (SA/USA at beta = b): Thm 6.1 (d >= 3, every beta) or,
  for d = 2, 2507.22857 (beta >= -0.16): a.e. initial datum converges to one point.
  Under the causal mask: 2411.04990 Thm 4.1 (V = I, arbitrary Q, K): x_k(t) -> x_1(0).
* §3.4 (3.12) with (3.7): Q^T K symmetric and V = Q^T K up to a sign and a positive factor,
  i.e. V = c B with B symmetric, c != 0 (beta = 1/|c|, V' = |c| B): SA is the gradient
  ascent (c > 0) or descent (c < 0) of E(X) = (1/(2 beta)) sum_ij e^{beta <V' x_i, x_j>} for
  the metric weighted by Z_{beta,i} (softmax only).
* §9.1 / (3.6): V = -c I, Q^T K = b I: the energy E_beta decreases (repulsive; no clustering).
* Causal mask with the leading eigenvalue of V positive and simple: conjecture of
  2411.04990 (x_k -> +-xi); multiplicity: x_k -> P_L x_1(0)/|P_L x_1(0)|.

``regime`` names the first that applies of "identity" (V = c I: (a)), "negative-identity"
(Thm C.5 / §9.1; also a gradient descent by (3.7)), "gradient-flow" (§3.4: (d)),
"simple-leading" ((b), Thm 4.1), "paranormal" ((c), Thm 5.1; with k = 1 it is listed
after Thm 4.1, whose prediction is sharper), "one-dimensional" (Thm 2.1), "none" ((e)).
Conjectures are listed in ``results`` but never set the regime.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from attention.array_api import to_numpy
from attention.masks import Full
from attention.operator import Operator
from attention.variants.mfa import FactorizedHeads
from attention.variants.standard import Projections

REGIMES: tuple[str, ...] = (
    "identity", "negative-identity", "gradient-flow", "simple-leading", "paranormal",
    "one-dimensional", "none",
)
SETTINGS: tuple[str, ...] = ("sphere", "euclidean")
DEFAULT_TOL = 1e-6

_SPHERE_NORMALIZATIONS = ("softmax", "usa", "usa-shifted")


@dataclass(frozen=True)
class Result:
    """One theorem (or conjecture) whose hypotheses hold for a head, and what it predicts.

    regime:     the case it belongs to (``REGIMES``)
    source:     paper, version, statement (as in shared/specs/paper.md)
    setting:    "sphere" (2312.10794, tokens on S^{d-1}) or "euclidean" (2305.05465, R^d)
    kind:       "theorem" or "conjecture"
    hypotheses, conclusion: in words, with the quantities checked
    geometry:   the predicted limit: "point", "polytope", "hyperplanes", "polytope x subspace",
                "origin", "boolean", "affine subspaces", "critical point", "energy decreases",
                "first token"
    basis:      (d, k) orthonormal basis of the subspace the token directions x_i/|x_i|
                concentrate on (None: no subspace is predicted)
    clusters:   (low, high) expected number of direction clusters (high None: unbounded
                by the theorem; counts antipodal directions as two clusters)
    """

    regime: str
    source: str
    setting: str
    kind: str
    hypotheses: str
    conclusion: str
    geometry: str
    basis: np.ndarray | None = None
    clusters: tuple[int, int | None] = (1, None)


@dataclass(frozen=True)
class HeadDiagnostics:
    """The matrices, spectra and applicable results of one head (module docstring).

    value_eigenvalues: complex (d,), sorted by real part, largest first (ties: imaginary
    part, largest first); query_key_singular_values: (d,), largest first.
    leading_vector: phi_1, the unit eigenvector of the paper's V = V_h^T for the eigenvalue
    of largest modulus when that eigenvalue is real (None otherwise); sign fixed so that
    its largest-magnitude entry is positive.
    caveats: where the layer departs from the theorems' setting (biases, RoPE, masks, ...).
    """

    head: int
    group: int
    layer: int | None
    scale: float
    query_key: np.ndarray
    value: np.ndarray
    value_eigenvalues: np.ndarray
    query_key_singular_values: np.ndarray
    query_key_symmetric: np.ndarray
    query_key_antisymmetric: np.ndarray
    symmetric_fraction: float
    antisymmetric_fraction: float
    effective_beta: float
    beta_max: float
    radius: float
    tolerance: float
    query_key_spd: bool
    leading_vector: np.ndarray | None
    regime: str
    results: tuple[Result, ...]
    caveats: tuple[str, ...] = field(default=())

    @property
    def d(self) -> int:
        return int(self.value.shape[0])

    @property
    def paper_value(self) -> np.ndarray:
        """V of the papers (tokens as columns, x -> V x): V_h^T."""
        return self.value.T

    @property
    def leading_eigenvalue(self) -> complex:
        """The eigenvalue of V with the largest real part."""
        return complex(self.value_eigenvalues[0])

    @property
    def dominant_eigenvalue(self) -> complex:
        """The eigenvalue of V of largest modulus (Definition d:good's lambda_1)."""
        return complex(self.value_eigenvalues[int(np.argmax(np.abs(self.value_eigenvalues)))])

    @property
    def dominance_ratio(self) -> float:
        """|lambda|_(1) / |lambda|_(2): largest over second-largest eigenvalue modulus
        (inf when the second is 0, nan when V = 0 or d = 1)."""
        mods = np.sort(np.abs(self.value_eigenvalues))[::-1]
        if mods.size < 2 or mods[0] == 0:
            return math.nan
        return math.inf if mods[1] == 0 else float(mods[0] / mods[1])

    def prediction(self, setting: str | None = None) -> Result | None:
        """The first theorem (not conjecture) for ``setting`` (None: any), in the order
        of ``results`` (the regime's own result first); None when none applies."""
        if setting is not None and setting not in SETTINGS:
            raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
        for r in self.results:
            if r.kind == "theorem" and (setting is None or r.setting == setting):
                return r
        return None


# -- matrices of the heads ------------------------------------------------------------------
def _np(a: Any) -> np.ndarray:
    return np.asarray(to_numpy(a), dtype=np.float64)


def _check_projections(operator: Any) -> Any:
    """The operator's heads: ``Projections``, or MFA/MFA-KR ``FactorizedHeads`` without
    the query normalisation (whose per-head products are exact linear maps)."""
    if not isinstance(operator, Operator):
        raise TypeError(f"diagnose takes an attention.operator.Operator, got "
                        f"{type(operator).__name__}")
    heads = operator.heads
    if isinstance(heads, FactorizedHeads):
        if heads.query_norm:
            raise TypeError("MFA with query_norm=True normalises the queries (not a linear "
                            "map): per-head B is undefined; supported: Projections "
                            "(MHA/GQA/MQA) and MFA/MFA-KR without query_norm")
        if heads.key_reuse and heads.rope is not None and heads.value_from == "post_rope":
            raise TypeError("MFA-KR with value_from='post_rope' builds values from rotated "
                            "keys (position-dependent): per-head V is undefined")
    elif not isinstance(heads, Projections):
        raise TypeError(
            "per-head diagnostics need Projections heads (MHA, GQA, MQA: "
            "attention.variants.standard.Projections) or MFA/MFA-KR FactorizedHeads; this "
            f"operator's heads are {type(heads).__name__} (MLA is not supported)"
        )
    if heads.d_out != heads.d_in:
        raise ValueError(f"the heads map {heads.d_in} to {heads.d_out} features; the "
                         "theorems need V: R^d -> R^d")
    return heads


def _head_scales(operator: Operator, H: int) -> np.ndarray:
    s = np.asarray(to_numpy(operator.effective_scale), dtype=np.float64)
    if s.ndim == 0:
        return np.full(H, float(s))
    if s.size == H:
        return s.reshape(H)
    raise ValueError(f"cannot read one score scale per head from a scale of shape {s.shape}")


def head_matrices(operator: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, V, group): B (H, d, d) = s W_Q^h W_K^{g(h)T}, V (H, d, d) = W_V^{g(h)} W_O^h and
    the group g(h) = h // (H/G) of each query head, float64 numpy. A None projection is
    the identity. Biases are ignored (module docstring). For MFA (one key/value head,
    G = 1): W_Q^h = S_q Q_h, W_K = S_k, W_V = S_v, W_O^h = O_h; for MFA-KR the value map
    is W_V = S_k (I + N diag(alpha)) (v = k + alpha * (k N))."""
    heads = _check_projections(operator)
    H, d = heads.n_heads, heads.d_in
    scales = _head_scales(operator, H)
    if isinstance(heads, FactorizedHeads):
        S_k = _np(heads.S_k)
        W_Q = _np(heads.S_q) @ _np(heads.Q)  # (H, d, C)
        if heads.key_reuse:
            W_V = S_k @ (np.eye(S_k.shape[1]) + _np(heads.N) * _np(heads.alpha)[None, :])
        else:
            W_V = _np(heads.S_v)
        B = scales[:, None, None] * (W_Q @ S_k.T)
        V = W_V @ _np(heads.O)
        return B, V, np.zeros(H, dtype=int)
    G = heads.n_groups
    eye = np.eye(d)[None]
    W_Q = eye.repeat(H, 0) if heads.W_Q is None else _np(heads.W_Q)
    W_K = eye.repeat(G, 0) if heads.W_K is None else _np(heads.W_K)
    W_V = eye.repeat(G, 0) if heads.W_V is None else _np(heads.W_V)
    W_O = eye.repeat(H, 0) if heads.W_O is None else _np(heads.W_O)
    group = np.arange(H) // (H // G)
    B = scales[:, None, None] * (W_Q @ np.swapaxes(W_K[group], -1, -2))
    V = W_V[group] @ W_O
    return B, V, group


def head_operator(operator: Any, head: int) -> Operator:
    """The layer restricted to query head ``head`` (with its key/value group): one head,
    same mask, normalisation and scale, whose flow is the one the head's diagnostics
    describe. A positional bias cannot be split per head and is refused."""
    heads = _check_projections(operator)
    H = heads.n_heads
    if not 0 <= head < H:
        raise ValueError(f"head must lie in [0, {H}), got {head}")
    if operator.bias is not None:
        raise ValueError("head_operator does not split a positional bias between heads")
    scale = float(_head_scales(operator, H)[head])
    name = f"{operator.name}[head {head}]"
    if isinstance(heads, FactorizedHeads):
        one_f = replace(heads, Q=heads.Q[head : head + 1], O=heads.O[head : head + 1])
        return replace(operator, heads=one_f, scale=scale, name=name)
    g = head // (H // heads.n_groups)

    def pick(w: Any, i: int) -> Any:
        return None if w is None else w[i : i + 1]

    one = Projections(
        W_Q=pick(heads.W_Q, head), W_K=pick(heads.W_K, g), W_V=pick(heads.W_V, g),
        W_O=pick(heads.W_O, head), b_Q=pick(heads.b_Q, head), b_K=pick(heads.b_K, g),
        b_V=pick(heads.b_V, g), b_O=heads.b_O, heads=1, groups=1, d=heads.d_in,
        rope=heads.rope,
    )
    return replace(operator, heads=one, scale=scale, name=name)


# -- linear algebra helpers -------------------------------------------------------------------
def _norm2(m: np.ndarray) -> float:
    return float(np.linalg.norm(m, 2)) if m.size else 0.0


def _multiple_of_identity(m: np.ndarray, tol: float) -> float | None:
    """c with |m - c I|_2 <= tol |m|_2, or None."""
    d = m.shape[0]
    c = float(np.trace(m)) / d
    ref = max(_norm2(m), np.finfo(float).tiny)
    return c if _norm2(m - c * np.eye(d)) <= tol * ref else None


def _null_basis(m: np.ndarray, k: int) -> np.ndarray:
    """Orthonormal basis (d, k) of the k right singular vectors of m with the smallest
    singular values."""
    _, _, vt = np.linalg.svd(m)
    return vt[m.shape[0] - k :].T.copy()


def _orient(v: np.ndarray) -> np.ndarray:
    v = v / np.linalg.norm(v)
    return v if v[np.argmax(np.abs(v))] > 0 else -v


def _unstable_basis(vp: np.ndarray, tol_abs: float) -> np.ndarray:
    """Orthonormal basis of the invariant subspace of the eigenvalues with Re > tol_abs
    (ordered real Schur form)."""
    from scipy.linalg import schur

    _, z, k = schur(vp, output="real", sort=lambda re, im: re > tol_abs)
    return z[:, :k].copy()


def _sort_eigenvalues(ev: np.ndarray) -> np.ndarray:
    order = np.lexsort((-ev.imag, -ev.real))
    return ev[order].astype(complex)


# -- classification -------------------------------------------------------------------------
_SPHERE_V_I = (
    "V = c I with c > 0 (time change t -> c t [I]), arbitrary Q, K; SA or USA"
)


def _caveats(operator: Operator, heads: Any) -> tuple[str, ...]:
    out = []
    if any(getattr(heads, b, None) is not None for b in ("b_Q", "b_K", "b_V", "b_O")):
        out.append("biases are ignored in B and V; the theorems assume linear Q, K, V")
    if heads.rope is not None:
        out.append("RoPE makes the scores depend on positions; the theorems do not cover it")
    if operator.bias is not None:
        out.append("a positional bias is ignored; the theorems do not cover it")
    mask = operator.mask
    if mask is not None and not mask.causal and not isinstance(mask, Full):
        out.append(f"the mask {type(mask).__name__} is outside every theorem")
    if operator.normalization not in _SPHERE_NORMALIZATIONS:
        out.append(f"normalisation {operator.normalization!r} is outside every theorem")
    if heads.n_heads > 1:
        out.append(f"{heads.n_heads} heads: no theorem covers the multi-head flow (2.7) "
                   "(2312.10794 §2.4); results describe this head alone")
    if operator.quantizer is not None:
        out.append("a cache quantizer is ignored")
    return tuple(out)


def _classify(
    B: np.ndarray, V: np.ndarray, *, tol: float, normalization: str, causal: bool,
    masked: bool,
) -> tuple[str, tuple[Result, ...], bool, np.ndarray | None]:
    """(regime, results, Q^T K spd, phi_1) for one head; V is the paper's V (= V_h^T)."""
    d = V.shape[0]
    sV, sB = _norm2(V), _norm2(B)
    ev = np.linalg.eigvals(V)
    sym = 0.5 * (B + B.T)
    symmetric = _norm2(B - B.T) <= 2 * tol * max(sB, np.finfo(float).tiny)
    spd = bool(symmetric and sB > 0 and np.linalg.eigvalsh(sym)[0] > tol * sB)
    softmax = normalization == "softmax"
    sphere_ok = normalization in _SPHERE_NORMALIZATIONS and d >= 2  # S^{d-1}, d >= 2
    full = not masked  # no mask at all

    c_v = _multiple_of_identity(V, tol) if sV > 0 else None
    b_b = _multiple_of_identity(B, tol) if sB > 0 else (0.0 if d > 0 else None)

    # the eigenvalue of largest modulus and the eigenvalues tied with it
    mods = np.abs(ev)
    i1 = int(np.argmax(mods))
    lam1 = ev[i1]
    lam1_real = abs(lam1.imag) <= tol * sV and lam1.real > tol * sV
    tied = np.nonzero(mods >= mods[i1] - tol * sV)[0]
    phi1 = None
    if lam1_real and tied.size == 1:
        phi1 = _orient(_null_basis(V - lam1.real * np.eye(d), 1)[:, 0])

    results: list[Result] = []
    regime = "none"

    def add(r: Result, sets_regime: bool = True) -> None:
        nonlocal regime
        results.append(r)
        if sets_regime and r.kind == "theorem" and regime == "none":
            regime = r.regime

    # (a) V = c I ------------------------------------------------------------------------
    if c_v is not None and c_v > tol * sV:
        if sphere_ok and full:
            if b_b is not None and b_b >= (-0.16 if d == 2 else 0.0):
                src = ("arXiv 2312.10794 v4, Thm 6.1 ([MTG17], [CRMB24]; SA and USA, d >= 3)"
                       if d >= 3 else
                       "arXiv 2507.22857 (Polyanskiy-Rigollet-Yao; d = 2, beta >= -0.16)")
                add(Result(
                    "identity", src, "sphere", "theorem",
                    f"{_SPHERE_V_I}; Q^T K = b I with beta = b = {b_b:.6g} (SA/USA at beta)",
                    "for a.e. initial datum all tokens converge to one point",
                    "point", None, (1, 1)))
            add(Result(
                "identity",
                "arXiv 2312.10794 v4, Lemma 6.4 (cone collapse), Thm 6.3 (d >= n), Thm 4.2",
                "sphere", "theorem", _SPHERE_V_I,
                "tokens in an open hemisphere collapse exponentially to one point; for "
                "d >= n and i.i.d. uniform starts, a.s. one point; one cluster with "
                "probability -> 1 as beta -> 0",
                "point", None, (1, 1)))
        if sphere_ok and causal:
            add(Result(
                "identity", "arXiv 2411.04990, Thm 4.1 (causal attention)", "sphere",
                "theorem", f"causal mask; {_SPHERE_V_I}",
                "for a.e. initial datum every x_k(t) -> x_1(0) (token 1 is fixed)",
                "first token", None, (1, 1)))
        if softmax and full and spd:
            add(Result(
                "identity",
                "arXiv 2305.05465 v6, Thm 3.1 (t:Idcase11int); Thm 5.1 with F = R^d",
                "euclidean", "theorem",
                "V = c I, c > 0 (time change [I]); Q^T K symmetric positive definite",
                "the rescaled z_i tend to 0 or to the boundary of a convex polytope K "
                "(finite limit set: vertices of K within S within dK u {0})",
                "polytope", None, (1, None)))

    # V = -c I ---------------------------------------------------------------------------------
    if c_v is not None and c_v < -tol * sV and b_b is not None and b_b > tol * sB:
        if softmax and full:
            add(Result(
                "negative-identity", "arXiv 2305.05465 v6, Thm C.5 (t:cas-Idintro)",
                "euclidean", "theorem",
                f"V = -c I (c = {-c_v:.6g} > 0), Q^T K = b I (b = {b_b:.6g} > 0); "
                "time change and x -> sqrt(b) x [I]",
                "x_i(t) -> 0 and the attention tends to the uniform matrix 1/n",
                "origin", None, (1, 1)))
        if sphere_ok and full:
            add(Result(
                "negative-identity", "arXiv 2312.10794 v4, §9.1 and (3.6)", "sphere",
                "theorem", f"V = -c I, Q^T K = b I, beta = b = {b_b:.6g}",
                "E_beta decreases along the flow (repulsion); its minimiser over measures "
                "is uniform: no clustering",
                "energy decreases", None, (1, None)))

    # (d) gradient flow, §3.4 ---------------------------------------------------------------
    if symmetric and sB > 0 and sV > 0 and softmax and full and d >= 2:
        c = float(np.sum(V * sym) / np.sum(sym * sym))
        if c != 0 and _norm2(V - c * sym) <= tol * sV:
            beta = 1.0 / abs(c)
            way = "ascent" if c > 0 else "descent"
            one_point = c > 0 and c_v is not None and b_b is not None
            add(Result(
                "gradient-flow", "arXiv 2312.10794 v4, §3.4 (3.12) with (3.7)", "sphere",
                "theorem",
                f"Q^T K symmetric and V = c Q^T K (beta absorbed: V = c B), c = {c:.6g}; "
                f"beta = 1/|c| = {beta:.6g}, V' = |c| B",
                f"SA is the gradient {way} of E(X) = (1/(2 beta)) sum_ij e^{{beta <V' x_i, "
                "x_j>}} for the metric weighted by Z_{beta,i}; tokens approach critical "
                "points of E [I: Lojasiewicz]",
                "point" if one_point else "critical point", None,
                (1, 1) if one_point else (1, None)))

    # (b) simple leading eigenvalue, Thm 4.1 -------------------------------------------------
    if softmax and full and phi1 is not None:
        along = float(phi1 @ B @ phi1)
        if along > tol * max(sB, np.finfo(float).tiny):
            add(Result(
                "simple-leading", "arXiv 2305.05465 v6, Thm 4.1 (l:3hyperplanes11, d:good)",
                "euclidean", "theorem",
                f"lambda_1 = {lam1.real:.6g} real, positive, simple and of largest modulus "
                f"(|lambda_2| = {np.sort(mods)[-2] if d > 1 else 0.0:.6g}); "
                f"<Q phi_1, K phi_1> = phi_1 B phi_1 = {along:.6g} > 0",
                "each phi_1^*(z_i) tends to one of <= 3 values {0, a, b}: the z_i approach "
                "<= 3 parallel hyperplanes; directions off the middle one tend to "
                "+-phi_1 [I]",
                "hyperplanes", phi1[:, None], (1, 2)))

    # (c) paranormal, Thm 5.1 -----------------------------------------------------------------
    if softmax and full and spd and lam1_real and c_v is None:
        lam = float(lam1.real)
        top_ok = np.all(np.abs(ev[tied] - lam) <= tol * sV)
        k = int(tied.size)
        if top_ok and k >= 1:
            sv = np.linalg.svd(V - lam * np.eye(d), compute_uv=False)
            if int(np.sum(sv <= tol * sV)) == k:
                F = _null_basis(V - lam * np.eye(d), k)
                add(Result(
                    "paranormal", "arXiv 2305.05465 v6, Thm 5.1 (t:multiplicity, d:goodmulti)",
                    "euclidean", "theorem",
                    f"V paranormal: V = lambda I on F (dim {k}), lambda = {lam:.6g} > 0, "
                    "rho(V|_G) < lambda on an invariant complement G; Q^T K symmetric "
                    "positive definite",
                    "the rescaled z_i approach (dK u {0}) x G for a polytope K in F; the "
                    "directions x_i/|x_i| concentrate on F [I]",
                    "polytope x subspace", F, (1, None)))

    # d = 1, Thm 2.1 ---------------------------------------------------------------------------
    if d == 1 and softmax and full and V[0, 0] > 0 and B[0, 0] > 0:
        add(Result(
            "one-dimensional", "arXiv 2305.05465 v6, Thm 2.1 (t:boolean)", "euclidean",
            "theorem", "d = 1, V > 0, QK > 0, distinct initial tokens",
            "P(t) tends to a Boolean matrix: rows e_a or e_b except at most one; rank <= 3",
            "boolean", np.ones((1, 1)), (1, 2)))

    # conjectures -------------------------------------------------------------------------------
    k_pos = int(np.sum(ev.real > tol * sV))
    if softmax and full and k_pos >= 1:
        add(Result(
            "none", "arXiv 2305.05465 v6, Conjecture c:codim (§4)", "euclidean", "conjecture",
            f"k = {k_pos} eigenvalues of V with positive real part (no hypothesis on Q, K)",
            f"the z_i approach <= 3 parallel affine subspaces of codimension {k_pos}",
            "affine subspaces", _unstable_basis(V, tol * sV), (1, None)), sets_regime=False)
    if causal and sphere_ok and lam1_real and c_v is None:
        if phi1 is not None:
            add(Result(
                "none", "arXiv 2411.04990, conjecture (simple lambda_max)", "sphere",
                "conjecture", "causal mask; lambda_max(V) > 0 simple with eigenvector xi",
                "each x_k -> +-xi", "point", phi1[:, None], (1, 2)), sets_regime=False)

    # order: the regime's own results first, then the others, conjectures last
    results.sort(key=lambda r: (r.kind != "theorem", r.regime != regime))
    return regime, tuple(results), spd, phi1


def diagnose(
    operator: Any, *, layer: int | None = None, radius: float = 1.0, tol: float = DEFAULT_TOL,
) -> list[HeadDiagnostics]:
    """Per-head diagnostics of one layer (module docstring), one entry per query head.

    radius: the norm of the tokens for ``effective_beta`` (1: unit sphere; sqrt(d):
    LayerNorm outputs); tol: the relative tolerance of every hypothesis check.
    """
    if not (isinstance(radius, (int, float)) and radius > 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"tol must lie in (0, 1), got {tol!r}")
    heads = _check_projections(operator)
    B, V, group = head_matrices(operator)
    scales = _head_scales(operator, heads.n_heads)
    caveats = _caveats(operator, heads)
    mask = None if isinstance(operator.mask, Full) else operator.mask
    causal = mask is not None and bool(mask.causal)
    d = heads.d_in
    out = []
    for h in range(heads.n_heads):
        b = B[h]
        sym, anti = 0.5 * (b + b.T), 0.5 * (b - b.T)
        nb = float(np.linalg.norm(b))
        sym_f = float(np.linalg.norm(sym)) / nb if nb > 0 else math.nan
        anti_f = float(np.linalg.norm(anti)) / nb if nb > 0 else math.nan
        regime, results, spd, phi1 = _classify(
            b, V[h].T, tol=tol, normalization=operator.normalization, causal=causal,
            masked=mask is not None,
        )
        out.append(HeadDiagnostics(
            head=h, group=int(group[h]), layer=layer, scale=float(scales[h]),
            query_key=b, value=V[h],
            value_eigenvalues=_sort_eigenvalues(np.linalg.eigvals(V[h])),
            query_key_singular_values=np.linalg.svd(b, compute_uv=False),
            query_key_symmetric=sym, query_key_antisymmetric=anti,
            symmetric_fraction=sym_f, antisymmetric_fraction=anti_f,
            effective_beta=radius**2 * float(np.linalg.norm(sym)) / math.sqrt(d),
            beta_max=radius**2 * float(np.linalg.eigvalsh(sym)[-1]),
            radius=float(radius), tolerance=float(tol), query_key_spd=spd,
            leading_vector=phi1, regime=regime, results=results, caveats=caveats,
        ))
    return out


def diagnose_layers(
    operators: Sequence[Any], *, radius: float = 1.0, tol: float = DEFAULT_TOL,
) -> list[list[HeadDiagnostics]]:
    """``diagnose`` for every layer of a model (a sequence of operators, one per layer)."""
    return [diagnose(op, layer=i, radius=radius, tol=tol) for i, op in enumerate(operators)]


def layer_grid(diagnostics_by_layer: Sequence[Sequence[HeadDiagnostics]], quantity: str
               ) -> np.ndarray:
    """(layers, max heads) float array of a per-head quantity, NaN where a layer has fewer
    heads. ``quantity``: "leading_real" (Re of V's leading eigenvalue), "dominance_ratio",
    "antisymmetric_fraction", "effective_beta", "beta_max", or any float attribute."""
    layers = list(diagnostics_by_layer)
    width = max((len(row) for row in layers), default=0)
    out = np.full((len(layers), width), np.nan)
    for i, row in enumerate(layers):
        for j, diag in enumerate(row):
            if quantity == "leading_real":
                out[i, j] = diag.leading_eigenvalue.real
            else:
                out[i, j] = float(getattr(diag, quantity))
    return out
