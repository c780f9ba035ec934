"""Per-head diagnostics of an imported model: the matrices are the model's own products."""

from __future__ import annotations

import json

import numpy as np

from experiments.__main__ import main
from tests.models.tiny import HEADS, LAYERS, WIDTH, build


def test_diagnose_reads_each_heads_products_from_the_checkpoint(tmp_path):
    """For GPT-2, head h of layer l has B_h = W_Q^h W_K^hT / sqrt(e) and V_h = W_V^h W_O^h,
    with W_Q, W_K, W_V the column blocks of the fused c_attn and W_O the row block of c_proj;
    the command's numbers are those of the matrices built here by hand from the weights."""
    model = build("gpt2", seed=31)
    model.save_pretrained(tmp_path / "gpt2")
    assert main(["diagnose", "--model", str(tmp_path / "gpt2"), "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "diagnostics_gpt2.json").read_text())
    assert (tmp_path / "diagnostics_gpt2.png").stat().st_size > 10_000
    assert len(record["heads"]) == LAYERS and all(len(r) == HEADS for r in record["heads"])
    e = WIDTH // HEADS
    for layer, block in enumerate(model.h):
        w = block.attn.c_attn.weight.detach().numpy()
        o = block.attn.c_proj.weight.detach().numpy()
        for h in range(HEADS):
            cols = slice(h * e, (h + 1) * e)
            wq, wk, wv = (w[:, k * WIDTH:(k + 1) * WIDTH][:, cols] for k in range(3))
            B = wq @ wk.T / np.sqrt(e)
            V = wv @ o[cols]
            eig = np.linalg.eigvals(V)
            row = record["heads"][layer][h]
            assert np.isclose(row["leading_real"], eig.real.max(), atol=1e-10)
            anti = np.linalg.norm(B - B.T) / 2 / np.linalg.norm(B)
            assert np.isclose(row["antisymmetric_fraction"], anti, atol=1e-10)
    assert sum(record["regime_counts"].values()) == LAYERS * HEADS
