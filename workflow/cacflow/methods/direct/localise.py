"""Where the scoring network looks: the heart box of a scan, from the classical localiser.

The paper's atlas-registration ConvNet (:mod:`.atlas`) was trained here on synthetic
phantoms only and mislocated the heart on real CT (its window covered spine, bone and
aorta: a real CAC-free chest CT scored 16,443). The slices and the in-plane window are
therefore taken from :func:`cacflow.heart.find_heart`, the training-free localiser shared
with ``hu-threshold`` and the scorability checks, which works on real chest and cardiac
fields of view. The registration network is kept as the fallback for a scan in which no
heart is found.

The *heart box* of a scan (grid frame, mm, array axes; see :mod:`.atlas`):

- along z: from :data:`TOP_MARGIN_MM` above the heart's upper border
  (:meth:`cacflow.heart.Heart.top_z`: left main and the coronary ostia lie at the aortic
  root, above it) down to :data:`HEART_DEPTH_MM` below it, or to
  :data:`BOTTOM_MARGIN_MM` below the mask's lowest slice when that is higher. The depth
  is fixed rather than read from the mask because in non-contrast CT the mask runs on
  into the liver dome (:mod:`cacflow.heart`, known limit);
- in-plane: the bounding rectangle of the heart mask over the slices from the upper
  border down to :data:`IN_PLANE_DEPTH_MM` below it (the liver dome, which widens the mask
  towards the patient's right lower down, is not reached there), grown by
  :data:`IN_PLANE_MARGIN_MM` on every side (the coronaries run on the heart's surface, in
  the epicardial fat that the soft-tissue mask leaves out).

It is expressed as a :class:`~.atlas.Transform` (translation to the box centre, no
rotation or scale, z flipped when array slice 0 is the most superior one) and a box
centred on the frame's origin, so that the crop code of :mod:`.register` applies
unchanged and the scoring network's position channels are the pixel's and the slice's
coordinates *relative to the heart box*, ``(p - centre) / half size`` (-1 and 1 on the
box's faces, +z superior).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cacflow.heart import HEART_TOP_AREA_FRACTION, Heart, find_heart
from cacflow.methods.direct.atlas import HeartBox, Transform
from cacflow.volume import Volume

IN_PLANE_MARGIN_MM = 15.0
"""Margin (mm) round the heart mask's bounding rectangle, each in-plane side."""
TOP_MARGIN_MM = 10.0
"""Margin (mm) above the heart's main slices (coronary ostia, left main)."""
BOTTOM_MARGIN_MM = 10.0
"""Margin (mm) below the heart mask's lowest slice."""
HEART_DEPTH_MM = 150.0
"""Largest extent (mm) of the box below the heart's upper border (the heart's axial extent
is about 80-120 mm, the posterior descending artery runs on its inferior wall; the mask's
upper border may lie some way above the coronary ostia)."""
IN_PLANE_DEPTH_MM = 60.0
"""Slices down to this far (mm) below the upper border give the in-plane rectangle."""


@dataclass(frozen=True)
class HeartFrame:
    """The heart box of one scan: ``transform`` maps the box frame (mm, origin at the box
    centre, +z superior) to the scan's grid frame; ``box`` is centred on the origin."""

    transform: Transform
    box: HeartBox


def heart_frame(vol: Volume, heart_cache: Path | None = None) -> HeartFrame | None:
    """The heart box of ``vol`` (HU, (z, y, x)); None when no heart is found.
    ``heart_cache``: the resample step's heart of this volume (found anew when absent)."""
    heart = find_heart(vol, heart_cache)
    if heart is None or not heart.mask.any():
        return None
    spacing = tuple(float(s) for s in vol.geometry.spacing)
    return frame_of(heart, tuple(int(n) for n in vol.array.shape), spacing)


def frame_of(
    heart: Heart, shape_zyx: tuple[int, int, int], spacing_xyz: tuple[float, float, float]
) -> HeartFrame:
    """The heart box (module docstring) of a scan of ``shape_zyx`` voxels of
    ``spacing_xyz`` mm whose heart is ``heart``."""
    m = heart.mask
    f = np.asarray(heart.factors, float)
    n = np.asarray(shape_zyx, float)
    sp = np.asarray(spacing_xyz, float)[::-1]  # (z, y, x)
    up = -1.0 if heart.top_is_first else 1.0  # grid z direction of "superior"
    # heart-frame height (mm, +superior) of each coarse slice's centre, and of the top
    kc = np.arange(m.shape[0])
    height = up * ((kc * f[0] + (f[0] - 1) / 2.0) - (n[0] - 1) / 2.0) * sp[0]
    area = m.sum(axis=(1, 2))
    top = float(height[area >= HEART_TOP_AREA_FRACTION * area.max()].max())
    lowest = float(height[area > 0].min())
    z_top = top + TOP_MARGIN_MM
    z_bottom = max(top - HEART_DEPTH_MM, lowest - BOTTOM_MARGIN_MM)
    upper = (height <= top + f[0] * sp[0] / 2.0) & (height >= top - IN_PLANE_DEPTH_MM)
    idx = np.argwhere(m & upper[:, None, None])[:, 1:]  # coarse (y, x)
    lo_idx = idx.min(axis=0) * f[1:]  # full-grid index of the first pixel
    hi_idx = (idx.max(axis=0) + 1) * f[1:] - 1.0  # and of the last one
    lo_yx = (lo_idx - (n[1:] - 1) / 2.0) * sp[1:] - sp[1:] / 2.0 - IN_PLANE_MARGIN_MM
    hi_yx = (hi_idx - (n[1:] - 1) / 2.0) * sp[1:] + sp[1:] / 2.0 + IN_PLANE_MARGIN_MM
    z_grid = sorted((up * z_top, up * z_bottom))  # back to the grid frame's z
    lo_mm = np.array([z_grid[0], *lo_yx])
    hi_mm = np.array([z_grid[1], *hi_yx])
    centre = (lo_mm + hi_mm) / 2.0
    half = (hi_mm - lo_mm) / 2.0
    transform = Transform(tx=float(centre[2]), ty=float(centre[1]), tz=float(centre[0]), s_z=up)
    box = HeartBox(
        (-float(half[2]), -float(half[1]), -float(half[0])),
        (float(half[2]), float(half[1]), float(half[0])),
    )
    return HeartFrame(transform, box)
