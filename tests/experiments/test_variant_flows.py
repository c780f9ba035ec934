"""The variant-flows ensemble (experiments.studies.variants) and study (experiments.studies.
variant_flows) on small configurations, checked against the mathematics: coupled weights,
identical operators give identical flows, PrFlash with p = 1 flows like causal attention,
stored numbers equal an independent recomputation, and the store resumes."""

import numpy as np
import pytest

from dynamics import clustering_time, simulate
from dynamics.fields.operator import OperatorField
from experiments.config import ConfigError, parse_config
from experiments.runner import run_study
from experiments.store import open_dataset
from experiments.studies.variants import Ensemble, parse_variant

NAMES = ["mha", "gqa", "mqa", "mfa", "mfa_kr", "ansan", "dma", "prflash:one",
         "prflash:geometric:0.5"]


def _config(**changes) -> object:
    data = {
        "study": "variant-flows",
        "seed": 5,
        "field": {"kind": "attention-variant", "heads": 2, "gqa_groups": 2, "anchor_every": 4,
                  "block": 2, "dma_window": 3, "period": 0.1},
        "grid": {"n": [8], "d": [8], "beta": [1.0, 2.0]},
        "seeds": {"count": 3, "chunk": 3},
        "integrator": {"method": "euler", "dt": 0.1},
        "variants": {"names": NAMES, "times": {"start": 0.0, "stop": 2.0, "num": 21}},
    }
    for key, value in changes.items():
        data[key] = value if key == "field" and "kind" in value else {**data[key], **value}
    return parse_config(data)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    cfg = _config()
    store = tmp_path_factory.mktemp("vf") / "vf.zarr"
    report = run_study(cfg, store, quiet=True, log=lambda s: None)
    assert report.computed == 1
    return cfg, store, open_dataset(store).load()


def test_identical_operators_flow_identically_and_p_one_is_causal(study):
    _, _, ds = study
    dist = ds["distance"].sel(n=8, d=8)
    assert np.all(dist.sel(variant="mha").values == 0)  # the reference against itself
    # gqa with as many groups as heads is MHA with the same weights: the same numbers
    assert np.all(dist.sel(variant="gqa").values == 0)
    # PrFlash with p = 1 keeps every causal block: causal attention (another code path)
    assert np.abs(dist.sel(variant="prflash:one").values).max() < 1e-12
    assert np.abs(dist.sel(variant="prflash:geometric:0.5").values[..., -1]).min() > 1e-4
    counts = ds["cluster_count"].values
    assert np.all(counts[..., 0] == 8)  # distinct random tokens at t = 0
    assert np.all(counts[..., -1] <= counts[..., 0]) and counts.min() >= 1


def test_stored_numbers_equal_an_independent_recomputation(study):
    """Member (seed 1, beta = 2) under MQA: the operator of its draw, flowed alone."""
    from experiments.chunks import _draw
    from experiments.fields import STREAM_INITIAL
    from experiments.studies.variant_flows import STREAM_OPERATORS, geodesic_distance

    cfg, _, ds = study
    seed, beta = 1, 2.0
    ensemble = cfg.field.params
    x0 = _draw(cfg, np.random.default_rng([cfg.seed, STREAM_INITIAL, seed, 8, 8]), 8, 8)[None]
    times = np.asarray(cfg.params.times)
    paths = {}
    for name in ("mha", "mqa"):
        op = ensemble.operator(name, 8, 8, beta, (cfg.seed, STREAM_OPERATORS, seed))
        paths[name] = simulate(OperatorField(op, period=0.1), x0, times, method="euler",
                               dt=0.1).values
    stored = ds.sel(seed=seed, n=8, d=8, beta=beta, variant="mqa")
    np.testing.assert_allclose(stored["distance"].values,
                               geodesic_distance(paths["mqa"], paths["mha"])[0], atol=1e-13)
    expected = clustering_time(times, paths["mqa"], cfg.params.delta)[0]
    np.testing.assert_equal(stored["clustering_time"].values, expected)


def test_summary_accounts_the_cache_and_the_paired_comparison(study):
    from experiments.registry import STUDY_KINDS

    cfg, _, ds = study
    s = STUDY_KINDS["variant-flows"].summarize(ds, cfg).sel(n=8, d=8)
    kv = dict(zip(NAMES, s["kv_elements"].values.tolist(), strict=True))
    # 2 H d_h = 16 for MHA (d = 8, 2 heads), 2 d_h for MQA, 2C and C for MFA / MFA-KR (C = 2 d_h)
    assert kv == {"mha": 16, "gqa": 16, "mqa": 8, "mfa": 16, "mfa_kr": 8, "ansan": 16,
                  "dma": 16, "prflash:one": 16, "prflash:geometric:0.5": 16}
    per_token = dict(zip(NAMES, s["kv_per_token"].values.tolist(), strict=True))
    assert per_token["ansan"] == 16 * 2 / 8  # anchors 3 and 7 retained, nothing open
    assert per_token["dma"] == 16 * 3 / 8  # the top-3 keys
    faster = s["faster_than_reference"]
    assert np.all(faster.sel(variant=["mha", "gqa", "prflash:one"]).values == 0)
    ct = ds["clustering_time"].sel(n=8, d=8).values
    ref = np.where(np.isnan(ct[..., 0]), np.inf, ct[..., 0])
    mqa = np.where(np.isnan(ct[..., 2]), np.inf, ct[..., 2])
    np.testing.assert_allclose(faster.sel(variant="mqa").values, (mqa < ref).mean(axis=0))


