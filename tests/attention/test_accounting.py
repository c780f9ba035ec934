"""KV cache, TER/SLSD and parameter counts: the papers' numbers, and the formulas against the
tensors the operators really hold."""

import numpy as np
import pytest

from attention.accounting import kv_bytes, kv_elements, param_count, ter_slsd
from attention.config import VARIANTS, OperatorConfig, build, init_params

REFERENCE = dict(d_model=2048, heads=16, head_dim=128)  # attention.md §1


def test_mfa_kv_ratios_and_byte_counts_of_the_paper():
    mha = OperatorConfig("mha", **REFERENCE)
    mfa = OperatorConfig("mfa", latent_dim=256, **REFERENCE)
    mfa_kr = OperatorConfig("mfa_kr", latent_dim=256, **REFERENCE)
    assert kv_elements(mha) == 4096 and kv_elements(mfa) == 512 and kv_elements(mfa_kr) == 256
    assert kv_elements(mfa) / kv_elements(mha) == 1 / 8
    assert kv_elements(mfa_kr) / kv_elements(mha) == 1 / 16
    assert [kv_bytes(c, layers=24) for c in (mha, mfa, mfa_kr)] == [196_608, 24_576, 12_288]


def test_baseline_cache_sizes_of_the_reference_config():
    assert kv_elements(OperatorConfig("gqa", groups=4, **REFERENCE)) == 1024
    assert kv_elements(OperatorConfig("mqa", **REFERENCE)) == 256
    mla = OperatorConfig("mla", latent_dim=512, rope_dim=64, **REFERENCE)
    assert kv_elements(mla) == 576 == 2 * 2.25 * 128  # "GQA with only 2.25 groups"
    assert kv_bytes(mla) == 1152


def test_ter_slsd_table():
    d, n, d_h, C = 2048, 16, 128, 256
    assert ter_slsd(OperatorConfig("mha", **REFERENCE)) == (n * d_h, d)
    assert ter_slsd(OperatorConfig("mqa", **REFERENCE)) == (n * d_h, d_h)
    assert ter_slsd(OperatorConfig("gqa", groups=4, **REFERENCE)) == (n * d_h, 4 * d_h)
    assert ter_slsd(OperatorConfig("mla", latent_dim=512, **REFERENCE)) == (n * d_h, 512)
    assert ter_slsd(OperatorConfig("mfa", latent_dim=C, **REFERENCE)) == (n * C, C)
    assert ter_slsd(OperatorConfig("mfa_kr", latent_dim=C, **REFERENCE)) == (n * C, C)


def _small(variant: str) -> OperatorConfig:
    extra = {"gqa": dict(groups=2), "ansan": dict(anchors=(3, 8)), "prflash": dict(block=4),
             "dma": dict(window=4), "saq": dict(saq_group=4, saq_quant_group=2),
             "mla": dict(latent_dim=12, query_latent_dim=10, rope_dim=4),
             "mfa": dict(latent_dim=10, query_latent_dim=7),
             "mfa_kr": dict(latent_dim=10, query_latent_dim=7)}.get(variant, {})
    return OperatorConfig(variant, d_model=24, heads=4, **extra)


@pytest.mark.parametrize("variant", VARIANTS)
def test_formulas_match_the_tensors_held(rng, variant):
    cfg = _small(variant)
    op = build(cfg, rng)
    x = rng.standard_normal((2, 11, 24))
    assert op.cache(x).elements_per_token() == kv_elements(cfg)
    assert sum(a.size for a in init_params(cfg, 0).values()) == param_count(cfg)


def test_mfa_parameter_formula(rng):
    d, C, Cq, m = 24, 10, 7, 4
    cfg = OperatorConfig("mfa", d_model=d, heads=m, latent_dim=C, query_latent_dim=Cq)
    assert param_count(cfg) == d * (Cq + 2 * C) + m * Cq * C + m * C * d
    square = OperatorConfig("mfa", d_model=d, heads=m, latent_dim=C)
    assert param_count(square) == d * (3 * C + m * C) + m * C**2


def _rank(a: np.ndarray) -> int:
    return int(np.linalg.matrix_rank(a, tol=1e-9))


def test_ter_and_slsd_are_the_ranks_of_the_circuits(rng):
    """TER = sum over heads of rank(W_c), W_c the d x d QK bilinear form; SLSD = dimension of
    the span all heads' keys are read from."""
    for variant, extra in (("mha", {}), ("gqa", dict(groups=2)), ("mqa", {}),
                           ("mfa", dict(latent_dim=5, query_latent_dim=6)),
                           ("mla", dict(latent_dim=12, query_latent_dim=10, rope_dim=2))):
        cfg = OperatorConfig(variant, d_model=24, heads=4, **extra)
        p = init_params(cfg, rng)
        if variant == "mfa":
            W = [p["heads.S_q"] @ Qc @ p["heads.S_k"].T for Qc in p["heads.Q"]]
            span = p["heads.S_k"]
        elif variant == "mla":
            W = [p["heads.W_DQ"] @ p["heads.W_UQ"][h] @ p["heads.W_UK"][h].T @ p["heads.W_DKV"].T
                 for h in range(4)]
            span = p["heads.W_DKV"]
        else:
            r = 4 // cfg.kv_groups
            W = [p["heads.W_Q"][h] @ p["heads.W_K"][h // r].T for h in range(4)]
            span = np.concatenate(list(p["heads.W_K"]), axis=1)
        assert (sum(_rank(w) for w in W), _rank(span)) == ter_slsd(cfg), variant


@pytest.mark.parametrize("variant", ["mha", "gqa", "mqa", "mla", "mfa", "mfa_kr"])
def test_slsd_and_ter_are_ranks_of_the_tensors_an_operator_computes(rng, variant):
    """Over more tokens than dimensions: SLSD = rank of the cached latent every key is read
    from (keys of all groups; MLA's c), TER = sum over heads of the rank of the score
    matrix q^h k^hT the operator forms (MLA: its content part, without the RoPE part)."""
    cfg = _small(variant)
    op = build(cfg, rng)
    x = rng.standard_normal((1, 80, 24))
    cache = op.cache(x)
    latent = cache.tensors["c" if variant == "mla" else "k"][0]
    latent = latent if latent.ndim == 2 else np.concatenate(list(latent), axis=-1)
    ter, slsd = ter_slsd(cfg)
    assert _rank(latent) == slsd
    q = op.heads.queries(x, cache.positions)[0]
    k, _ = op.heads.keys_values(cache.tensors, cache.positions)
    if variant == "mla":
        d_h = op.heads.qk_dim
        q, k = q[..., :d_h], k[..., :d_h]
    groups = k.shape[1]
    ranks = [_rank(q[h] @ k[0, h // (q.shape[0] // groups)].T) for h in range(q.shape[0])]
    assert sum(ranks) == ter
