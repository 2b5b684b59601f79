"""Real exports (issue 14): no series may vanish. Real-shaped files written by pydicom /
highdicom, pydicom-data's Enhanced CT sample and, when present, the real chest CTs of
shared/data/real_ct."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import SecondaryCaptureImageStorage

from cacflow.conventions import Reason
from cacflow.dicom.convert import QcConfig, convert_dir
from cacflow.dicom.discover import discover
from cacflow.dicom.grouping import FALLBACK_DETAIL
from cacflow.dicom.write import SeriesSpec, phantom, write_multiframe_ct
from cacflow.volume import read_volume

REAL_CT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_ct"
if not REAL_CT.is_dir():
    REAL_CT = Path("/work/shared/data/real_ct")


def convert(dicom_dir: Path, out_dir: Path, **qc) -> pd.DataFrame:
    return convert_dir(dicom_dir, out_dir, QcConfig(**qc)).set_index("series_uid")


@pytest.fixture(autouse=True)
def _quiet_invalid_uids():
    """pydicom warns on every invalid UID it writes; those UIDs are the point here."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Invalid value for VR UI")
        yield


def edit(paths, delete: tuple[str, ...] = (), **attrs) -> None:
    """Set (keyword=value) and delete DICOM attributes in files, rewriting them."""
    for p in paths:
        ds = pydicom.dcmread(p)
        for k, v in attrs.items():
            setattr(ds, k, v)
        for k in delete:
            if k in ds:
                delattr(ds, k)
        ds.save_as(p)


STRIP = ("SeriesInstanceUID", "StudyInstanceUID")


# --- 1. no SeriesInstanceUID / StudyInstanceUID ------------------------------------------


def test_series_without_uids_are_grouped_by_folder_and_scored(
    write_series, dicom_dir, out_dir
) -> None:
    _, _, a = write_series("Doe^Jane/soft", kernel="B30f")
    _, _, b = write_series("Doe^Jane/sharp", seed=1, kernel="B70f")
    edit(a + b, delete=STRIP)
    scans = convert(dicom_dir, out_dir)
    assert len(scans) == 2
    assert (scans["status"] == "ok").all()
    assert scans["dicom_series_uid"].isna().all()
    assert scans["reason_detail"].str.contains(FALLBACK_DETAIL, regex=False).all()
    assert sorted(scans["kernel"]) == ["B30f", "B70f"]
    # folder names (here a patient name) never reach the shared table, data or metadata
    assert b"Doe^Jane" not in (out_dir / "scans.parquet").read_bytes()
    assert str(dicom_dir).encode() not in (out_dir / "scans.parquet").read_bytes()
    for uid in scans.index:
        assert pydicom.uid.UID(uid).is_valid
        assert read_volume(out_dir / f"{uid}.nii").array.shape[0] == 12
    # deterministic: the same files under another root give the same keys
    moved = dicom_dir.parent / "elsewhere" / "export"
    shutil.copytree(dicom_dir, moved)
    again, _ = discover(moved)
    assert sorted(again["series_uid"]) == sorted(scans.index)


def test_series_number_splits_a_folder_without_uids(write_series, dicom_dir, out_dir) -> None:
    _, _, a = write_series("flat", name="A{k:03d}.dcm")
    _, _, b = write_series("flat", seed=2, name="B{k:03d}.dcm")
    edit(a, delete=STRIP, SeriesNumber=2)
    edit(b, delete=STRIP, SeriesNumber=3)
    scans = convert(dicom_dir, out_dir)
    assert len(scans) == 2 and (scans["n_slices"] == 12).all()
    assert (scans["status"] == "ok").all()


def test_frame_of_reference_per_image_does_not_split_a_stack(
    write_series, dicom_dir, out_dir
) -> None:
    """A de-identified release writes one FrameOfReferenceUID per image (LIDC-IDRI)."""
    _, _, paths = write_series("s")
    for p in paths:
        edit([p], delete=STRIP, FrameOfReferenceUID=pydicom.uid.generate_uid())
    scans = convert(dicom_dir, out_dir)
    assert len(scans) == 1 and scans["status"].iloc[0] == "ok"


def test_dicom_without_pixels_and_uids_is_counted_not_a_series(
    write_series, dicom_dir, out_dir
) -> None:
    _, _, paths = write_series("s", n=11)
    edit(paths[:1], delete=(*STRIP, "PixelData"))
    manifest, counts = discover(dicom_dir)
    assert len(manifest) == 1 and manifest["n_files"].iloc[0] == 10
    assert counts["n_non_image"] == 1


# --- 2. invalid UIDs ----------------------------------------------------------------------


def test_uids_with_leading_zero_components_are_kept_with_a_warning(
    write_series, dicom_dir, out_dir, caplog
) -> None:
    uid = "2.0256.1.02.3"
    _, _, paths = write_series("s", series_uid=uid)
    for k, p in enumerate(paths):
        edit([p], SOPInstanceUID=f"2.0256.1.02.3.{k:02d}")
    with caplog.at_level(logging.WARNING, logger="cacflow"):
        scans = convert(dicom_dir, out_dir)
    assert list(scans.index) == [uid]
    assert scans.loc[uid, "status"] == "ok" and scans.loc[uid, "n_slices"] == 12
    assert any("not a valid UID" in r.getMessage() for r in caplog.records)


