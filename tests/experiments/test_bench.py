"""The benchmark machinery on tiny cases: every path agrees with the reference, a wrong
path is refused, results carry their documented fields, the memory probe sees an n x n
matrix where one is stored and none on the default path. No timing is asserted."""

import dataclasses
import json

import numpy as np
import pytest

from experiments.__main__ import build_parser, main
from experiments.bench.memory import measure_peak
from experiments.bench.registry import Case, Implementation, load_suite
from experiments.bench.report import render, write_json
from experiments.bench.runner import (
    RATIO_FIELDS,
    RESULT_FIELDS,
    CheckFailed,
    Settings,
    check_case,
    run_suite,
    tolerance,
)
from experiments.registry import COMMANDS, register_command

SUITE = load_suite("rhs-rk4")


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("d", [3, 16])
def test_every_path_matches_the_float64_reference(rng, dtype, d):
    case = Case(n=64, d=d, dtype=dtype, beta=float(rng.uniform(0.5, 4.0)))
    errors = check_case(SUITE, case, _seed(rng))
    assert set(errors) == {(i.name, op) for i in SUITE.implementations for op in SUITE.ops}
    assert max(errors.values()) <= tolerance(dtype)


def test_the_baselines_agree_with_the_reference_to_rounding(rng):
    # float64 paths must match the float64 reference far below the float32 tolerance
    errors = check_case(SUITE, Case(n=128, d=5, dtype="float64", beta=3.0), _seed(rng))
    assert max(errors.values()) < 1e-12


def _unprojected(case, x0):
    """A wrong path: the attention drive without the tangent projection."""
    x = x0.astype(case.dtype)

    def rhs():
        s = case.beta * x @ np.swapaxes(x, -1, -2)
        w = np.exp(s - s.max(axis=-1, keepdims=True))
        return (w @ x) / w.sum(axis=-1, keepdims=True)

    return {"rhs": rhs, "rk4": rhs}


def test_a_wrong_path_is_refused_before_timing(rng):
    wrong = Implementation("unprojected", "baseline", "drive without projection", _unprojected)
    suite = dataclasses.replace(SUITE, implementations=(*SUITE.implementations, wrong))
    with pytest.raises(CheckFailed, match="unprojected rhs"):
        check_case(suite, Case(n=64, d=3, dtype="float64", beta=2.0), _seed(rng))


def test_run_suite_reports_every_path_with_documented_fields(rng, tmp_path):
    cases = [Case(n=64, d=3, dtype=t) for t in ("float32", "float64")]
    settings = Settings(repeats=1, threads=1, memory=False, seed=_seed(rng), pause_s=0.0)
    report = run_suite(SUITE, cases, settings, log=lambda s: None)

    assert len(report.results) == len(cases) * len(SUITE.implementations) * len(SUITE.ops)
    for row in report.results:
        assert tuple(row) == RESULT_FIELDS
        assert row["skipped"] is None and row["repeats"] == 1 and row["median_ms"] > 0
        assert row["check_error"] <= row["tolerance"] and row["agreement"] <= row["tolerance"]
        assert row["limit_ms"] > 0
        assert row["fraction_of_limit"] == pytest.approx(row["limit_ms"] / row["median_ms"])
    medians = {(r["dtype"], r["op"], r["path"]): r["median_ms"] for r in report.results}
    for ratio in report.ratios:
        assert tuple(ratio) == RATIO_FIELDS
        spec = next(s for s in SUITE.ratios if s.label == ratio["label"])
        key = (ratio["dtype"], ratio["op"])
        expected = medians[(*key, spec.numerator)] / medians[(*key, spec.denominator)]
        assert ratio["value"] == pytest.approx(expected)

    text = render(report, SUITE)
    for impl in SUITE.implementations:
        assert impl.name in text
    path = tmp_path / "bench.json"
    write_json(report, path)
    assert json.loads(path.read_text())["results"] == report.results


def test_limit_model_scales_as_n_squared_and_rk4_is_four_rhs():
    case = Case(n=512, d=7, dtype="float64", batch=3)
    rhs, rates = SUITE.limit(case, "rhs")
    assert rates["gemm_gflops"] > 0 and rates["exp_per_s"] > 0
    assert SUITE.limit(case, "rk4")[0] == pytest.approx(4 * rhs)
    assert SUITE.limit(dataclasses.replace(case, n=1024), "rhs")[0] == pytest.approx(4 * rhs)
    assert SUITE.limit(dataclasses.replace(case, batch=1), "rhs")[0] == pytest.approx(rhs / 3)


def test_dense_path_is_skipped_above_max_dense_n(rng):
    settings = Settings(repeats=1, threads=1, memory=False, max_dense_n=32, seed=_seed(rng),
                        pause_s=0.0)
    report = run_suite(SUITE, [Case(n=64, d=3, dtype="float64")], settings, log=lambda s: None)
    skipped = {r["path"] for r in report.results if r["skipped"]}
    assert skipped == {"numpy-dense"}
    numpy_ratio = [r for r in report.ratios if r["label"] == "numpy/default"]
    assert numpy_ratio and all(r["value"] is None for r in numpy_ratio)


def test_memory_probe_sees_the_n_by_n_matrix_only_where_it_is_stored():
    case = Case(n=2048, d=3, dtype="float64")  # one n x n matrix: 32 MiB
    matrix_mib = case.dense_bytes / 2**20
    dense = measure_peak("rhs-rk4", "numpy-dense", "rhs", case, threads=1)
    default = measure_peak("rhs-rk4", "default-numpy", "rhs", case, threads=1)
    # the rest of the call is O(n d) = 0.05 MiB; a few pages may come from the free heap
    assert dense["peak_mib"] >= 0.9 * matrix_mib
    assert default["peak_mib"] < matrix_mib / 4


def test_command_line_writes_json(tmp_path):
    path = tmp_path / "out.json"
    status = main(["bench", "--n", "64", "--d", "3", "--dtype", "float64", "--repeats", "1",
                   "--threads", "1", "--pause", "0", "--no-memory", "--json", str(path)])
    assert status == 0
    data = json.loads(path.read_text())
    assert {"suite", "machine", "settings", "results", "ratios"} <= set(data)
    assert {r["path"] for r in data["results"]} == {i.name for i in SUITE.implementations}
    assert data["machine"]["torch_threads"] == 1


def test_registries_refuse_bad_names():
    assert "bench" in build_parser().format_help()
    with pytest.raises(ValueError, match="already registered"):
        register_command("bench", "x", "y")
    assert set(COMMANDS) >= {"bench"}
    with pytest.raises(ValueError, match="unknown benchmark suite"):
        load_suite("no-such-suite")
    with pytest.raises(ValueError, match="dtype"):
        Case(n=8, d=3, dtype="float16")
    with pytest.raises(ValueError, match="positive"):
        Case(n=0, d=3, dtype="float32")
