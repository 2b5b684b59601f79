"""Gantry-tilt resampling checked on a linear HU field (trilinear interpolation is exact)."""

from __future__ import annotations

import math

import numpy as np

from cacflow.conventions import PADDING_HU
from cacflow.dicom.tilt import orthogonal_frame, resample_tilted


def test_orthogonal_frame() -> None:
    x, y, z = orthogonal_frame(np.array([1.0, 0, 0]), np.array([0, 0, 2.0]))
    np.testing.assert_allclose(np.column_stack([x, y, z]), np.eye(3), atol=1e-12)


def test_resampled_values_match_the_field_at_world_points() -> None:
    t = math.radians(15.0)
    row_dir = np.array([1.0, 0, 0])
    col_dir = np.array([0.0, math.cos(t), math.sin(t)])
    step_dir = np.array([0.0, 0, 1])
    spacing = (1.0, 1.0, 2.0)  # column, row, along the table (mm)
    origin = np.array([-10.0, -12.0, 30.0])
    nz, ny, nx = 10, 24, 20
    k, j, i = np.mgrid[0:nz, 0:ny, 0:nx]
    world = (
        origin
        + (i[..., None] * spacing[0]) * row_dir
        + (j[..., None] * spacing[1]) * col_dir
        + (k[..., None] * spacing[2]) * step_dir
    )

    def field(p: np.ndarray) -> np.ndarray:  # HU, linear in LPS mm
        return 3.0 * p[..., 0] + 5.0 * p[..., 1] + 7.0 * p[..., 2]

    hu = np.rint(field(world)).astype(np.int16)
    out, geom = resample_tilted(hu, origin, row_dir, col_dir, step_dir, spacing, 2.0)
    np.testing.assert_allclose(np.asarray(geom.direction).reshape(3, 3), np.eye(3), atol=1e-12)
    assert geom.spacing == spacing
    zz, yy, xx = np.mgrid[0 : out.shape[0], 0 : out.shape[1], 0 : out.shape[2]]
    pts = geom.index_to_world(np.stack([xx, yy, zz], axis=-1))
    # inside the tilted stack (its continuous index within the grid) values follow the field
    rel = pts - origin
    m = np.column_stack([row_dir * spacing[0], col_dir * spacing[1], step_dir * spacing[2]])
    idx = rel @ np.linalg.inv(m).T
    inside = np.all((idx > 0.01) & (idx < np.array([nx, ny, nz]) - 1.01), axis=-1)
    assert inside.sum() > 1000
    np.testing.assert_allclose(out[inside], field(pts[inside]), atol=1.0)
    outside = np.any((idx < -0.5) | (idx > np.array([nx, ny, nz]) - 0.5), axis=-1)
    assert outside.any() and (out[outside] == PADDING_HU).all()