# --- 6. axial reformats are not screen captures -------------------------------------------

MPR = ("DERIVED", "PRIMARY", "MPR")


def test_axial_primary_reformat_is_kept_and_said_so(write_series, dicom_dir, out_dir) -> None:
    _, spec, _ = write_series("mpr", image_type=MPR, kernel="FC12", manufacturer="TOSHIBA")
    scans = convert(dicom_dir, out_dir)
    row = scans.loc[spec.series_uid]
    assert row["status"] == "ok"
    assert "axial primary reformat (ImageType DERIVED\\PRIMARY\\MPR)" in row["reason_detail"]


def test_strict_rule_excludes_reformats_as_derived(write_series, dicom_dir, out_dir) -> None:
    _, spec, _ = write_series("mpr", image_type=MPR)
    scans = convert(dicom_dir, out_dir, reformats="exclude")
    row = scans.loc[spec.series_uid]
    assert (row["status"], row["reason"]) == ("excluded", Reason.DERIVED.value)
    assert "qc.reformats: exclude" in row["reason_detail"]


@pytest.mark.parametrize(
    ("image_type", "col_dir"),
    [
        (("DERIVED", "PRIMARY", "MPR"), (0.0, 0.0, -1.0)),  # coronal reformat
        (("DERIVED", "PRIMARY", "MIP"), (0.0, 1.0, 0.0)),
        (("DERIVED", "PRIMARY", "MPR", "MIP"), (0.0, 1.0, 0.0)),
        (("DERIVED", "SECONDARY", "MPR"), (0.0, 1.0, 0.0)),
        (("DERIVED", "PRIMARY", "PERFUSION"), (0.0, 1.0, 0.0)),
    ],
)
def test_other_derived_images_stay_excluded(
    write_series, dicom_dir, out_dir, image_type, col_dir
) -> None:
    _, spec, _ = write_series("d", image_type=image_type, col_dir=col_dir)
    scans = convert(dicom_dir, out_dir)
    assert scans.loc[spec.series_uid, "reason"] == Reason.DERIVED.value


# --- 7. dose reports and screens are derived, not localizers ------------------------------


def test_dose_screen_sharing_the_uid_is_derived(write_series, dicom_dir, out_dir) -> None:
    _, spec, _ = write_series("ax")
    _, _, screen = write_series(
        "ax",
        n=1,
        name="dose{k}.dcm",
        series_uid=spec.series_uid,
        image_type=("DERIVED", "SECONDARY", "OTHER"),
        col_dir=(0.0, 0.0, -1.0),
    )
    edit(screen, delete=("ImageOrientationPatient", "ImagePositionPatient"))
    scans = convert(dicom_dir, out_dir)
    one = scans[scans["n_files"] == 1].iloc[0]
    assert (one["status"], one["reason"]) == ("excluded", Reason.DERIVED.value)
    assert scans[scans["n_files"] == 12]["status"].tolist() == ["ok"]


def test_secondary_capture_screen_is_derived(write_series, dicom_dir, out_dir) -> None:
    _, spec, _ = write_series("ax")
    _, _, screen = write_series(
        "ax", n=1, name="info{k}.dcm", series_uid=spec.series_uid, col_dir=(0.0, 0.0, -1.0)
    )
    edit(screen, SOPClassUID=SecondaryCaptureImageStorage)
    scans = convert(dicom_dir, out_dir)
    assert scans[scans["n_files"] == 1]["reason"].tolist() == [Reason.DERIVED.value]


def test_a_true_scout_stays_a_localizer(write_series, dicom_dir, out_dir) -> None:
    _, spec, _ = write_series("ax")
    write_series("ax", n=1, name="x{k}.dcm", series_uid=spec.series_uid, col_dir=(0, 0, -1.0))
    scans = convert(dicom_dir, out_dir)
    assert scans[scans["n_files"] == 1]["reason"].tolist() == [Reason.LOCALIZER.value]


# --- 5. multi-frame Enhanced CT -----------------------------------------------------------


def test_multiframe_written_from_a_series_gives_the_same_volume(
    write_series, dicom_dir, out_dir, tmp_path
) -> None:
    hu, spec, _ = write_series("single", slice_thickness_mm=2.0, increment_mm=2.0)
    mf_spec = SeriesSpec(slice_thickness_mm=2.0, increment_mm=2.0)
    write_multiframe_ct(phantom(12), dicom_dir / "multi" / "mf.dcm", mf_spec)
    scans = convert(dicom_dir, out_dir)
    assert scans.loc[mf_spec.series_uid, "status"] == "ok", scans["reason_detail"].tolist()
    assert scans.loc[mf_spec.series_uid, "n_slices"] == 12
    a = read_volume(out_dir / f"{spec.series_uid}.nii")
    b = read_volume(out_dir / f"{mf_spec.series_uid}.nii")
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(b.array, hu)
    assert a.geometry == b.geometry


