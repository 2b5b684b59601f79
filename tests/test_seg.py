"""DICOM SEG export (cacflow.seg): read back with highdicom, geometry and labels checked."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from cacflow.conventions import Label
from cacflow.dicom.write import SeriesSpec, ct_slice
from cacflow.seg import write_dicom_seg
from cacflow.volume import Geometry

SPEC = SeriesSpec(
    pixel_spacing=(0.8, 0.6), increment_mm=1.5, slice_thickness_mm=3.0, origin=(-50, -60, -200)
)
SHAPE = (6, 16, 20)
# the mask's grid equals the source grid: origin, (column, row, slice) spacing
GEOM = Geometry(origin=(-50.0, -60.0, -200.0), spacing=(0.6, 0.8, 1.5), slice_thickness_mm=3.0)


def sources() -> list[pydicom.Dataset]:
    hu = np.zeros(SHAPE, dtype=np.int16)
    return [ct_slice(hu[k], SPEC, k) for k in range(SHAPE[0])]


def mask() -> np.ndarray:
    m = np.zeros(SHAPE, dtype=np.uint8)
    m[2, 3:5, 4:7] = Label.LAD
    m[3, 3, 4] = Label.LM
    m[4, 10, 12] = Label.AV
    return m


def test_seg_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "seg.dcm"
    write_dicom_seg(mask(), GEOM, sources(), path, method="reference")
    seg = hd.seg.segread(path)
    assert seg.Modality == "SEG"
    numbers = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    assert numbers == {int(lab): lab.name for lab in Label if int(lab) <= int(Label.AV)}
    assert str(seg.PatientName) == "" and seg.PatientBirthDate == ""
    assert seg.PatientID == SPEC.patient_id
    assert seg.FrameOfReferenceUID == SPEC.frame_uid
    vol = seg.get_volume(combine_segments=True)
    # every labelled voxel lands at the same patient position (LPS mm) with the same label
    got = np.argwhere(vol.array)
    got_xyz = (vol.affine @ np.c_[got, np.ones(len(got))].T).T[:, :3]
    want = np.argwhere(mask())
    want_xyz = GEOM.index_to_world(want[:, ::-1])
    order_got, order_want = np.lexsort(got_xyz.T), np.lexsort(want_xyz.T)
    np.testing.assert_allclose(got_xyz[order_got], want_xyz[order_want], atol=1e-4)
    np.testing.assert_array_equal(
        vol.array[tuple(got[order_got].T)], mask()[tuple(want[order_want].T)]
    )


def test_seg_keeps_identifiers_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "seg.dcm"
    write_dicom_seg(mask(), GEOM, sources(), path, method="m1", keep_identifiers=True)
    seg = hd.seg.segread(path)
    assert str(seg.PatientName) == SPEC.patient_name
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"


def test_seg_refuses_empty_and_unknown_masks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no labelled voxel"):
        write_dicom_seg(np.zeros(SHAPE, np.uint8), GEOM, sources(), tmp_path / "a.dcm")
    bad = mask()
    bad[0, 0, 0] = 12
    with pytest.raises(ValueError, match="not cacflow Labels"):
        write_dicom_seg(bad, GEOM, sources(), tmp_path / "b.dcm")
