"""The variant-flows study on a small configuration."""

import numpy as np
import pytest

from attention.accounting import kv_elements
from attention.config import OperatorConfig
from attention.variant_flows import (
    DEFAULT_VARIANTS,
    VariantFlowsConfig,
    as_dataset,
    ensemble_operator,
    retained_fraction,
    variant_flows,
)

SMALL = VariantFlowsConfig(n=8, d=8, heads=2, members=2, horizon=1.0, dt=0.1, anchor_every=4,
                           block=2, dma_window=3, variants=("mha", "mqa", "ansan",
                                                            "prflash-window", "dma"))


def test_study_arrays_and_their_meaning():
    result = variant_flows(SMALL)
    V, M, T = 5, 2, 11
    assert result["cluster_count"].shape == (V, M, T) and result["distance"].shape == (V, M, T)
    assert result["clustering_time"].shape == (V, M)
    np.testing.assert_array_equal(result["times"], np.round(np.arange(11) * 0.1, 12))
    assert np.all(result["cluster_count"][:, :, 0] == 8)  # distinct random tokens
    assert np.all(result["distance"][:, :, 0] == 0)  # the same initial tokens
    assert np.all(result["distance"][0] == 0)  # MHA is the reference
    assert np.all(result["distance"][1:, :, -1] > 1e-4)
    for v in range(V):
        for m in range(M):
            t = result["clustering_time"][v, m]
            hit = np.nonzero(result["cluster_count"][v, m] == 1)[0]
            assert (np.isnan(t) and hit.size == 0) or t == result["times"][hit[0]]
    assert result["kv_elements"].tolist() == [16, 8, 16, 16, 16]
    np.testing.assert_allclose(result["kv_per_token"], [16, 8, 16 * 2 / 8, 16, 16 * 3 / 8])
    again = variant_flows(SMALL)
    np.testing.assert_array_equal(again["distance"], result["distance"])
    ds = as_dataset(result)
    assert dict(ds.sizes) == {"variant": V, "member": M, "time": T}
    assert ds.attrs["n"] == "8"


def test_ensemble_is_coupled_and_has_unit_expected_value_gain():
    cfg = VariantFlowsConfig(d=16, heads=4)
    mha = ensemble_operator("mha", cfg, 0)
    mqa = ensemble_operator("mqa", cfg, 0)
    np.testing.assert_array_equal(mqa.heads.W_Q, mha.heads.W_Q)
    np.testing.assert_array_equal(mqa.heads.W_K[0], mha.heads.W_K[0])
    for name in ("mha", "gqa", "mqa", "mfa", "mfa_kr"):
        gains = []
        for member in range(60):
            h = ensemble_operator(name, cfg, member).heads
            if name in ("mfa", "mfa_kr"):
                S = h.S_v if name == "mfa" else h.S_k
                U = sum(S @ O for O in h.O)
            else:
                r = 4 // h.n_groups
                U = sum(h.W_V[hh // r] @ h.W_O[hh] for hh in range(4))
            assert np.all(np.linalg.eigvalsh((U + U.T) / 2) > -1e-12)  # PSD circuits
            gains.append(np.trace(U) / 16)
        assert abs(np.mean(gains) - 1) < 4 * np.std(gains) / np.sqrt(60), name


def test_retained_fractions():
    cfg = VariantFlowsConfig()
    assert retained_fraction("ansan", cfg) == 4 / 32  # anchors at 7, 15, 23, 31
    assert retained_fraction("dma", cfg) == 8 / 32 and retained_fraction("mqa", cfg) == 1.0
    assert kv_elements(OperatorConfig("mha", d_model=16, heads=4)) == 32


def test_bad_study_configs():
    with pytest.raises(ValueError, match="unknown variants"):
        VariantFlowsConfig(variants=("mha", "nope"))
    with pytest.raises(ValueError, match="divisible"):
        VariantFlowsConfig(d=10, heads=4)
    assert set(DEFAULT_VARIANTS) >= set(SMALL.variants)


def test_v1_figure_writes_its_files_and_checks(tmp_path, monkeypatch):
    import paper_repro.variant_flows as v1
    from paper_repro.registry import FIGURES, FigureRequest

    tiny = VariantFlowsConfig(n=8, d=8, heads=2, members=2, horizon=1.0, anchor_every=4,
                              block=2, dma_window=3)
    monkeypatch.setattr(v1, "_config", lambda request: tiny)
    report = v1.figure_v1(FigureRequest(out=tmp_path))
    assert {p.name for p in report.files} == {"variant_flows.png", "variant_flows.pdf",
                                             "variant_flows.json"}
    assert all(p.stat().st_size > 0 for p in report.files)
    assert FIGURES["V1"][1] is v1.figure_v1
    assert report.checks[0].startswith("V1: median clustering time mha")
