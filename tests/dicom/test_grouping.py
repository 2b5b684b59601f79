"""Series keys (<UID>_<k>) and header-level exclusions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import SecondaryCaptureImageStorage

from cacflow.dicom.discover import discover
from cacflow.dicom.grouping import GroupKey
from cacflow.dicom.read import read_header


def by_uid(dicom_dir: Path):
    manifest, _ = discover(dicom_dir)
    return manifest.set_index("series_uid")


def edit(paths, **attrs) -> None:
    """Set DICOM attributes (keyword=value) in files, rewriting them."""
    for p in paths:
        ds = pydicom.dcmread(p)
        for k, v in attrs.items():
            setattr(ds, k, v)
        ds.save_as(p)


def test_two_recons_sharing_a_uid_become_two_series(write_series, dicom_dir: Path) -> None:
    _, spec, _ = write_series("soft", kernel="B30f", slice_thickness_mm=1.0)
    write_series("sharp", kernel="B70f", slice_thickness_mm=1.0, series_uid=spec.series_uid)
    rows = by_uid(dicom_dir)
    uid = spec.series_uid
    assert sorted(rows.index) == [f"{uid}_1", f"{uid}_2"]
    # documented order: grouping keys rendered as text; they differ only in the kernel
    assert rows.loc[f"{uid}_1", "kernel"] == "B30f"
    assert rows.loc[f"{uid}_2", "kernel"] == "B70f"
    assert set(rows["dicom_series_uid"]) == {uid}
    assert (rows["status"] == "ok").all()


def test_group_order_follows_rendered_keys(write_series, dicom_dir: Path) -> None:
    _, spec, p_thin = write_series("thin", slice_thickness_mm=0.75)
    _, _, p_thick = write_series("thick", slice_thickness_mm=5.0, series_uid=spec.series_uid)
    keys = {
        "thin": GroupKey.of(read_header(str(p_thin[0]))).render(),
        "thick": GroupKey.of(read_header(str(p_thick[0]))).render(),
    }
    first = min(keys, key=keys.get)  # "0.75" < "5" as text
    rows = by_uid(dicom_dir)
    assert rows.loc[f"{spec.series_uid}_1", "slice_thickness_mm"] == (
        0.75 if first == "thin" else 5.0
    )


def test_localizer_mixed_into_a_series(write_series, dicom_dir: Path) -> None:
    _, spec, _ = write_series("ax")
    write_series(
        "ax",
        n=1,
        name="scout{k}.dcm",
        series_uid=spec.series_uid,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        row_dir=(1.0, 0.0, 0.0),
        col_dir=(0.0, 0.0, -1.0),
    )
    rows = by_uid(dicom_dir)
    assert len(rows) == 2
    scout = rows[rows["n_files"] == 1].iloc[0]
    axial = rows[rows["n_files"] == 12].iloc[0]
    assert (scout["status"], scout["reason"]) == ("excluded", "localizer")
    assert axial["status"] == "ok"


def test_single_image_at_another_orientation_is_a_localizer(write_series, dicom_dir) -> None:
    _, spec, _ = write_series("ax")
    write_series("ax", n=1, name="x{k}.dcm", series_uid=spec.series_uid, col_dir=(0, 0, -1.0))
    rows = by_uid(dicom_dir)
    scout = rows[rows["n_files"] == 1].iloc[0]
    assert scout["reason"] == "localizer"


def test_derived_and_secondary_capture(write_series, dicom_dir: Path) -> None:
    _, d, _ = write_series("mpr", image_type=("DERIVED", "SECONDARY", "MPR"))
    _, sc, p_sc = write_series("sc")
    edit(p_sc, SOPClassUID=SecondaryCaptureImageStorage)
    rows = by_uid(dicom_dir)
    assert rows.loc[d.series_uid, "reason"] == "derived"
    assert rows.loc[sc.series_uid, "reason"] == "derived"


def test_mr_is_not_ct(dicom_dir: Path) -> None:
    shutil.copy(get_testdata_file("MR_small.dcm"), dicom_dir / "mr.dcm")
    rows = by_uid(dicom_dir)
    assert rows.iloc[0][["status", "reason", "reason_detail"]].tolist() == [
        "excluded",
        "not_ct",
        "Modality MR",
    ]


def test_multiframe_without_functional_groups_is_unsupported(write_series, dicom_dir) -> None:
    """Frames without per-frame positions cannot be placed (Enhanced CT is read: see
    test_real_exports.py)."""
    _, spec, paths = write_series("mf", n=1)
    edit(paths, NumberOfFrames=1)
    ds = pydicom.dcmread(paths[0])
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(paths[0])
    assert by_uid(dicom_dir).loc[spec.series_uid, "reason"] == "unsupported_syntax"


def test_missing_pixel_data(write_series, dicom_dir: Path) -> None:
    _, spec, paths = write_series("np")
    ds = pydicom.dcmread(paths[3])
    del ds.PixelData
    ds.save_as(paths[3])
    row = by_uid(dicom_dir).loc[spec.series_uid]
    assert (row["reason"], row["reason_detail"]) == (
        "missing_pixels",
        "1 of 12 files have no PixelData",
    )


def test_one_stray_slice_with_other_pixel_spacing(write_series, dicom_dir: Path) -> None:
    """One stack, one image at another pixel spacing: interleaved groups -> both excluded."""
    _, spec, paths = write_series("s", pixel_spacing=(0.7, 0.7))
    edit(paths[5:6], PixelSpacing=["0.8", "0.8"])
    rows = by_uid(dicom_dir)
    assert len(rows) == 2
    assert set(rows["reason"]) == {"inconsistent_geometry"}


def test_other_fov_at_the_same_positions_stays_separate(write_series, dicom_dir) -> None:
    _, spec, _ = write_series("a", pixel_spacing=(0.7, 0.7))
    write_series("b", pixel_spacing=(0.4, 0.4), series_uid=spec.series_uid)
    rows = by_uid(dicom_dir)
    assert len(rows) == 2 and (rows["status"] == "ok").all()
