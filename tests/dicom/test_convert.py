"""The hostile corpus: real files written by pydicom (and pydicom's shipped files), each
kind of trouble with the outcome it must get, end to end through ``convert_dir``."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from cacflow.conventions import PADDING_HU, Reason
from cacflow.dicom.convert import SCANS_SCHEMA, QcConfig, convert_batch, convert_dir
from cacflow.dicom.discover import assign_batches, discover
from cacflow.provenance import read_meta
from cacflow.volume import read_volume

from .conftest import N_SLICES


def convert(dicom_dir: Path, out_dir: Path, **qc) -> pd.DataFrame:
    scans = convert_dir(dicom_dir, out_dir, QcConfig(**qc))
    return scans.set_index("series_uid")


def volume(out_dir: Path, uid: str):
    return read_volume(out_dir / f"{uid}.nii")


def edit(paths, **attrs) -> None:
    for p in paths:
        ds = pydicom.dcmread(p)
        for k, v in attrs.items():
            setattr(ds, k, v)
        ds.save_as(p)


def assert_reason(scans: pd.DataFrame, uid: str, reason: Reason) -> None:
    row = scans.loc[uid]
    assert (row["status"], row["reason"]) == ("excluded", reason.value), row["reason_detail"]


# --- the clean case and the order of slices ----------------------------------------------


def test_clean_series_volume_geometry_and_row(write_series, dicom_dir, out_dir) -> None:
    hu, spec, _ = write_series(
        pixel_spacing=(0.6, 0.8), increment_mm=1.25, slice_thickness_mm=2.0, kernel="B31f"
    )
    scans = convert(dicom_dir, out_dir)
    row = scans.loc[spec.series_uid]
    assert row["status"] == "ok" and pd.isna(row["reason"])
    assert row["slice_thickness_mm"] == 2.0
    assert row["slice_increment_mm"] == pytest.approx(1.25)
    assert (row["pixel_spacing_mm"], row["pixel_spacing_col_mm"]) == (0.6, 0.8)
    assert (row["n_slices"], row["rows"], row["columns"], row["n_files"]) == (12, 32, 32, 12)
    assert (row["kernel"], row["manufacturer"], row["modality"]) == ("B31f", "ACME", "CT")
    v = volume(out_dir, spec.series_uid)
    np.testing.assert_array_equal(v.array, hu)
    assert v.array.dtype == np.int16
    g = v.geometry
    np.testing.assert_allclose(g.origin, spec.origin, atol=1e-4)
    # spacing (column, row, increment): PixelSpacing is (row spacing, column spacing)
    np.testing.assert_allclose(g.spacing, (0.8, 0.6, 1.25), atol=1e-6)
    np.testing.assert_allclose(g.direction, np.eye(3).ravel(), atol=1e-9)
    assert g.slice_thickness_mm == 2.0
    assert v.meta["series_uid"] == spec.series_uid
    assert (v.meta["kernel"], v.meta["native_slice_increment_mm"]) == ("B31f", 1.25)
    # voxel (x=3, y=5, z=7) sits at origin + 3 * 0.8 * row_dir + 5 * 0.6 * col_dir + 7 * 1.25 z
    expected = np.asarray(spec.origin) + [3 * 0.8, 5 * 0.6, 7 * 1.25]
    np.testing.assert_allclose(g.index_to_world(np.array([3, 5, 7])), expected, atol=1e-4)


def test_reversed_and_shuffled_files_give_the_identical_volume(tmp_path: Path) -> None:
    from cacflow.dicom.write import SeriesSpec, phantom, write_ct_series

    hu = phantom(N_SLICES)
    fwd = SeriesSpec()
    write_ct_series(hu, tmp_path / "fwd", fwd)
    # reverse: file k holds the slice at the top, positions decrease with k
    top = np.asarray(fwd.origin) + (N_SLICES - 1) * fwd.step_vector()
    rev = SeriesSpec(origin=tuple(top), step=tuple(-fwd.step_vector()))
    write_ct_series(hu[::-1], tmp_path / "rev", rev)
    # shuffled: InstanceNumber and names in random order
    shuf = SeriesSpec()
    paths = write_ct_series(hu, tmp_path / "shuf", shuf, name="{uid}.dcm")
    perm = np.random.default_rng(1).permutation(N_SLICES)
    edit_numbers = {p: int(perm[k]) + 1 for k, p in enumerate(paths)}
    for p, num in edit_numbers.items():
        edit([p], InstanceNumber=num)
    vols = {}
    for name, spec in (("fwd", fwd), ("rev", rev), ("shuf", shuf)):
        convert_dir(tmp_path / name, tmp_path / f"o_{name}", QcConfig())
        vols[name] = read_volume(tmp_path / f"o_{name}" / f"{spec.series_uid}.nii")
    for name in ("rev", "shuf"):
        np.testing.assert_array_equal(vols[name].array, vols["fwd"].array)
        np.testing.assert_allclose(vols[name].geometry.origin, vols["fwd"].geometry.origin)
        assert vols[name].geometry.direction == vols["fwd"].geometry.direction


# --- hostile kinds -------------------------------------------------------------------------


def test_truncated_file_excludes_its_series(write_series, dicom_dir, out_dir) -> None:
    _, bad, paths = write_series("bad")
    _, good, _ = write_series("good")
    paths[4].write_bytes(paths[4].read_bytes()[:-500])
    scans = convert(dicom_dir, out_dir)
    assert_reason(scans, bad.series_uid, Reason.UNREADABLE)
    assert scans.loc[good.series_uid, "status"] == "ok"
    assert read_meta(out_dir / "scans.parquet")["count.n_unreadable"] == "1"
    assert not (out_dir / f"{bad.series_uid}.nii").exists()


def test_non_dicom_files_are_counted_not_series(write_series, dicom_dir, out_dir) -> None:
    write_series()
    (dicom_dir / "notes.txt").write_text("hello")
    (dicom_dir / "DICOMDIR").write_bytes(
        Path(get_testdata_file("DICOMDIR", read=False)).read_bytes()
    )
    scans = convert(dicom_dir, out_dir)
    assert len(scans) == 1
    meta = read_meta(out_dir / "scans.parquet")
    assert (meta["count.n_files"], meta["count.n_not_dicom"], meta["count.n_non_image"]) == (
        str(N_SLICES + 2),
        "1",
        "1",
    )


def test_duplicated_slices_under_other_names(write_series, dicom_dir, out_dir) -> None:
    hu, spec, paths = write_series()
    for p in paths[::3]:
        shutil.copy(p, p.with_name(p.stem + "_copy"))
    scans = convert(dicom_dir, out_dir)
    assert scans.loc[spec.series_uid, "status"] == "ok"
    assert scans.loc[spec.series_uid, "n_slices"] == N_SLICES
    np.testing.assert_array_equal(volume(out_dir, spec.series_uid).array, hu)


def test_missing_slice_is_a_gap(write_series, dicom_dir, out_dir) -> None:
    _, spec, paths = write_series(n=14)
    paths[6].unlink()
    scans = convert(dicom_dir, out_dir)
    assert_reason(scans, spec.series_uid, Reason.GAP)
    assert "largest 2 mm > 1.5 x median spacing 1 mm" in scans.loc[spec.series_uid, "reason_detail"]


def test_duplicate_position_with_other_sop(write_series, dicom_dir, out_dir) -> None:
    _, spec, paths = write_series()
    ds = pydicom.dcmread(paths[2])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(paths[2].with_name("resent.dcm"))
    assert_reason(convert(dicom_dir, out_dir), spec.series_uid, Reason.DUPLICATE_POSITION)


def test_two_recons_sharing_a_uid_convert_separately(write_series, dicom_dir, out_dir) -> None:
    hu1, spec, _ = write_series("a", seed=1, kernel="B30f")
    hu2, _, _ = write_series("b", seed=2, kernel="B70f", series_uid=spec.series_uid)
    scans = convert(dicom_dir, out_dir)
    uid = spec.series_uid
    assert (scans.loc[[f"{uid}_1", f"{uid}_2"], "status"] == "ok").all()
    np.testing.assert_array_equal(volume(out_dir, f"{uid}_1").array, hu1)
    np.testing.assert_array_equal(volume(out_dir, f"{uid}_2").array, hu2)
    assert volume(out_dir, f"{uid}_2").meta["kernel"] == "B70f"


def test_localizer_mixed_in_is_dropped(write_series, dicom_dir, out_dir) -> None:
    hu, spec, _ = write_series("ax")
    write_series(
        "ax",
        n=1,
        name="scout{k}.dcm",
        series_uid=spec.series_uid,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        col_dir=(0.0, 0.0, -1.0),
    )
    scans = convert(dicom_dir, out_dir)
    axial = scans[scans["n_files"] == N_SLICES].index[0]
    scout = scans[scans["n_files"] == 1].index[0]
    assert_reason(scans, scout, Reason.LOCALIZER)
    np.testing.assert_array_equal(volume(out_dir, axial).array, hu)


def tilted(write_series, degrees: float = 20.0):
    t = math.radians(degrees)
    return write_series(col_dir=(0.0, math.cos(t), math.sin(t)), step=(0.0, 0.0, 1.0))


def test_gantry_tilt_is_excluded_by_default(write_series, dicom_dir, out_dir) -> None:
    _, spec, _ = tilted(write_series)
    scans = convert(dicom_dir, out_dir)
    assert_reason(scans, spec.series_uid, Reason.GANTRY_TILT)
    assert "gantry tilt 20.00 deg" in scans.loc[spec.series_uid, "reason_detail"]


def test_gantry_tilt_resample_mode(write_series, dicom_dir, out_dir) -> None:
    hu, spec, _ = tilted(write_series)
    scans = convert(dicom_dir, out_dir, gantry_tilt="resample")
    row = scans.loc[spec.series_uid]
    assert row["status"] == "ok" and "resampled" in row["reason_detail"]
    v = volume(out_dir, spec.series_uid)
    np.testing.assert_allclose(np.asarray(v.geometry.direction).reshape(3, 3), np.eye(3), atol=1e-6)
    # the first tilted slice's centre voxel keeps its value at its world position
    centre = (
        np.asarray(spec.origin)
        + 16 * 0.7 * np.asarray(spec.row_dir)
        + 16 * 0.7 * np.asarray(spec.col_dir)
    )
    idx = np.rint(v.geometry.world_to_index(centre)).astype(int)
    assert abs(int(v.array[idx[2], idx[1], idx[0]]) - int(hu[0, 16, 16])) <= 1


def test_one_slice_series(write_series, dicom_dir, out_dir) -> None:
    hu, spec, _ = write_series(n=1)
    assert_reason(convert(dicom_dir, out_dir), spec.series_uid, Reason.TOO_FEW_SLICES)
    # with min_slices 1 it converts; the increment falls back to the slice thickness
    scans = convert(dicom_dir, out_dir, min_slices=1)
    assert scans.loc[spec.series_uid, "status"] == "ok"
    v = volume(out_dir, spec.series_uid)
    np.testing.assert_array_equal(v.array, hu)
    assert v.geometry.spacing[2] == pytest.approx(1.0)


def test_mr_image_is_not_ct(dicom_dir, out_dir) -> None:
    for name in ("MR_small.dcm", "MR_small_RLE.dcm"):
        shutil.copy(get_testdata_file(name), dicom_dir / name)
    scans = convert(dicom_dir, out_dir)
    assert (scans["reason"] == Reason.NOT_CT.value).all()


def test_no_pixel_data(write_series, dicom_dir, out_dir) -> None:
    _, spec, paths = write_series()
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.PixelData
        ds.save_as(p)
    assert_reason(convert(dicom_dir, out_dir), spec.series_uid, Reason.MISSING_PIXELS)


def test_inconsistent_pixel_spacing(write_series, dicom_dir, out_dir) -> None:
    _, spec, paths = write_series()
    edit(paths[4:5], PixelSpacing=["0.9", "0.9"])
    scans = convert(dicom_dir, out_dir)
    assert len(scans) == 2
    assert (scans["reason"] == Reason.INCONSISTENT_GEOMETRY.value).all()
    assert not list(out_dir.glob("*.nii"))


def test_irregular_slice_spacing(write_series, dicom_dir, out_dir) -> None:
    """Slices 4 and 8 sit 0.35 mm off: steps of 1.35 mm are no gap (< 1.5 x the 1 mm
    median), but those images lie 0.35 mm (> 0.2 x increment) off the uniform grid."""
    _, spec, paths = write_series()
    for k in (4, 8):
        pos = np.asarray(spec.position(k)) + [0.0, 0.0, 0.35]
        edit([paths[k]], ImagePositionPatient=[f"{v:g}" for v in pos])
    scans = convert(dicom_dir, out_dir)
    assert_reason(scans, spec.series_uid, Reason.INCONSISTENT_GEOMETRY)
    assert "irregular slice spacing" in scans.loc[spec.series_uid, "reason_detail"]


def test_rescale_intercept_varying_per_slice(write_series, dicom_dir, out_dir) -> None:
    hu, spec, paths = write_series()
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        intercept, slope = -1024.0 + 100 * k, 1.0 if k % 2 else 2.0
        stored = np.rint((hu[k].astype(float) - intercept) / slope)
        ds.RescaleIntercept, ds.RescaleSlope = f"{intercept:g}", f"{slope:g}"
        ds.PixelData = stored.astype("<i2").tobytes()
        ds.save_as(p)
    convert(dicom_dir, out_dir)
    got = volume(out_dir, spec.series_uid).array
    # slope 2 slices keep even HU exactly; odd HU round half to even in storage, then back
    expected = hu.astype(float).copy()
    for k in range(0, N_SLICES, 2):
        intercept = -1024.0 + 100 * k
        expected[k] = np.rint((hu[k] - intercept) / 2.0) * 2.0 + intercept
    np.testing.assert_array_equal(got, expected.astype(np.int16))


def test_pixel_padding_value_becomes_padding_hu(write_series, dicom_dir, out_dir) -> None:
    hu, spec, paths = write_series()
    pad_stored = -2000  # stored value, outside the field of view
    for p in paths:
        ds = pydicom.dcmread(p)
        stored = np.frombuffer(ds.PixelData, "<i2").reshape(32, 32).copy()
        stored[:, :3] = pad_stored
        ds.PixelData = stored.tobytes()
        ds.add_new(0x00280120, "SS", pad_stored)
        ds.save_as(p)
    convert(dicom_dir, out_dir)
    got = volume(out_dir, spec.series_uid).array
    assert (got[:, :, :3] == PADDING_HU).all()
    np.testing.assert_array_equal(got[:, :, 3:], hu[:, :, 3:])


@pytest.mark.parametrize(
    "syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=["rle", "jpegls", "j2k"]
)
def test_compressed_series_decode_losslessly(syntax, write_series, dicom_dir, out_dir) -> None:
    hu, spec, paths = write_series()
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(syntax, generate_instance_uid=False)
        ds.save_as(p)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == syntax
    scans = convert(dicom_dir, out_dir)
    assert scans.loc[spec.series_uid, "status"] == "ok"
    np.testing.assert_array_equal(volume(out_dir, spec.series_uid).array, hu)


@pytest.mark.parametrize("syntax", [DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_deflated_and_big_endian(syntax, write_series, dicom_dir, out_dir) -> None:
    hu, spec, paths = write_series()
    for p in paths:
        ds = pydicom.dcmread(p)
        big = syntax == ExplicitVRBigEndian
        if big:
            ds.PixelData = np.frombuffer(ds.PixelData, "<i2").astype(">i2").tobytes()
        ds.file_meta.TransferSyntaxUID = syntax
        pydicom.dcmwrite(p, ds, implicit_vr=False, little_endian=not big, force_encoding=big)
    scans = convert(dicom_dir, out_dir)
    assert scans.loc[spec.series_uid, "status"] == "ok"
    np.testing.assert_array_equal(volume(out_dir, spec.series_uid).array, hu)


def test_non_ascii_paths_and_symlink_loop(write_series, dicom_dir, out_dir) -> None:
    hu, spec, _ = write_series("Åsa Öberg/серия 1", name="スライス {k}.dcm")
    os.symlink(dicom_dir, dicom_dir / "Åsa Öberg" / "loop")
    scans = convert(dicom_dir, out_dir)
    assert scans.loc[spec.series_uid, "n_files"] == N_SLICES
    np.testing.assert_array_equal(volume(out_dir, spec.series_uid).array, hu)


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_one_bad_series_never_stops_the_batch(write_series, dicom_dir, out_dir) -> None:
    _, bad, paths = write_series("bad")
    hu, good, _ = write_series("good")
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(RLELossless, generate_instance_uid=False)
        ds.save_as(p)
    data = paths[5].read_bytes()
    paths[5].write_bytes(data[:-200] + bytes(200))  # zeros over the end of the encapsulation
    scans = convert(dicom_dir, out_dir)
    assert_reason(scans, bad.series_uid, Reason.UNREADABLE)
    assert scans.loc[bad.series_uid, "reason_detail"] == "image 5: no PixelData"
    np.testing.assert_array_equal(volume(out_dir, good.series_uid).array, hu)


# --- JPEG Lossless (no pydicom decoder here: SimpleITK/GDCM) and dcm2niix ------------------

DCM2NIIX = Path(os.environ.get("DCM2NIIX", Path(sys.executable).parent / "dcm2niix"))
needs_dcm2niix = pytest.mark.skipif(not DCM2NIIX.exists(), reason="dcm2niix not installed")


def run_dcm2niix(src: Path, dst: Path) -> Path:
    import subprocess

    dst.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(DCM2NIIX), "-z", "n", "-b", "n", "-f", "%j", "-o", str(dst), str(src)],
        check=True,
        capture_output=True,
    )
    (nii,) = dst.glob("*.nii")
    return nii


def _index_to_world(img) -> tuple[np.ndarray, np.ndarray]:
    """(matrix M, origin o) with world = o + M @ (x, y, z) for a SimpleITK image (LPS mm)."""
    d = np.asarray(img.GetDirection()).reshape(3, 3)
    return d * np.asarray(img.GetSpacing()), np.asarray(img.GetOrigin())


def world_compare(ours: Path, theirs: Path) -> None:
    """Every voxel of ours maps to a whole voxel of theirs with the same value (LPS world)."""
    import SimpleITK as sitk

    a, b = sitk.ReadImage(str(ours)), sitk.ReadImage(str(theirs))
    arr_a, arr_b = sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b)
    assert arr_a.size == arr_b.size
    (ma, oa), (mb, ob) = _index_to_world(a), _index_to_world(b)
    zyx = np.indices(arr_a.shape).reshape(3, -1)
    world = oa[:, None] + ma @ zyx[::-1]
    idx = np.linalg.solve(mb, world - ob[:, None])  # (x, y, z) indices in theirs
    assert np.abs(idx - np.rint(idx)).max() < 1e-3
    x, y, z = np.rint(idx).astype(int)
    np.testing.assert_array_equal(arr_a[zyx[0], zyx[1], zyx[2]], arr_b[z, y, x])


@needs_dcm2niix
def test_orientation_matches_dcm2niix(write_series, dicom_dir, out_dir, tmp_path) -> None:
    """Rotated in-plane axes, anisotropic pixels, feet-first file order: same world voxels."""
    a = math.radians(30.0)
    row_dir, col_dir = (math.cos(a), math.sin(a), 0.0), (-math.sin(a), math.cos(a), 0.0)
    _, spec, _ = write_series(
        n=10, row_dir=row_dir, col_dir=col_dir, pixel_spacing=(0.6, 0.9), step=(0, 0, -1.5)
    )
    convert(dicom_dir, out_dir)
    world_compare(out_dir / f"{spec.series_uid}.nii", run_dcm2niix(dicom_dir, tmp_path / "d2n"))


@needs_dcm2niix
def test_jpeg_lossless_decoded_like_dcm2niix(dicom_dir, out_dir, tmp_path) -> None:
    """pydicom's shipped JPEG Lossless frame, wrapped into a 3-slice CT series."""
    from cacflow.dicom.write import SeriesSpec, ct_slice

    src = pydicom.dcmread(get_testdata_file("JPEG-LL.dcm"))
    spec = SeriesSpec(rescale_intercept=-1024.0)
    for k in range(3):
        ds = ct_slice(np.zeros((src.Rows, src.Columns)), spec, k)
        ds.file_meta.TransferSyntaxUID = src.file_meta.TransferSyntaxUID
        ds.PixelData = src.PixelData
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.PixelRepresentation = src.PixelRepresentation
        ds.BitsStored, ds.HighBit = src.BitsStored, src.HighBit
        ds.save_as(dicom_dir / f"jll{k}.dcm")
    scans = convert(dicom_dir, out_dir, min_slices=3)
    assert scans.loc[spec.series_uid, "status"] == "ok", scans.loc[spec.series_uid, "reason_detail"]
    world_compare(out_dir / f"{spec.series_uid}.nii", run_dcm2niix(dicom_dir, tmp_path / "d2n"))


