"""The synchronisation study (experiments layer): the circle thresholds of 2507.22857 on both
sides, Thm 6.1 on S^2, exact binomial intervals, a stored and resumable run, the CLI, the map."""

import argparse

import numpy as np
import pytest
from scipy.stats import binomtest

from dynamics import CircleUSA, simulate
from dynamics.meanfield import synchronisation_outcome, three_cluster_eigenvalue
from experiments.chunks import Layout, initial_states, members_of
from experiments.cli import add_arguments
from experiments.cli import run as cli_run
from experiments.config import ConfigError, parse_config
from experiments.plotting import plot_store
from experiments.runner import run_study
from experiments.store import open_dataset
from experiments.studies.synchronisation import clopper_pearson, outcome_masks

BETAS = [-3.0, -0.16, 0.0, 1.0]


def config(**sections):
    data = {
        "study": "synchronisation",
        "seed": 3,
        "field": {"kind": "circle-usa"},
        "grid": {"n": [9], "d": [2], "beta": BETAS},
        "seeds": {"count": 16, "chunk": 16},
        "initial": {"kind": "uniform-angles"},
        "integrator": {"method": "dopri5", "rtol": 1e-8, "atol": 1e-10},
        "sync": {"horizon": 60.0},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return parse_config(data)


def test_circle_thresholds_on_both_sides_stored_and_resumable(tmp_path):
    cfg = config()
    store = tmp_path / "sync.zarr"
    first = run_study(cfg, store, quiet=True, log=lambda s: None)
    assert (first.computed, first.reused) == (1, 0)
    ds = open_dataset(store).load()
    sync = ds["synchronising_fraction"].values[0, 0]
    beta = np.asarray(BETAS)
    assert np.all(sync[beta >= -0.16] == 1.0)  # every start synchronises for beta >= -0.16
    assert sync[0] < 1.0  # beta = -3 < -2/3: some starts end elsewhere ...
    stopped = ds["stopped_fraction"].values[0, 0]
    np.testing.assert_allclose(stopped[0], 1 - sync[0])  # ... at rest, not still moving
    assert np.all(ds["undecided_fraction"].values == 0)
    np.testing.assert_allclose(sync, ds["synchronised_fraction"].values[0, 0]
                               + ds["converging_fraction"].values[0, 0])
    total = sum(ds[f"{k}_fraction"] for k in ("synchronised", "converging", "stopped",
                                               "undecided"))
    np.testing.assert_allclose(total.values, 1.0)
    np.testing.assert_allclose(ds["three_cluster_eigenvalue"].values,
                               three_cluster_eigenvalue(beta), rtol=1e-15)
    np.testing.assert_array_equal(ds["proven_failing"].values, beta < -2 / 3)
    # the stored numbers are those of an independent run of one chunk's members
    members = members_of(cfg, Layout.of(cfg).chunk(0))
    field = CircleUSA(members.betas)
    final = simulate(field, initial_states(cfg, members), [0.0, 60.0], method="dopri5",
                     rtol=1e-8, atol=1e-10).final
    direct = synchronisation_outcome(field, final)
    stored = ds["order"].values[:, 0, 0].reshape(-1)
    np.testing.assert_allclose(stored, direct["order"], rtol=1e-6)
    # resuming a finished store recomputes nothing
    again = run_study(cfg, store, quiet=True, log=lambda s: None)
    assert (again.computed, again.reused) == (0, 1)


def test_sphere_fields_synchronise_for_positive_beta(tmp_path):
    """Thm 6.1: on S^2 a.e. start synchronises for every beta >= 0 (SA and USA)."""
    cfg = config(field={"kind": "sa"}, grid={"n": [6], "d": [3], "beta": [0.5, 2.0]},
                 initial={"kind": "uniform"}, seeds={"count": 8, "chunk": 8},
                 sync={"horizon": 80.0})
    run_study(cfg, tmp_path / "s2.zarr", quiet=True, log=lambda s: None)
    ds = open_dataset(tmp_path / "s2.zarr").load()
    np.testing.assert_array_equal(ds["synchronising_fraction"].values, 1.0)
    np.testing.assert_allclose(ds["order"].values, 1.0, atol=1e-9)


def test_command_line_and_map(tmp_path):
    path = tmp_path / "sync.toml"
    path.write_text(config().to_toml().replace("count = 16", "count = 4"))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--config", str(path), "--out", str(tmp_path / "cli.zarr"),
                              "--quiet"])
    args.study = "synchronisation"
    assert cli_run(args) == 0
    written = plot_store(tmp_path / "cli.zarr", tmp_path / "figures")
    assert sorted(p.name for p in written) == ["synchronisation_map.pdf",
                                               "synchronisation_map.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_clopper_pearson_matches_scipy(rng):
    trials = int(rng.integers(5, 60))
    k = np.array([0, 1, trials // 2, trials - 1, trials])
    low, high = clopper_pearson(k, trials)
    for j, successes in enumerate(k):
        ci = binomtest(int(successes), trials).proportion_ci(0.95, method="exact")
        assert low[j] == pytest.approx(ci.low, abs=1e-12)
        assert high[j] == pytest.approx(ci.high, abs=1e-12)


def test_outcomes_are_disjoint_and_certified(rng):
    cfg = config()
    diameter = np.concatenate([[1e-4, 1.0, 2.0, 2.0], rng.uniform(0, np.pi, 40)])
    speed = np.concatenate([[1.0, 1.0, 1e-9, 1.0], 10.0 ** rng.uniform(-9, 0, 40)])
    masks = outcome_masks(diameter, speed, cfg.params)
    stacked = np.stack(list(masks.values()))
    np.testing.assert_array_equal(stacked.sum(axis=0), 1)
    np.testing.assert_array_equal(stacked[:, :4], np.eye(4, dtype=bool))
    np.testing.assert_array_equal(masks["converging"] | masks["synchronised"],
                                  diameter < np.pi / 2)


@pytest.mark.parametrize(("sections", "key"), [
    ({"field": {"kind": "random"}, "initial": {"kind": "uniform"}}, "field.kind"),
    ({"sync": {"horizon": 10.0, "tolerance": 2.0}}, "sync.tolerance"),
    ({"sync": {"horizon": -1.0}}, "sync.horizon"),
    ({"grid": {"n": [1]}}, "grid.n"),
])
def test_bad_configs_name_the_key(sections, key):
    with pytest.raises(ConfigError, match=key):
        config(**sections)
