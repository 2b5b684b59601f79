"""From a registration result to the scoring network's input: slice selection and crops.

The registration transform (:class:`~cacflow.methods.direct.atlas.Transform`) maps the
heart box of the atlas frame into the scan. As in de Vos et al. 2019 (section III-C) it
selects the axial slices to score: those whose centre lies in the box's z range mapped
into the scan (rotation is about z only, so z maps on its own). Unlike the paper, the
slices are **not** warped: bilinear interpolation changes calcium areas and peak HU, which
the Agatston score depends on. The scoring network sees a window of native pixels that
holds the box (an axis-aligned bounding rectangle of the box mapped into the scan, padded
to a multiple of :data:`CROP_MULTIPLE`), and the alignment reaches it as input channels:
the atlas coordinates of every pixel (normalised to the box) and of the slice.

Input channels (float32), per pixel of a window (see :func:`input_channels`):

0. anatomy: ``clip(HU, -1000, 1000) / 1000``;
1. calcium: ``clip((HU - threshold_hu) / 100, -0.5, 10)`` (>= 0 exactly on calcium);
2. atlas x, 3. atlas y of the pixel, 4. atlas z of the slice, each
   ``(coordinate - box centre) / box half size``.

Outside the image the window holds :data:`cacflow.conventions.PADDING_HU`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cacflow.conventions import PADDING_HU
from cacflow.methods.direct.atlas import HeartBox, Transform

CROP_MULTIPLE = 8
"""Window sides are multiples of the scoring network's total pooling factor."""
N_CHANNELS = 5
ANATOMY_HU = (-1000.0, 1000.0)
CALCIUM_SCALE_HU = 100.0
CALCIUM_CLIP = (-0.5, 10.0)


@dataclass(frozen=True)
class CropPlan:
    """Slices to score and the in-plane window (pixel indices; may reach outside the
    image, where it is padded). ``slices``: sorted z indices into the analysis volume."""

    slices: np.ndarray
    y0: int
    x0: int
    height: int
    width: int


def grid_centre_offsets(shape_zyx: tuple[int, ...]) -> np.ndarray:
    """(x, y, z) index of the grid centre, (n - 1) / 2 per axis."""
    return (np.asarray(shape_zyx[::-1], float) - 1.0) / 2.0


def plan_crop(
    shape_zyx: tuple[int, int, int],
    spacing_xyz: tuple[float, float, float],
    transform: Transform,
    box: HeartBox,
    *,
    margin_px: int = 0,
) -> CropPlan:
    """Slices and window of a scan of ``shape_zyx`` / ``spacing_xyz`` (mm) holding ``box``.

    ``margin_px`` widens the window on every side (training uses it for random shifts).
    """
    sp = np.asarray(spacing_xyz, float)
    centre = grid_centre_offsets(shape_zyx)
    z_lo, z_hi = sorted(transform.to_scan(np.array([[0, 0, box.lo[2]], [0, 0, box.hi[2]]]))[:, 2])
    qz = (np.arange(shape_zyx[0]) - centre[2]) * sp[2]
    slices = np.flatnonzero((qz >= z_lo) & (qz <= z_hi))
    corners = np.array(
        [[x, y, 0.0] for x in (box.lo[0], box.hi[0]) for y in (box.lo[1], box.hi[1])]
    )
    q = transform.to_scan(corners)
    ij = q[:, :2] / sp[:2] + centre[:2]  # (x, y) continuous indices
    x0, x1 = math.floor(ij[:, 0].min()) - margin_px, math.ceil(ij[:, 0].max()) + margin_px
    y0, y1 = math.floor(ij[:, 1].min()) - margin_px, math.ceil(ij[:, 1].max()) + margin_px
    width = _round_up(x1 - x0 + 1)
    height = _round_up(y1 - y0 + 1)
    x0 -= (width - (x1 - x0 + 1)) // 2
    y0 -= (height - (y1 - y0 + 1)) // 2
    return CropPlan(slices, int(y0), int(x0), int(height), int(width))


def _round_up(n: int) -> int:
    return int(math.ceil(n / CROP_MULTIPLE) * CROP_MULTIPLE)