# --- tables and privacy --------------------------------------------------------------------


def test_scans_table_schema_and_batches(write_series, dicom_dir, out_dir) -> None:
    write_series("a")
    write_series("b", n=3)
    manifest, _ = discover(dicom_dir)
    batched = assign_batches(manifest, 1)
    scans = convert_batch(batched, out_dir, QcConfig(), workers=2)
    assert list(scans.columns) == SCANS_SCHEMA.names
    assert scans["series_uid"].tolist() == batched["series_uid"].tolist()
    assert scans["batch"].tolist() == ["b0000", "b0001"]
    assert sorted(scans["status"]) == ["excluded", "ok"]


def test_no_identifiers_in_any_output(write_series, dicom_dir, out_dir) -> None:
    write_series("a", patient_name="Zyxwv^Qponm", birth_date="19411207")
    _, _, paths = write_series("b", patient_name="Zyxwv^Qponm", birth_date="19411207", n=2)
    paths[0].write_bytes(paths[0].read_bytes()[:-9])
    convert(dicom_dir, out_dir)
    for f in out_dir.rglob("*"):
        data = f.read_bytes()
        for needle in (b"Zyxwv", b"Qponm", b"19411207"):
            assert needle not in data, f"{needle!r} in {f.name}"
    meta = json.loads(read_meta(out_dir / "scans.parquet")["conventions"])
    assert meta["qc"]["min_slices"] == 10


