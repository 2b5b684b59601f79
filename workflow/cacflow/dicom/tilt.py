"""Gantry-tilt correction: resample a tilted stack onto an orthogonal grid (SimpleITK).

A tilted acquisition has slice planes (row dir r, column dir c) that are not
perpendicular to the direction v in which the slice positions advance (the table axis).
Index (i, j, k) of such a stack sits at ``origin + i*dc*r + j*dr*c + k*dk*v`` (LPS mm).
The corrected grid keeps v as its slice axis, takes r made orthogonal to v as its x axis
and ``v x r'`` as its y axis, keeps the native in-plane spacing and increment, and covers
every native voxel centre (its extent is rounded up, never down: rounding down cropped
up to a voxel at the far faces); voxels outside the tilted stack get
:data:`cacflow.conventions.PADDING_HU`. The correction is flagged in ``reason_detail``.

Each output voxel takes the value of the native voxel that contains it (nearest
neighbour): no value is interpolated, so HU values, peaks and noise keep their native
distribution and the volume above a threshold is kept (trilinear interpolation across
2.5 mm tilted slices changed the >= 300 HU volume of a tilted phantom by +26 %, growing
bright thin structures; on noisy structures near the threshold it erodes them). The price
is a position error of at most half a voxel, unbiased. Volumes compare with the native
slices' true voxel volume, column x row spacing x increment x cos(tilt): tilted slice
planes are ``increment * cos(tilt)`` apart, so ``count * spacing * increment`` of the
native slices overstates their volume by 1 / cos(tilt) (4.3 % at 16.5 deg).
"""

from __future__ import annotations

import itertools

import numpy as np
import SimpleITK as sitk

from cacflow.conventions import PADDING_HU
from cacflow.volume import Geometry

TILT_INTERPOLATOR = sitk.sitkNearestNeighbor
"""How output voxels take native values (module docstring: no interpolation)."""


def _direction(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[float, ...]:
    """Row-major 3x3 matrix whose columns are x, y, z."""
    return tuple(float(v) for v in np.column_stack([x, y, z]).ravel())


def orthogonal_frame(row_dir: np.ndarray, step_dir: np.ndarray) -> tuple[np.ndarray, ...]:
    """Orthonormal (x, y, z) with z = step_dir and x = row_dir made orthogonal to it."""
    z = step_dir / np.linalg.norm(step_dir)
    x = row_dir - (row_dir @ z) * z
    x = x / np.linalg.norm(x)
    return x, np.cross(z, x), z


def resample_tilted(
    hu: np.ndarray,
    origin: np.ndarray,
    row_dir: np.ndarray,
    col_dir: np.ndarray,
    step_dir: np.ndarray,
    spacing: tuple[float, float, float],
    slice_thickness_mm: float,
) -> tuple[np.ndarray, Geometry]:
    """Resample ``hu`` (z, y, x; int16 HU) of a tilted stack onto an orthogonal grid.

    ``spacing`` = (column spacing, row spacing, distance between slices along
    ``step_dir``), mm. Returns the int16 HU array (z, y, x) and its geometry.
    """
    src = sitk.GetImageFromArray(hu.astype(np.float32))
    src.SetOrigin(tuple(float(v) for v in origin))
    src.SetSpacing(tuple(float(v) for v in spacing))
    src.SetDirection(_direction(row_dir, col_dir, step_dir))
    x, y, z = orthogonal_frame(row_dir, step_dir)
    frame = np.column_stack([x, y, z])
    size_xyz = np.array(hu.shape[::-1]) - 1
    corners = np.array(
        [
            src.TransformContinuousIndexToPhysicalPoint(
                tuple(float(v) for v in np.array(c) * size_xyz)
            )
            for c in itertools.product((0, 1), repeat=3)
        ]
    )
    local = corners @ frame  # coordinates of the corners along x, y, z
    lo, hi = local.min(axis=0), local.max(axis=0)
    sp = np.asarray(spacing, dtype=float)
    size = np.ceil((hi - lo) / sp - 1e-6).astype(int) + 1  # covers every native centre
    out_origin = frame @ lo
    ref = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    ref.SetOrigin(tuple(float(v) for v in out_origin))
    ref.SetSpacing(tuple(float(v) for v in sp))
    ref.SetDirection(_direction(x, y, z))
    out = sitk.Resample(src, ref, sitk.Transform(), TILT_INTERPOLATOR, float(PADDING_HU))
    arr = np.rint(sitk.GetArrayFromImage(out)).astype(np.int16)
    geom = Geometry(
        origin=tuple(float(v) for v in out_origin),
        spacing=tuple(float(v) for v in sp),
        direction=_direction(x, y, z),
        slice_thickness_mm=float(slice_thickness_mm),
    )
    return arr, geom
