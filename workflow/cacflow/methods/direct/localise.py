"""Where the scoring network looks: the heart box of a scan, from the classical localiser.

The paper's atlas-registration ConvNet (:mod:`.atlas`) was trained here on synthetic
phantoms only and mislocated the heart on real CT (its window covered spine, bone and
aorta: a real CAC-free chest CT scored 16,443). The slices and the in-plane window are
therefore taken from :func:`cacflow.heart.find_heart`, the training-free localiser shared
with ``hu-threshold`` and the scorability checks, which works on real chest and cardiac
fields of view. The registration network is kept as the fallback for a scan in which no
heart is found.

The *heart box* of a scan (grid frame, mm, array axes; see :mod:`.atlas`):

- in-plane: the bounding rectangle of the heart mask over its *main slices* (those whose
  heart area is at least :data:`cacflow.heart.HEART_TOP_AREA_FRACTION` of the largest;
  above them the mask holds only the roots of the great vessels), grown by
  :data:`IN_PLANE_MARGIN_MM` on every side (the coronaries run on the heart's surface,
  in the epicardial fat the soft-tissue mask may leave out);
- along z: the main slices, grown by :data:`TOP_MARGIN_MM` above (left main and the
  coronary ostia lie at the aortic root, above the heart's upper border) and
  :data:`BOTTOM_MARGIN_MM` below.

It is expressed as a :class:`~.atlas.Transform` (translation to the box centre, no
rotation or scale, z flipped when array slice 0 is the most superior one) and a box
centred on the frame's origin, so that the crop code of :mod:`.register` applies
unchanged and the scoring network's position channels are the pixel's and the slice's
coordinates *relative to the heart box*, ``(p - centre) / half size`` (-1 and 1 on the
box's faces, +z superior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cacflow.heart import HEART_TOP_AREA_FRACTION, Heart, find_heart
from cacflow.methods.direct.atlas import HeartBox, Transform
from cacflow.volume import Volume

IN_PLANE_MARGIN_MM = 15.0
"""Margin (mm) round the heart mask's bounding rectangle, each in-plane side."""
TOP_MARGIN_MM = 20.0
"""Margin (mm) above the heart's main slices (coronary ostia, left main)."""
BOTTOM_MARGIN_MM = 10.0
"""Margin (mm) below the heart's main slices."""


@dataclass(frozen=True)
class HeartFrame:
    """The heart box of one scan: ``transform`` maps the box frame (mm, origin at the box
    centre, +z superior) to the scan's grid frame; ``box`` is centred on the origin."""

    transform: Transform
    box: HeartBox


def heart_frame(vol: Volume) -> HeartFrame | None:
    """The heart box of ``vol`` (HU, (z, y, x)); None when no heart is found."""
    heart = find_heart(vol)
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
    area = m.sum(axis=(1, 2))
    main = area >= HEART_TOP_AREA_FRACTION * area.max()
    idx = np.argwhere(m & main[:, None, None])  # coarse (z, y, x)
    f = np.asarray(heart.factors, float)
    lo_idx = idx.min(axis=0) * f  # full-grid index of the first voxel
    hi_idx = (idx.max(axis=0) + 1) * f - 1.0  # and of the last one
    n = np.asarray(shape_zyx, float)
    sp = np.asarray(spacing_xyz, float)[::-1]  # (z, y, x)
    lo_mm = (lo_idx - (n - 1) / 2.0) * sp - sp / 2.0
    hi_mm = (hi_idx - (n - 1) / 2.0) * sp + sp / 2.0
    up = -1.0 if heart.top_is_first else 1.0  # grid z direction of "superior"
    lo_mm[1:] -= IN_PLANE_MARGIN_MM
    hi_mm[1:] += IN_PLANE_MARGIN_MM
    if up > 0:
        lo_mm[0] -= BOTTOM_MARGIN_MM
        hi_mm[0] += TOP_MARGIN_MM
    else:
        lo_mm[0] -= TOP_MARGIN_MM
        hi_mm[0] += BOTTOM_MARGIN_MM
    centre = (lo_mm + hi_mm) / 2.0
    half = (hi_mm - lo_mm) / 2.0
    transform = Transform(tx=float(centre[2]), ty=float(centre[1]), tz=float(centre[0]), s_z=up)
    box = HeartBox(
        (-float(half[2]), -float(half[1]), -float(half[0])),
        (float(half[2]), float(half[1]), float(half[0])),
    )
    return HeartFrame(transform, box)
