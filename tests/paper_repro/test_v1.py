"""V1: the variant-flows figure runs the study and its numbers obey the mathematics."""

import numpy as np


def test_v1_runs_the_study_and_its_claims_hold(make):
    report, data = make("V1", "variant_flows")
    assert sorted(p.name for p in report.files) == ["variant_flows.json", "variant_flows.pdf",
                                                   "variant_flows.png"]
    params = data["parameters"]
    assert params["study"] == "variant-flows" and params["grid"]["n"] == [12]
    names = data["variants"]
    assert names[0] == "mha" and len(names) == 10
    # the cache: 2 H d_h = 16 scalars for MHA at d = 8 with 2 heads; MQA and MFA-KR 8; AnSAN
    # keeps its 3 anchors of 12 tokens, DMA its top-4 keys
    kv = dict(zip(names, data["kv_per_token"], strict=True))
    assert kv["mha"] == kv["mfa"] == kv["prflash:window:2"] == 16
    assert kv["mqa"] == kv["mfa_kr"] == 8 and kv["ansan"] == 4
    np.testing.assert_allclose(kv["dma"], 16 * 4 / 12)
    # with 2 heads and 2 groups, GQA is MHA with the same weights: the same flow
    assert data["final_distance"]["gqa"] == 0 and data["final_distance"]["mha"] == 0
    assert data["faster_than_reference"]["mha"] == 0 == data["faster_than_reference"]["gqa"]
    # masks keeping the diagonal move token 0 as MHA does: once both flows are clustered
    # they sit at the same point, within 2 arccos(1 - delta)
    ct = np.array(data["clustering_time"], dtype=float)
    end = np.array(data["final_distance_per_draw"])
    bound = 2 * np.arccos(1 - params["variants"]["delta"])
    checked = 0
    for v, name in enumerate(names):
        if name.split(":")[0] in ("ansan", "dma", "prflash"):
            both = np.isfinite(ct[:, v]) & np.isfinite(ct[:, 0])
            assert np.all(end[both, v] <= bound)
            checked += both.sum()
    assert checked >= 3
    (check,) = report.checks
    assert check.passed and check.value <= check.bound == bound
    # compressed-KV flows have other weights, so they end elsewhere on the sphere
    assert min(data["final_distance"][n] for n in ("mqa", "mfa", "mfa_kr")) > 0.1
