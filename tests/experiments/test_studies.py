"""Small studies end to end, checked against the mathematics: equiangular crossing times
(Thm 6.8) for orthogonal starts, clustering for d = 3 (Thm 6.1), the phase boundary
Gamma_infinity, one cluster on the circle at small beta, and chunk-independent seeds."""

import math

import numpy as np
import pytest

from dynamics import theory
from experiments.chunks import Layout, members_of
from experiments.config import parse_config
from experiments.runner import compute_chunk, run_study
from experiments.store import open_dataset


def config(study: str, section: dict, **sections) -> object:
    data = {
        "study": study,
        "seed": 11,
        "field": {"kind": "sa"},
        "grid": {"n": [4], "d": [8], "beta": [0.5, 2.0, 5.0]},
        "seeds": {"count": 3, "chunk": 3},
        "integrator": {"method": "rk4", "dt": 0.05},
        {"clustering-time": "clustering", "phase-diagram": "phase",
         "cluster-count": "count"}[study]: section,
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return parse_config(data)


def run(cfg, tmp_path, name="study.zarr"):
    run_study(cfg, tmp_path / name, quiet=True, log=lambda s: None)
    return open_dataset(tmp_path / name).load()


def test_orthogonal_starts_cluster_at_the_equiangular_crossing_time(tmp_path):
    # Thm 6.8: from orthonormal tokens every pair follows gamma_beta(t), so all pairs reach
    # 1 - delta together at t*(beta), for SA and USA alike.
    cfg = config("clustering-time", {"horizon": 40.0, "fractions": [0.5]},
                 grid={"n": [4, 6], "d": [8]}, initial={"kind": "orthogonal"})
    ds = run(cfg, tmp_path)
    for i, n in enumerate(cfg.grid.n):
        tstar = theory.crossing_time(np.asarray(cfg.grid.beta), n, 1e-3)
        times = ds["clustering_time"].values[:, i, 0, :]
        # rk4 with h = 0.05; the event is located by a quadratic through the last gaps
        np.testing.assert_allclose(times, np.broadcast_to(tstar, times.shape), atol=5e-5)
        np.testing.assert_allclose(ds["median_time"].values[i, 0], tstar, atol=5e-5)
        np.testing.assert_allclose(ds["theory_time"].values[i, 0], tstar, rtol=1e-12)
        # all pairs are equal, so half of them cross with the rest: at the first record >= t*
        grid_times = cfg.params.record_times
        first = grid_times[np.searchsorted(grid_times, tstar - 1e-9)]
        np.testing.assert_allclose(ds["fraction_time"].values[:, i, 0, :, 0],
                                   np.broadcast_to(first, times.shape[:1] + first.shape))
    assert np.all(ds["censored_fraction"].values == 0)
    # the fitted exponents of the data are those of the theory's t*(n, beta)
    np.testing.assert_allclose(ds["fit_n_slope"].values, ds["theory_fit_n_slope"].values,
                               atol=1e-4)
    np.testing.assert_allclose(ds["fit_beta_slope"].values, ds["theory_fit_beta_slope"].values,
                               atol=1e-4)
    assert np.all(ds["fit_beta_slope"].values > 0)  # SA: t*(beta) increases with beta


def test_usa_orthogonal_starts_converge_to_equation_6_10(tmp_path):
    # USA moves e^beta times faster; the error of the crossing time falls at least 16x
    # over two halvings of h (order >= 2; rk4 with the quadratic event is about 3)
    tstar = theory.crossing_time(np.array([0.5, 1.5]), 4, 1e-3, normalization="usa")
    errors = []
    for k, dt in enumerate((0.05, 0.025, 0.0125)):
        cfg = config("clustering-time", {"horizon": 20.0}, field={"kind": "usa"},
                     grid={"beta": [0.5, 1.5]}, initial={"kind": "orthogonal"},
                     integrator={"dt": dt})
        ds = run(cfg, tmp_path, f"usa{k}.zarr")
        errors.append(np.max(np.abs(ds["clustering_time"].values[:, 0, 0] - tstar)))
    assert errors[0] < 1e-4 and errors[2] < errors[0] / 16
    assert ds["fit_beta_slope"].values[0, 0] < 0  # USA: larger beta clusters sooner


def test_d3_runs_all_cluster_at_small_beta(tmp_path):
    # Thm 6.1 (d >= 3): almost every start converges to one point; at beta <= 2 the horizon
    # 200 is long enough that no run is censored (paper section 11, item 11).
    cfg = config("clustering-time", {"horizon": 200.0, "delta": 1e-6},
                 grid={"n": [16], "d": [3], "beta": [0.5, 1.0, 2.0]},
                 seeds={"count": 12, "chunk": 12}, integrator={"dt": 0.1})
    ds = run(cfg, tmp_path)
    times = ds["clustering_time"].values
    assert np.all(np.isfinite(times)) and np.all(ds["censored_fraction"].values == 0)
    # no censoring: the Kaplan-Meier median is the lower sample median (6th of 12)
    np.testing.assert_array_equal(ds["median_time"].values[0, 0],
                                  np.sort(times[:, 0, 0], axis=0)[5])
    assert np.all(ds["median_low"].values <= ds["median_time"].values)
    assert np.all(ds["median_time"].values <= ds["median_high"].values)
    assert np.all(np.isnan(ds["theory_time"].values))  # d < n: no exact prediction


def test_censoring_at_a_short_horizon(tmp_path):
    cfg = config("clustering-time", {"horizon": 7.0}, grid={"n": [16], "d": [3],
                 "beta": [1.0]}, seeds={"count": 16, "chunk": 16}, integrator={"dt": 0.1})
    ds = run(cfg, tmp_path)
    times = ds["clustering_time"].values[:, 0, 0, 0]
    censored = np.isnan(times)
    assert 0 < censored.sum() < 16
    assert np.all(times[~censored] <= 7.0)
    assert ds["censored_fraction"].values.item() == censored.mean()
    expected = np.sort(times[~censored])[7] if censored.sum() <= 8 else math.nan
    np.testing.assert_equal(ds["median_time"].values.item(), expected)


def test_phase_diagram_of_orthogonal_starts_is_the_gamma_infinity_step(tmp_path):
    # equiangular pairs all cross together: P(t, beta) = 1{t >= t*(beta)}, and the stored
    # boundary is Gamma_infinity of (6.12)
    cfg = config("phase-diagram", {"times": {"start": 0.0, "stop": 12.0, "num": 49}},
                 initial={"kind": "orthogonal"})
    ds = run(cfg, tmp_path)
    prob = ds["probability"].values[0, 0]
    t = np.asarray(cfg.params.times)
    tstar = theory.crossing_time(np.asarray(cfg.grid.beta), 4, 1e-3)
    expected = (t[None, :] >= tstar[:, None]).astype(float)
    far = np.abs(t[None, :] - tstar[:, None]) > 1e-3
    np.testing.assert_array_equal(prob[far], expected[far])
    np.testing.assert_allclose(ds["boundary_beta"].values[0],
                               theory.phase_boundary_betas(t, 4, 1e-3), equal_nan=True)
    np.testing.assert_allclose(ds["boundary_time"].values[0], tstar)
    counts = ds["clustered_pairs"].values
    assert counts.dtype == np.int32 and set(np.unique(counts)) == {0, 6}  # 0 or all 6 pairs


def test_phase_diagram_d2_matches_the_circle_field_statistics(tmp_path):
    # at beta = 0.5 and d = 2 all runs end in one cluster (Thm 4.3 for d = 2, beta <= 1);
    # early on few pairs are clustered; the circle field in angles agrees on both
    times = {"start": 0.0, "stop": 40.0, "num": 5}
    common = {"grid": {"n": [16], "d": [2], "beta": [0.5]}, "seeds": {"count": 8, "chunk": 8},
              "integrator": {"dt": 0.1}}
    sphere = run(config("phase-diagram", {"times": times}, **common), tmp_path, "a.zarr")
    circle = run(config("phase-diagram", {"times": times}, field={"kind": "circle-sa"},
                        initial={"kind": "uniform-angles"}, **common), tmp_path, "b.zarr")
    for ds in (sphere, circle):
        prob = ds["probability"].values[0, 0, 0]
        assert prob[0] < 0.1 and prob[-1] == 1.0
        assert np.all(np.isnan(ds["boundary_beta"].values)) or ds is sphere


def test_cluster_count_one_cluster_at_small_beta_and_dominant_modes(tmp_path):
    cfg = config("cluster-count", {"times": [5.0, 40.0]},
                 grid={"n": [16], "d": [2], "beta": [0.5, 9.0]},
                 seeds={"count": 8, "chunk": 8}, integrator={"method": "authors", "dt": 0.1})
    ds = run(cfg, tmp_path)
    counts = ds["clusters"].values[:, 0, 0]  # (seed, beta, time)
    assert np.all(counts[:, 0, 1] == 1)  # beta = 0.5, t = 40: one cluster
    assert np.all(counts[:, 1, 0] >= 2)  # beta = 9, t = 5: still several clusters
    assert np.all((counts >= 1) & (counts <= 16))
    np.testing.assert_array_equal(ds["dominant_mode"].values,
                                  [theory.dominant_mode(0.5), theory.dominant_mode(9.0)])
    freq = ds["count_frequency"].values
    np.testing.assert_allclose(freq.sum(axis=-1), 1.0)
    np.testing.assert_allclose(ds["count_mean"].values,
                               (freq * np.arange(1, 17)).sum(axis=-1), rtol=1e-12)


def test_a_seed_gives_the_same_numbers_in_any_chunk():
    # random weights drawn fresh per member: the member's field and start depend on
    # (config seed, seed, beta), not on how the seeds are cut into chunks
    section = {"times": {"start": 0.0, "stop": 6.0, "num": 7}}
    kw = {"field": {"kind": "random", "panel": "c", "draw": "member"},
          "grid": {"n": [6], "d": [5], "beta": [1.0, 3.0]}, "integrator": {"dt": 0.1}}
    whole = config("phase-diagram", section, seeds={"count": 4, "chunk": 4}, **kw)
    pieces = config("phase-diagram", section, seeds={"count": 4, "chunk": 1}, **kw)
    _, a = compute_chunk(whole, 0)
    b = [compute_chunk(pieces, i)[1]["clustered_pairs"] for i in range(Layout.of(pieces).count)]
    b = np.concatenate([np.concatenate(b[k:k + 1], axis=3) for k in range(4)], axis=0)
    np.testing.assert_array_equal(a["clustered_pairs"], b)
    assert len(np.unique(a["clustered_pairs"][:, 0, 0, :, -1])) > 1  # the seeds differ


def test_random_weights_per_run_are_shared_by_all_members():
    cfg = config("phase-diagram", {"times": [0.0, 1.0]},
                 field={"kind": "random", "panel": "b", "draw": "run"},
                 seeds={"count": 2, "chunk": 2})
    from experiments.fields import build_field

    field = build_field(cfg, members_of(cfg, Layout.of(cfg).chunk(0)))
    qk = np.asarray(field.QK)
    assert qk.shape == (6, 8, 8) and np.all(qk == qk[0]) and not np.allclose(qk[0], np.eye(8))


def test_layout_chunks_partition_the_grid(rng):
    n_seeds, n_beta = int(rng.integers(1, 30)), int(rng.integers(1, 9))
    cfg = config("clustering-time", {"horizon": 1.0},
                 grid={"n": [4, 5], "d": [8], "beta": list(np.linspace(0.1, 1, n_beta)),
                       "beta_chunk": int(rng.integers(1, n_beta + 1))},
                 seeds={"count": n_seeds, "chunk": int(rng.integers(1, n_seeds + 1))})
    layout = Layout.of(cfg)
    cover = np.zeros((n_seeds, 2, 1, n_beta), dtype=int)
    for index in range(layout.count):
        cover[layout.chunk(index).region()] += 1
    assert np.all(cover == 1)
    with pytest.raises(IndexError):
        layout.chunk(layout.count)


def test_compaction_drops_clustered_members_without_changing_the_results(tmp_path):
    # segments of 2.5 time units; members that clustered leave the batch. A segment restarts
    # one step early, so the event sees the same gaps as in one call: times agree to
    # rounding, censoring, step counts and recorded fraction times exactly.
    common = {"grid": {"n": [12], "d": [3], "beta": [1.0, 2.0]},
              "seeds": {"count": 10, "chunk": 10}, "integrator": {"dt": 0.1}}
    section = {"horizon": 40.0, "fractions": [0.5, 0.9], "record_dt": 0.5}
    one = run(config("clustering-time", section, **common), tmp_path, "one.zarr")
    cut = run(config("clustering-time", {**section, "compact_every": 2.5}, **common),
              tmp_path, "cut.zarr")
    a, b = one["clustering_time"].values, cut["clustering_time"].values
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(one["steps"].values, cut["steps"].values)
    np.testing.assert_array_equal(one["fraction_time"].values, cut["fraction_time"].values)
    assert np.isfinite(a).mean() > 0.5 and np.nanmax(a) > 2.5  # several segments were used


def test_compaction_must_fit_the_grids():
    for value, message in ((0.25, "multiple of integrator.dt"), (5.0, "divide the horizon"),
                           (-1.0, "must be >= 0")):
        with pytest.raises(ValueError, match=message):
            config("clustering-time", {"horizon": 12.0, "compact_every": value},
                   integrator={"dt": 0.2})