def test_the_store_resumes_and_plots(study, tmp_path):
    import zarr

    from experiments.plotting import plot_store

    cfg, store, ds = study
    again = run_study(cfg, store, quiet=True, log=lambda s: None)
    assert again.computed == 0
    group = zarr.open_group(str(store), mode="r+", zarr_format=3)
    group["chunk_done"][0] = False  # as if the run had been killed before marking it
    group.attrs["complete"] = 0
    resumed = run_study(cfg, store, quiet=True, log=lambda s: None)
    assert resumed.computed == 1
    after = open_dataset(store).load()
    for name in ("clustering_time", "cluster_count", "distance"):
        np.testing.assert_array_equal(after[name].values, ds[name].values)
    paths = plot_store(store, tmp_path / "figures")
    assert [p.name for p in paths] == ["variant_flows.png", "variant_flows.pdf",
                                       "variant_flows_n8_d8_beta2.png",
                                       "variant_flows_n8_d8_beta2.pdf"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_bad_study_configs():
    with pytest.raises(ConfigError, match="include the reference"):
        _config(variants={"names": ["mqa"], "times": [0.0, 1.0]})
    with pytest.raises(ConfigError, match="unknown variant"):
        _config(variants={"names": ["mha", "linear"], "times": [0.0, 1.0]})
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        _config(variants={"names": ["mha", "prflash:geometric:1.5"], "times": [0.0, 1.0]})
    with pytest.raises(ConfigError, match=r"multiple of integrator\.dt"):
        _config(field={"period": 0.15})
    with pytest.raises(ConfigError, match="not divisible"):
        _config(grid={"n": [8], "d": [9], "beta": [1.0]})
    with pytest.raises(ConfigError, match="divisible by gqa_groups"):
        _config(field={"heads": 2, "gqa_groups": 3})
    with pytest.raises(ConfigError, match="attention-variant"):
        _config(field={"kind": "sa", "causal": True})


# -- the ensemble --------------------------------------------------------------------------


def test_variant_specs():
    assert parse_variant("prflash:window:2").p_param == 2
    assert parse_variant("prflash:given:1,0.5").p_param == (1.0, 0.5)
    assert parse_variant("prflash:one").p == "one" and parse_variant("mfa_kr").base == "mfa_kr"
    for bad in ("prflash", "prflash:uniform:1", "prflash:geometric", "mha:2",
                "prflash:window:x", "prflash:harmonic:-1"):
        with pytest.raises(ValueError):
            parse_variant(bad)


def test_ensemble_is_coupled_and_has_unit_expected_value_gain():
    ens = Ensemble(heads=4)
    mha = ens.operator("mha", 16, 16, 1.0, (0, 0))
    mqa = ens.operator("mqa", 16, 16, 1.0, (0, 0))
    np.testing.assert_array_equal(mqa.heads.W_Q, mha.heads.W_Q)
    np.testing.assert_array_equal(mqa.heads.W_K[0], mha.heads.W_K[0])
    dma = ens.operator("dma", 16, 16, 1.0, (0, 0))
    np.testing.assert_array_equal(dma.heads.W_V, mha.heads.W_V)
    assert mha.effective_scale == 1 / 2 and ens.operator("mfa", 16, 16, 3.0, (0, 0)) \
        .effective_scale == 3 / np.sqrt(8)
    for name in ("mha", "gqa", "mqa", "mfa", "mfa_kr"):
        gains = []
        for member in range(60):
            h = ens.operator(name, 16, 16, 1.0, (1, member)).heads
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
    ens = Ensemble(anchor_every=8, dma_window=8)
    assert ens.retained_fraction("ansan", 32, 16) == 4 / 32  # anchors at 7, 15, 23, 31
    assert ens.retained_fraction("ansan", 30, 16) == (3 + 6) / 30  # 3 anchors, 6 open
    assert ens.retained_fraction("dma", 32, 16) == 8 / 32
    assert ens.retained_fraction("prflash:window:2", 32, 16) == 1.0
    assert ens.kv_elements("mfa_kr", 32, 16) == 2 * 16 // 4


def test_legends_name_variants_in_words():
    from experiments.studies.variant_flows import variant_label

    assert variant_label("mfa_kr") == "MFA-KR"
    assert variant_label("prflash:geometric:0.5") == "PrFlash, p = 0.5^distance"
    assert variant_label("prflash:window:2") == "PrFlash, window of 2 blocks"
    assert variant_label("something-new") == "something-new"
