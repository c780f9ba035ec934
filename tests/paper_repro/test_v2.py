"""V2: the committed trained layers as flows, beside the random ensemble (tiny size)."""

import json

import numpy as np

from paper_repro import FigureRequest, make


def test_v2_flows_every_trained_variant_beside_the_random_ensemble(tmp_path):
    report = make("V2", FigureRequest(out=tmp_path, tiny=True))
    assert len(report.checks) == 3 and all(c.passed for c in report.checks)
    data = json.loads((tmp_path / "trained_flows.json").read_text())
    trained = ["mha", "gqa", "mqa", "mla", "mfa", "mfa_kr", "ansan", "prflash", "dma", "ssd",
               "dma_cdmoe"]
    for row in ("layer0", "layer1"):
        answer = data["answers"][row]
        assert list(answer["median_clustering_time"]) == trained
        # the cache a decoder keeps per token: 2 G d_h for MHA/GQA/MQA (d_h = 16)
        kv = answer["kv_per_token"]
        assert (kv["mha"], kv["gqa"], kv["mqa"]) == (128, 64, 32)
        assert kv["ssd"] == 4 * 16 * 16 / 12  # one state of H N p for the n = 12 tokens
        assert answer["faster_than_reference"]["mha"] == 0.0  # never before itself
    assert {"mla", "ssd", "dma_cdmoe"}.isdisjoint(
        data["answers"]["random"]["median_clustering_time"])
    assert np.isfinite(data["answers"]["layer0"]["final_distance"]["gqa"])