def test_undecodable_transfer_syntax_is_unsupported(write_series, dicom_dir, out_dir) -> None:
    from pydicom.encaps import encapsulate

    _, spec, paths = write_series()
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.PixelData = encapsulate([bytes(64)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML  # video: no decoder
        pydicom.dcmwrite(p, ds, implicit_vr=False, little_endian=True)
    scans = convert(dicom_dir, out_dir)
    assert_reason(scans, spec.series_uid, Reason.UNSUPPORTED_SYNTAX)
    assert pydicom.uid.MPEG2MPML in scans.loc[spec.series_uid, "reason_detail"]


def test_cli_convert_folder_and_manifest_batches(write_series, dicom_dir, tmp_path) -> None:
    """`cacflow convert DICOM_DIR OUT_DIR` and the workflow's discover + batch route agree."""
    from cacflow.cli import main

    hu, spec, _ = write_series("a")
    write_series("b", n=2)
    assert main(["convert", str(dicom_dir), str(tmp_path / "all")]) == 0
    whole = pd.read_parquet(tmp_path / "all" / "scans.parquet")
    assert sorted(whole["status"]) == ["excluded", "ok"]
    manifest = tmp_path / "manifest.parquet"
    assert main(["discover", str(dicom_dir), "--out", str(manifest), "--workers", "2"]) == 0
    for batch in ("b0000", "b0001"):
        args = ["convert", "--manifest", str(manifest), "--batch", batch, "--batch-size", "1"]
        assert main([*args, str(tmp_path / batch)]) == 0
    parts = pd.concat(pd.read_parquet(tmp_path / b / "scans.parquet") for b in ("b0000", "b0001"))
    cols = ["series_uid", "status", "reason", "n_slices"]
    pd.testing.assert_frame_equal(
        parts[cols].sort_values("series_uid").reset_index(drop=True),
        whole[cols].sort_values("series_uid").reset_index(drop=True),
    )
    (nii,) = tmp_path.glob("b000*/*.nii")  # the one usable series, in whichever batch
    np.testing.assert_array_equal(read_volume(nii).array, hu)
    assert main(["convert", str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
