"""F3: the phase diagrams' statistic, their high-d boundary against Gamma_inf,delta, and the
bias of the authors' scheme."""

import math

import numpy as np
import pytest

from dynamics import theory
from paper_repro.f3_phase_diagrams import DIMS, HIGH_D, authors_boundary
from paper_repro.f8_equiangular import authors_map
from paper_repro.phase_studies import (
    DELTA,
    N,
    PhaseGrid,
    beta_grid,
    half_boundary,
    phase_config,
    run_phase,
)
from paper_repro.registry import FigureRequest


def test_f3_statistic_and_curves(make):
    report, data = make("F3", "F3_phase_diagrams")
    times = np.array(data["parameters"]["times"])
    seeds = data["parameters"]["seeds"]
    for scheme in ("faithful", "exact"):
        prob = {d: np.array(data["probability"][scheme][f"d={d}"]) for d in DIMS}
        # t = 0: every beta starts from the same tokens; on S^1 a pair is within
        # arccos(1 - delta) of each other with probability 2 arccos(1 - delta) / (2 pi)
        start = prob[2][:, 0]
        assert np.all(start == start[0])
        p0 = 2 * math.acos(1 - DELTA) / (2 * math.pi)
        pairs = seeds * N * (N - 1) / 2
        assert abs(start[0] - p0) < 4 * math.sqrt(p0 * (1 - p0) / pairs)
        # in high dimension no pair starts clustered, and small beta clusters by t = 30
        assert np.all(prob[1024][:, 0] == 0)
        assert np.all(prob[1024][0, -1] == 1)
        # the metastable band: light colours at large beta only in low dimension
        assert data["metastable_share"]["d=2"] > 0.8 > 0.2 > data["metastable_share"]["d=1024"]
    # Gamma_inf,delta is (6.9) for n = 32 (not the n = 128 of curve.ipynb)
    curve = np.array(data["gamma_inf"]["(6.9), n = 32"], dtype=float)
    k = int(np.searchsorted(times, 20.0))
    np.testing.assert_allclose(theory.crossing_time(curve[k], N, DELTA), 20.0, rtol=1e-6)
    assert math.isnan(curve[0])  # at t = 0 nothing has clustered yet
    overlay = np.array(data["gamma_inf"]["(6.9), n = 128 (the authors' overlay)"], dtype=float)
    assert overlay[-1] - curve[-1] > 0.5
    # the simulated boundaries converge to their curves, and the scheme's bias is positive
    assert data["converges"] == {"faithful": True, "exact": True}
    assert data["bias"]["exact curves"] > 0
    assert all(data["bias"]["simulated"][f"d={d}"]["mean"] > 0 for d in HIGH_D)
    boundary = [c for c in report.checks if ": max |boundary" in c.name]
    assert len(boundary) == 2 and all(c.passed and c.value <= c.bound for c in boundary)


def test_high_d_boundary_tracks_gamma_inf_and_the_faithful_one_is_shifted(tmp_path):
    """d = 1024, beta step 0.5: the exact flow's boundary (P = 1/2) lies within one grid
    step of Gamma_inf,delta from (6.9), the authors' scheme's within one step of that
    scheme's exact equiangular map, and the faithful boundary is lower by the gap between
    the two curves (the scheme clusters later)."""
    request = FigureRequest(out=tmp_path, tiny=True)
    grid = PhaseGrid(4, 4, beta_grid(2.0, 7.5, 12), 0, 1.0)
    half, curve = {}, None
    for scheme in ("exact", "faithful"):
        config = phase_config(request, field={"kind": "sa"}, dims=(1024,), grid=grid,
                              scheme=scheme)
        ds = run_phase(request, f"boundary-{scheme}", config)
        half[scheme] = half_boundary(ds["probability"].values[0, 0], ds["beta"].values)
        curve = ds["boundary_beta"].values[0]
    times = grid.times
    authors = authors_boundary(times)
    inside = np.isfinite(half["exact"]) & (curve > 2.0) & (curve < 7.5)
    assert inside.sum() >= 15
    np.testing.assert_array_less(np.abs(half["exact"] - curve)[inside], 0.5)
    np.testing.assert_array_less(np.abs(half["faithful"] - authors)[inside], 0.5)
    shift = (half["exact"] - half["faithful"])[inside]
    expected = (curve - authors)[inside]
    assert np.mean(shift) > 0
    assert abs(np.mean(shift) - np.mean(expected)) < 0.05


def test_half_boundary_recovers_a_linear_front(rng):
    betas = beta_grid(0.1, 9.0, 90)
    b = np.asarray(betas)
    front = rng.uniform(1.0, 8.0, size=7)
    width = rng.uniform(0.5, 2.0)
    prob = np.clip(0.5 - (b[:, None] - front[None, :]) / width, 0.0, 1.0)
    np.testing.assert_allclose(half_boundary(prob, b), front, atol=1e-12)
    # nothing clustered (or everything clustered) at some time: no boundary there
    prob[:, 0] = 0.0
    prob[:, 1] = 1.0
    assert np.isnan(half_boundary(prob, b)[:2]).all()
    with pytest.raises(ValueError, match="beta, time"):
        half_boundary(prob[:, :, None], b)


def test_authors_boundary_is_the_schemes_crossing():
    times = np.array([0.0, 2.0, 12.0, 30.0])
    beta = authors_boundary(times)
    # before t*(0) ~ 5.2 no beta has clustered; at t = 0 none is computed
    assert np.isnan(beta[:2]).all()
    for t, b in zip(times[2:], beta[2:], strict=True):
        gap = authors_map(b, N, 0.1, round(t / 0.1))[-1]
        assert math.isclose(gap, DELTA, rel_tol=2e-2)
    # the scheme clusters later than (6.9): its boundary lies below Gamma_inf
    assert np.all(beta[2:] < theory.phase_boundary_betas(times[2:], N, DELTA))


def test_phase_grid_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of h"):
        PhaseGrid(4, 4, (1.0, 2.0), 0, 0.25)
    with pytest.raises(ValueError, match="positive"):
        PhaseGrid(0, 4, (1.0, 2.0), 0, 1.0)
