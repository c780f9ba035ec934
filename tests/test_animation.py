"""dynamics.animate (issue 16): movies of a trajectory on S^2, the circle, S^7 (PCA), R^d.

Each movie is a few frames at low resolution (the frame count and size are what is
checked); the projection is checked as mathematics (distances in a plane are kept).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import dynamics
from dynamics import SA, CircleSA, animate, principal_projection, simulate
from dynamics.animation import ffmpeg_available
from dynamics.initial import uniform_angles, uniform_sphere

TIMES = np.linspace(0.0, 2.0, 5)  # T = 5 frames
SMALL = {"dpi": 40, "figsize": (4.0, 3.0)}  # 160 x 120 pixels
SIZE = (160, 120)


def _flow(field, x0):
    return simulate(field, x0, TIMES, method="rk4", dt=0.1)


def _frames(path) -> tuple[int, tuple[int, int]]:
    with Image.open(path) as image:
        return image.n_frames, image.size


@pytest.fixture(scope="module")
def sphere_flow():
    return _flow(SA(1.0), uniform_sphere(0, 2, 6, 3))


def test_sphere_gif_has_one_frame_per_time(sphere_flow, tmp_path):
    path = animate(sphere_flow, tmp_path / "s2.gif", member=1, title="SA on S²", **SMALL)
    assert path == tmp_path / "s2.gif"
    assert _frames(path) == (len(TIMES), SIZE)


def test_circle_angles_gif(tmp_path):
    flow = _flow(CircleSA(1.0), uniform_angles(1, 1, 7))
    assert flow.values.shape == (1, len(TIMES), 7)
    path = animate(flow, tmp_path / "circle.gif", trail=0, **SMALL)
    assert _frames(path) == (len(TIMES), SIZE)


def test_pca_gif_in_d8(tmp_path):
    flow = _flow(SA(1.0), uniform_sphere(2, 1, 9, 8))
    path = animate(flow, tmp_path / "d8.gif", components=3, **SMALL)
    assert _frames(path) == (len(TIMES), SIZE)


def test_plain_arrays_and_frame_limit(tmp_path, rng):
    walk = np.cumsum(rng.normal(size=(7, 4, 2)), axis=0)  # R^2, off the sphere
    path = animate(walk, tmp_path / "walk.gif", times=np.arange(7) * 0.5, frames=3, **SMALL)
    assert _frames(path) == (3, SIZE)
    walk3 = np.cumsum(rng.normal(size=(4, 3, 3)), axis=0)  # R^3, frames numbered
    assert _frames(animate(walk3, tmp_path / "walk3.gif", **SMALL)) == (4, SIZE)


def test_principal_projection_keeps_distances_in_a_plane(rng):
    plane = rng.normal(size=(6, 11, 2)) * [3.0, 0.5]  # (T, n, 2) points of a plane
    basis, _ = np.linalg.qr(rng.normal(size=(8, 2)))  # orthonormal columns in R^8
    states = plane @ basis.T + rng.normal(size=8)  # an affine 2-plane of R^8
    projection = principal_projection(states, 2)
    assert projection.coordinates.shape == (6, 11, 2)
    flat, coords = states.reshape(-1, 8), projection.coordinates.reshape(-1, 2)
    original = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
    projected = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.testing.assert_allclose(projected, original, atol=1e-10)
    np.testing.assert_allclose(projection.explained.sum(), 1.0, atol=1e-12)
    assert projection.explained[0] >= projection.explained[1]
    np.testing.assert_allclose(projection.axes @ projection.axes.T, np.eye(2), atol=1e-12)


def test_principal_projection_explained_variance(rng):
    points = rng.normal(size=(500, 4)) * [4.0, 2.0, 1.0, 0.5]
    projection = principal_projection(points, 3)
    centred = points - points.mean(0)
    shares = np.linalg.eigvalsh(centred.T @ centred)[::-1] / np.sum(centred**2)
    np.testing.assert_allclose(projection.explained, shares[:3], rtol=1e-10)
    with pytest.raises(ValueError, match="k must be"):
        principal_projection(points, 5)


def test_mp4_needs_ffmpeg(sphere_flow, tmp_path):
    path = tmp_path / "s2.mp4"
    if ffmpeg_available():
        animate(sphere_flow, path, **SMALL)
        assert path.stat().st_size > 0
    else:
        with pytest.raises(ValueError, match=r"needs ffmpeg.*install"):
            animate(sphere_flow, path, **SMALL)
        assert not path.exists()


def test_mp4_uses_ffmpeg_writer_where_available(monkeypatch):
    from matplotlib import animation

    from dynamics import animation as module

    monkeypatch.setattr(module, "ffmpeg_available", lambda: True)
    assert isinstance(module._writer(module.Path("a.mp4"), 10.0), animation.FFMpegWriter)
    assert isinstance(module._writer(module.Path("a.GIF"), 10.0), animation.PillowWriter)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"path": "movie.avi"}, ValueError, "gif.*mp4"),
        ({"path": "movie"}, ValueError, "suffix"),
        ({"fps": 0}, ValueError, "fps must be > 0"),
        ({"fps": -2.0}, ValueError, "fps must be > 0"),
        ({"fps": float("nan")}, ValueError, "fps must be finite"),
        ({"dpi": 0}, ValueError, "dpi must be > 0"),
        ({"member": 2}, IndexError, "member 2 is out of range.*2 member"),
        ({"member": 1.0}, TypeError, "member must be an integer"),
        ({"components": 4}, ValueError, "components must be 2 or 3"),
        ({"trail": -1}, ValueError, "trail must be >= 0"),
        ({"frames": 0}, ValueError, "frames must be >= 1"),
        ({"space": "torus"}, ValueError, "space must be one of"),
        ({"space": "angles"}, ValueError, "angles have shape"),
        ({"times": TIMES}, ValueError, "times come from the Trajectory"),
    ],
)
def test_bad_options_are_refused(sphere_flow, tmp_path, kwargs, error, match):
    path = tmp_path / kwargs.pop("path", "movie.gif")
    with pytest.raises(error, match=match):
        animate(sphere_flow, path, **kwargs)
    assert not path.exists()


def test_bad_inputs_are_refused(tmp_path, rng):
    path = tmp_path / "movie.gif"
    with pytest.raises(TypeError, match="Trajectory or an array"):
        animate("not a trajectory", path)
    with pytest.raises(TypeError, match="Trajectory or an array"):
        animate({"values": 1}, path)
    with pytest.raises(ValueError, match=r"\(T, n, d\) points or \(T, n\) angles"):
        animate(rng.normal(size=(2, 3, 4, 3)), path)
    states = uniform_sphere(0, 1, 4, 3)[0][None].repeat(3, 0)
    states[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite in 1 of 3 frames.*t = 2"):
        animate(states, path, times=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="times must have shape"):
        animate(states[:2], path, times=[0.0])
    with pytest.raises(ValueError, match="off the unit sphere"):
        animate(2 * states[:2], path, space="sphere")
    observed = simulate(SA(1.0), uniform_sphere(0, 1, 4, 3), TIMES, method="rk4", dt=0.1,
                        observe=dynamics.gram)
    with pytest.raises(ValueError, match="recorded"):
        animate(observed, path)
    assert not path.exists()
