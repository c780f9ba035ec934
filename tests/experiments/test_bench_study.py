"""The study benchmark (``bench --suite study``) on a tiny case: diffrax (vmap + jit) and a
scipy ``solve_ivp`` loop, written independently of the package, reproduce the clustering
times the study stored; the ratios are those of the reported rates (no timing asserted)."""

import json

import numpy as np

from experiments.__main__ import main


def test_bench_study_baselines_reproduce_the_study(tmp_path):
    out = tmp_path / "bench.json"
    status = main(["bench", "--suite", "study", "--seeds", "6", "--chunk", "6",
                   "--loop-seeds", "3", "--n", "8", "--beta", "1.5", "--horizon", "30",
                   "--compact-every", "3", "--json", str(out)])
    assert status == 0
    result = json.loads(out.read_text())
    assert result["study_chunks"] == 1
    assert result["diffrax-vmap"]["seeds"] == 6 and result["scipy"]["seeds"] == 3
    for name in ("diffrax-vmap", "scipy"):
        other = result[name]
        # Dopri5 at rtol 1e-6 in three codes: times agree to the tolerance's order
        assert 0 <= other["max_abs_time_difference"] < 1e-3
        assert np.isclose(other["ratio"], result["study_seeds_per_s"] / other["seeds_per_s"])
    assert 0 < result["median_time"] < 30