def test_multiframe_in_reverse_frame_order(dicom_dir, out_dir) -> None:
    """Frames are sorted by their per-frame positions, not by frame number."""
    spec = SeriesSpec(origin=(-100.0, -120.0, -39.0), step=(0.0, 0.0, -1.0))
    hu = phantom(12)
    write_multiframe_ct(hu, dicom_dir / "mf.dcm", spec)
    scans = convert(dicom_dir, out_dir)
    assert scans.loc[spec.series_uid, "status"] == "ok"
    vol = read_volume(out_dir / f"{spec.series_uid}.nii")
    np.testing.assert_array_equal(vol.array, hu[::-1])


def _enhanced_ct_sample() -> Path:
    path = get_testdata_file("eCT_Supplemental.dcm")
    if path is None:
        pytest.skip("pydicom-data's eCT_Supplemental.dcm is not installed")
    return Path(path)


def test_real_enhanced_ct_sample_is_read(dicom_dir, out_dir) -> None:
    """pydicom-data's Enhanced CT (2 frames, 512^2, unsigned, geometry only in functional
    groups). Its ImageType is a perfusion map (derived); as ORIGINAL it must be read."""
    src = _enhanced_ct_sample()
    plain = dicom_dir / "as_shipped.dcm"
    shutil.copy(src, plain)
    scans = convert(dicom_dir, out_dir, min_slices=2)
    assert scans["reason"].tolist() == [Reason.DERIVED.value]  # not unsupported_syntax
    edit([plain], ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])
    scans = convert(dicom_dir, out_dir, min_slices=2)
    uid = scans.index[0]
    assert scans.loc[uid, "status"] == "ok", scans.loc[uid, "reason_detail"]
    assert scans.loc[uid, "n_slices"] == 2
    assert scans.loc[uid, "slice_thickness_mm"] == 10.0
    assert scans.loc[uid, "slice_increment_mm"] == pytest.approx(10.0)
    assert scans.loc[uid, "pixel_spacing_mm"] == pytest.approx(0.388672)
    ds = pydicom.dcmread(src)
    expected = ds.pixel_array.astype(np.int32) - 1024  # shared rescale: slope 1, -1024
    vol = read_volume(out_dir / f"{uid}.nii")
    # rows run -x: the normal is -z, so the stack goes from z = -149 (frame 2) to -159
    np.testing.assert_array_equal(vol.array, expected[::-1])
    assert vol.geometry.origin[2] == pytest.approx(-149.0)


# --- the real de-identified chest CTs, stripped as the public release strips them ---------

REAL_SERIES = 5


@pytest.mark.skipif(not REAL_CT.is_dir(), reason="shared/data/real_ct not present")
def test_real_series_without_uids_all_accounted_for(tmp_path) -> None:
    """The five real series with SeriesInstanceUID / StudyInstanceUID removed and UIDs with
    leading-zero components (as in the public release): five ok rows, none vanishes."""
    dicom = tmp_path / "export"
    files = sorted(p for p in REAL_CT.rglob("*.dcm"))
    for k, p in enumerate(files):
        ds = pydicom.dcmread(p)
        for name in STRIP:
            delattr(ds, name)
        ds.SOPInstanceUID = f"2.0256.{k:04d}.1"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        out = dicom / p.relative_to(REAL_CT)
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(out)
    scans = convert(dicom, tmp_path / "out", gantry_tilt="exclude")
    assert len(scans) == REAL_SERIES
    assert (scans["status"] == "ok").all(), scans["reason_detail"].tolist()
    assert sorted(scans["n_slices"]) == [30, 30, 64, 64, 275]


def test_compressed_multiframe_is_decoded_frame_by_frame(dicom_dir, out_dir) -> None:
    from pydicom.uid import RLELossless

    spec = SeriesSpec()
    hu = phantom(12)
    path = write_multiframe_ct(hu, dicom_dir / "mf.dcm", spec)
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(path)
    scans = convert(dicom_dir, out_dir)
    assert scans.loc[spec.series_uid, "status"] == "ok", scans["reason_detail"].tolist()
    np.testing.assert_array_equal(read_volume(out_dir / f"{spec.series_uid}.nii").array, hu)


def test_series_without_uids_in_two_folders_are_never_one_stack(
    write_series, dicom_dir, out_dir
) -> None:
    """Other matrices at interleaved positions in another folder are another series, not
    an inconsistent stack."""
    _, _, a = write_series("p1", increment_mm=2.0, slice_thickness_mm=2.0)
    _, _, b = write_series(
        "p2",
        increment_mm=2.0,
        slice_thickness_mm=2.0,
        origin=(-100.0, -120.0, -49.0),
        pixel_spacing=(0.8, 0.8),
    )
    edit(a + b, delete=STRIP)
    scans = convert(dicom_dir, out_dir)
    assert scans["status"].tolist() == ["ok", "ok"], scans["reason_detail"].tolist()
