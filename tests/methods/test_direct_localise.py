"""The heart box of the direct method (cacflow.methods.direct.localise) on a real chest CT
and on a cardiac field of view cut from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cacflow.dicom.convert import QcConfig, convert_dir
from cacflow.methods.direct.localise import heart_frame
from cacflow.methods.direct.register import pixel_atlas_xy, plan_crop, slice_atlas_z
from cacflow.volume import Geometry, Volume, list_volumes, read_volume

REAL_CT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_ct"
if not REAL_CT.is_dir():
    REAL_CT = Path("/work/shared/data/real_ct")
SOFT_5MM = REAL_CT / "lung-pet-ct-dx-a0001" / "B_soft_5mm"


@pytest.fixture(scope="module")
def real_volume(tmp_path_factory) -> Volume:
    if not SOFT_5MM.is_dir():
        pytest.skip("shared/data/real_ct not present")
    out = tmp_path_factory.mktemp("real")
    convert_dir(SOFT_5MM, out, QcConfig())
    (path,) = list_volumes(out)
    return read_volume(path)


def _plan(vol: Volume):
    frame = heart_frame(vol)
    assert frame is not None
    spacing = tuple(float(s) for s in vol.geometry.spacing)
    return frame, spacing, plan_crop(vol.array.shape, spacing, frame.transform, frame.box)


def test_heart_box_on_a_real_chest_ct(real_volume: Volume) -> None:
    """Lung-PET-CT-Dx A0001 (5 mm, soft kernel, 0.84 mm pixels): the window is heart-sized,
    holds the heart (soft tissue at its centre, mid-slice) and not the spine."""
    vol = real_volume
    frame, spacing, plan = _plan(vol)
    w_mm, h_mm = plan.width * spacing[0], plan.height * spacing[1]
    assert 100 <= w_mm <= 220 and 100 <= h_mm <= 220, (w_mm, h_mm)
    z_mm = len(plan.slices) * spacing[2]
    assert 80 <= z_mm <= 180, z_mm
    mid = plan.slices[len(plan.slices) // 2]
    cy, cx = plan.y0 + plan.height // 2, plan.x0 + plan.width // 2
    centre = vol.array[mid, cy - 5 : cy + 5, cx - 5 : cx + 5]
    assert -100 < float(np.median(centre)) < 150  # blood / myocardium
    # the spine (bone at the posterior midline) lies behind the window in every slice
    rows = vol.array[mid, :, vol.array.shape[2] // 2 - 10 : vol.array.shape[2] // 2 + 10]
    bone_rows = np.flatnonzero((rows > 300).sum(axis=1) > 5)
    spine_front = bone_rows[bone_rows > vol.array.shape[1] // 2].min()
    assert plan.y0 + plan.height <= spine_front + 10
    # position channels: -1..1 over the box, +z superior
    xy = pixel_atlas_xy(
        vol.array.shape,
        spacing,
        frame.transform,
        frame.box,
        plan.y0,
        plan.x0,
        plan.height,
        plan.width,
    )
    assert -1.1 <= xy.min() and xy.max() <= 1.1
    z = slice_atlas_z(plan.slices, vol.array.shape, spacing, frame.transform, frame.box)
    top = vol.geometry.index_to_world(np.array([0.0, 0.0, float(plan.slices[-1])]))[2]
    bottom = vol.geometry.index_to_world(np.array([0.0, 0.0, float(plan.slices[0])]))[2]
    assert (z[-1] > z[0]) == (top > bottom)


def test_heart_box_on_a_cardiac_field_of_view(real_volume: Volume) -> None:
    """A 200 mm square cut round the chest CT's heart box (pixels kept): the same heart."""
    vol = real_volume
    _, spacing, plan = _plan(vol)
    half = int(round(100.0 / spacing[0]))
    cy, cx = plan.y0 + plan.height // 2, plan.x0 + plan.width // 2
    y0, x0 = max(cy - half, 0), max(cx - half, 0)
    arr = vol.array[:, y0 : y0 + 2 * half, x0 : x0 + 2 * half].copy()
    g = vol.geometry
    origin = g.index_to_world(np.array([float(x0), float(y0), 0.0]))
    crop = Volume(arr, Geometry(tuple(origin), g.spacing, g.direction, g.slice_thickness_mm), {})
    _, _, cplan = _plan(crop)
    # same slices, window within 25 mm of the chest CT's one (in the crop's pixels): on this
    # scan the chest CT's heart mask runs on into the liver dome on the patient's right
    # (cacflow.heart, known limits) and the crop cuts part of that, so the centres differ
    assert abs(len(cplan.slices) - len(plan.slices)) <= 3
    ccy, ccx = cplan.y0 + cplan.height // 2 + y0, cplan.x0 + cplan.width // 2 + x0
    assert abs(ccy - cy) * spacing[1] <= 25 and abs(ccx - cx) * spacing[0] <= 25