def extract_window(
    array: np.ndarray, slices: np.ndarray, y0: int, x0: int, height: int, width: int, fill: float
) -> np.ndarray:
    """``array[slices, y0:y0+height, x0:x0+width]`` with ``fill`` where it leaves the array."""
    out = np.full((len(slices), height, width), fill, dtype=array.dtype)
    h, w = array.shape[1:]
    ys, ye = max(y0, 0), min(y0 + height, h)
    xs, xe = max(x0, 0), min(x0 + width, w)
    if ys < ye and xs < xe and len(slices):
        out[:, ys - y0 : ye - y0, xs - x0 : xe - x0] = array[slices, ys:ye, xs:xe]
    return out


def pixel_atlas_xy(
    shape_zyx: tuple[int, int, int],
    spacing_xyz: tuple[float, float, float],
    transform: Transform,
    box: HeartBox,
    y0: int,
    x0: int,
    height: int,
    width: int,
) -> np.ndarray:
    """(2, height, width) float32: atlas x, y of each window pixel, normalised to the box."""
    sp = np.asarray(spacing_xyz, float)
    centre = grid_centre_offsets(shape_zyx)
    xs = (np.arange(x0, x0 + width) - centre[0]) * sp[0]
    ys = (np.arange(y0, y0 + height) - centre[1]) * sp[1]
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    pts = np.stack([xx, yy, np.zeros_like(xx)], axis=-1)
    a = transform.to_atlas(pts)
    c, h = box.centre, box.half
    return np.stack([(a[..., 0] - c[0]) / h[0], (a[..., 1] - c[1]) / h[1]]).astype(np.float32)


def slice_atlas_z(
    slices: np.ndarray,
    shape_zyx: tuple[int, int, int],
    spacing_xyz: tuple[float, float, float],
    transform: Transform,
    box: HeartBox,
) -> np.ndarray:
    """(n,) float32: atlas z of each slice, normalised to the box."""
    centre = grid_centre_offsets(shape_zyx)
    qz = (np.asarray(slices, float) - centre[2]) * spacing_xyz[2]
    za = (qz - transform.tz) / transform.s_z
    return ((za - box.centre[2]) / box.half[2]).astype(np.float32)


def input_channels(
    hu: np.ndarray, atlas_xy: np.ndarray, atlas_z: np.ndarray, threshold_hu: float
) -> np.ndarray:
    """Scoring-network input (n, 5, h, w) float32 from HU windows (n, h, w), the pixels'
    atlas x, y (2, h, w) and the slices' atlas z (n,); see the module docstring."""
    hu = hu.astype(np.float32, copy=False)
    n, h, w = hu.shape
    out = np.empty((n, N_CHANNELS, h, w), dtype=np.float32)
    np.clip(hu, *ANATOMY_HU, out=out[:, 0])
    out[:, 0] /= -ANATOMY_HU[0]
    np.subtract(hu, np.float32(threshold_hu), out=out[:, 1])
    out[:, 1] /= CALCIUM_SCALE_HU
    np.clip(out[:, 1], *CALCIUM_CLIP, out=out[:, 1])
    out[:, 2:4] = atlas_xy[None]
    out[:, 4] = atlas_z[:, None, None]
    return out


def window_of(
    hu: np.ndarray,
    spacing_xyz: tuple[float, float, float],
    transform: Transform,
    box: HeartBox,
    threshold_hu: float,
) -> tuple[CropPlan, np.ndarray]:
    """Plan and network input (n, 5, h, w) of a whole scan (HU, (z, y, x))."""
    shape = tuple(int(v) for v in hu.shape)
    plan = plan_crop(shape, spacing_xyz, transform, box)
    win = extract_window(hu, plan.slices, plan.y0, plan.x0, plan.height, plan.width, PADDING_HU)
    xy = pixel_atlas_xy(
        shape, spacing_xyz, transform, box, plan.y0, plan.x0, plan.height, plan.width
    )
    z = slice_atlas_z(plan.slices, shape, spacing_xyz, transform, box)
    return plan, input_channels(win, xy, z, threshold_hu)
