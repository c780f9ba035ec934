"""C1: the limit geometries of 2305.05465 (hull inclusion, at most 3 hyperplanes)."""

import numpy as np

from paper_repro.c1_cluster_geometries import (
    distance_to_boundary_or_origin,
    distinct_values,
    hull_excess,
    top_left_eigenvector,
)


def test_c1_geometries(make, tmp_path):
    report, data = make("C1", "C1_cluster_geometries")
    geometries = data["geometries"]
    assert set(geometries) == {"polytope-2d", "polytope-3d", "hyperplanes-2d",
                               "codimension-3d", "mixed-3d"}
    for key in ("polytope-2d", "polytope-3d", "mixed-3d"):
        g = geometries[key]
        # V = I (or its positive block): every token moves inside the hull of the others
        assert g["hull_excess"] <= 1e-9
        # tokens end on the boundary of the hull or at 0 (Thm 3.1), within 2% of its size
        assert g["off_boundary"] <= g["tolerance"]
        assert g["limit_points"] < 20
    for key in ("hyperplanes-2d", "codimension-3d"):
        assert 1 <= geometries[key]["hyperplanes"] <= 3  # Thm 4.1
    movies = sorted(p.name for p in report.files if p.suffix == ".gif")
    assert movies == sorted(f"C1_{key}.gif" for key in geometries)
    assert len(report.checks) == 5 and all(c.passed for c in report.checks)
    assert all(c.value <= c.bound for c in report.checks)


def test_c1_helpers_on_known_shapes(rng):
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    inside = rng.uniform(0.1, 0.9, (5, 2))
    assert hull_excess(inside, square) < -0.09
    assert np.isclose(hull_excess(np.array([[1.5, 0.5]]), square), 0.5)
    # the corners lie on the boundary; an interior point away from 0 does not
    assert distance_to_boundary_or_origin(square + 2.0) == 0.0
    assert np.isclose(distance_to_boundary_or_origin(
        np.vstack([square * 4 + 1, [[3.0, 3.0]]])), 2.0)
    assert distinct_values(np.array([0.0, 0.01, 1.0, 1.02, 5.0]), 0.05) == 3
    v = rng.uniform(0.1, 1.0, (3, 3))
    w = top_left_eigenvector(v)
    lam = np.max(np.linalg.eigvals(v).real)
    np.testing.assert_allclose(w @ v, lam * w, atol=1e-12)
