"""The lean single-folder convert path gives the same outputs as the DataFrame path.

``cacflow convert DICOM_DIR OUT_DIR`` avoids importing pandas and SimpleITK (start-up was
most of its gap to dcm2niix): the manifest travels as plain rows, the scans table is built
from Arrow buffers, and identity-direction volumes are written by a NIfTI-1 writer of our
own. These tests pin that each shortcut writes exactly what the code it bypasses writes.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import SimpleITK as sitk

from cacflow.dicom.convert import (
    SCANS_FILE,
    SCANS_SCHEMA,
    QcConfig,
    convert_batch,
    convert_dir,
    convert_dir_table,
    scans_table,
)
from cacflow.dicom.discover import discover, discover_rows, iter_files, read_headers
from cacflow.dicom.write import SeriesSpec, phantom, write_ct_series
from cacflow.provenance import read_meta, write_table
from cacflow.volume import (
    Geometry,
    Volume,
    _direct_writable,
    _write_nifti_direct,
    read_volume,
    to_sitk,
    write_volume,
)

NIFTI_DTYPES = (np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.float32)


# --- NIfTI writer ------------------------------------------------------------------------
def _sitk_bytes(vol: Volume, path: Path) -> bytes:
    sitk.WriteImage(to_sitk(vol), str(path), useCompression=False)
    return path.read_bytes()


@pytest.mark.parametrize("dtype", [*NIFTI_DTYPES, np.float64])
def test_direct_nifti_writer_is_byte_identical_to_simpleitk(tmp_path: Path, dtype) -> None:
    rng = np.random.default_rng(3)
    origins = [*itertools.product((0.0, -0.0, -174.3), repeat=3), (12.5, -30.0, 101.0)]
    for k, origin in enumerate(origins):
        arr = (rng.normal(size=(3, 4, 5)) * 40).astype(dtype)
        if k % 2:
            arr = arr[:, ::-1, :]  # not C-contiguous
        spacing = (0.7, 0.7, 1.0 / 3.0) if k % 3 else tuple(rng.uniform(0.2, 5.0, 3))
        vol = Volume(arr, Geometry(origin=origin, spacing=spacing))
        assert _direct_writable(vol)
        _write_nifti_direct(vol, tmp_path / "ours.nii")
        assert (tmp_path / "ours.nii").read_bytes() == _sitk_bytes(vol, tmp_path / "itk.nii")


def test_direct_nifti_reads_back_with_simpleitk(tmp_path: Path) -> None:
    arr = np.arange(300 * 7 * 9, dtype=np.int16).reshape(300, 7, 9) - 1024
    geom = Geometry(origin=(-174.3, -12.25, -60.123456789), spacing=(0.7, 0.68, 1.25))
    path = tmp_path / "v.nii"
    write_volume(Volume(arr, geom, {"series_uid": "1.2"}), path)
    img = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), arr)
    assert img.GetPixelID() == sitk.sitkInt16
    f32 = np.float32
    assert img.GetSpacing() == tuple(float(f32(v)) for v in geom.spacing)
    assert img.GetOrigin() == tuple(float(f32(v)) for v in geom.origin)
    assert img.GetDirection() == geom.direction
    back = read_volume(path)  # the sidecar restores full precision
    assert back.geometry == geom
    np.testing.assert_array_equal(back.array, arr)


def test_other_volumes_still_go_through_simpleitk(tmp_path: Path) -> None:
    c, s = np.cos(0.3), np.sin(0.3)
    oblique = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
    flipped = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    negative_zero = (1.0, -0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    arr = np.zeros((2, 3, 4), np.int16)
    for direction in (oblique, flipped, negative_zero):
        vol = Volume(arr, Geometry((1.0, 2.0, 3.0), (0.5, 0.5, 2.0), direction))
        assert not _direct_writable(vol)
        write_volume(vol, tmp_path / "v.nii")
        assert (tmp_path / "v.nii").read_bytes() == _sitk_bytes(vol, tmp_path / "itk.nii")
    for odd in (arr.astype(">i2"), arr.astype(np.int64), arr[0]):
        assert not _direct_writable(Volume(odd, Geometry((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))))


# --- scans table -------------------------------------------------------------------------
def _scans_row(**kw) -> dict:
    row = dict.fromkeys(SCANS_SCHEMA.names)
    row.update(kw)
    return row


def test_scans_table_equals_from_pylist() -> None:
    rows = [
        _scans_row(
            series_uid="1.2.3",
            status="ok",
            patient_id="Zoë-µ",
            slice_thickness_mm=1.0,
            slice_increment_mm=0.7000000000000001,
            pixel_spacing_mm=0.68,
            n_slices=300,
            rows=512,
            columns=512,
            n_files=301,
        ),
        _scans_row(series_uid="1.2.4", status="excluded", reason="gap", reason_detail=""),
        _scans_row(series_uid="1.2.5", status="ok", slice_thickness_mm=3, n_files=0),
    ]
    for subset in (rows, rows[:1], rows[1:2], []):
        ours = scans_table(subset)
        assert ours.equals(pa.Table.from_pylist(subset, schema=SCANS_SCHEMA))
        assert ours.to_pylist() == pa.Table.from_pylist(subset, schema=SCANS_SCHEMA).to_pylist()
    # a value of another kind goes through pyarrow's own conversion
    odd = [_scans_row(series_uid="x", n_slices=np.int64(4), slice_thickness_mm=np.float32(2))]
    assert scans_table(odd).equals(pa.Table.from_pylist(odd, schema=SCANS_SCHEMA))


# --- the whole folder --------------------------------------------------------------------
def _cohort(root: Path) -> None:
    """Three ok series (one with a second rescale), one too short, one not CT."""
    for i, spec in enumerate(
        [
            SeriesSpec(),
            SeriesSpec(increment_mm=2.5, slice_thickness_mm=3.0, kernel="B45f"),
            SeriesSpec(rescale_slope=1.0, rescale_intercept=-1000.0, patient_id="P0002"),
            SeriesSpec(),
            SeriesSpec(modality="MR"),
        ]
    ):
        n = 4 if i == 3 else 12
        write_ct_series(phantom(n, seed=i), root / f"s{i}", spec)


def test_convert_dir_writes_what_the_dataframe_path_writes(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    _cohort(src)
    lean, old = tmp_path / "lean", tmp_path / "old"
    table = convert_dir_table(src, lean, QcConfig(), workers=2)

    # the DataFrame path: discover -> convert_batch -> write_table(DataFrame)
    manifest, counts = discover(src, workers=2)
    scans = convert_batch(manifest, old, QcConfig(), workers=2)
    write_table(scans, old / SCANS_FILE, read_meta(lean / SCANS_FILE), schema=SCANS_SCHEMA)

    assert pq.read_table(lean / SCANS_FILE).equals(pq.read_table(old / SCANS_FILE))
    assert pq.read_schema(lean / SCANS_FILE).metadata == pq.read_schema(old / SCANS_FILE).metadata
    assert table.equals(pq.read_table(old / SCANS_FILE))
    assert sorted(table.column("status").to_pylist()) == ["excluded", "excluded"] + ["ok"] * 3
    assert read_meta(lean / SCANS_FILE)["count.n_files"] == str(counts["n_files"])
    names = sorted(p.name for p in lean.iterdir())
    assert names == sorted(p.name for p in old.iterdir())
    assert len([n for n in names if n.endswith(".nii")]) == 3
    for name in names:
        if name != SCANS_FILE:
            assert (lean / name).read_bytes() == (old / name).read_bytes(), name
    # convert_dir (the public DataFrame API) is the same table
    again = convert_dir(src, tmp_path / "again", QcConfig())
    assert pa.Table.from_pandas(again, schema=SCANS_SCHEMA, preserve_index=False).equals(table)


def test_discover_rows_are_the_manifest_rows(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    _cohort(src)
    rows, counts = discover_rows(src)
    frame, frame_counts = discover(src)
    assert counts == frame_counts
    assert [r["series_uid"] for r in rows] == frame["series_uid"].tolist()
    for raw, rec in zip(rows, frame.to_dict("records"), strict=True):
        for key, value in raw.items():
            if value is None and isinstance(rec[key], float):
                assert np.isnan(rec[key])
            else:
                assert rec[key] == value, key


def test_header_pool_equals_in_process(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    _cohort(src)
    paths = iter_files(src)
    assert read_headers(paths, 2, min_parallel=0) == read_headers(paths, 1)


def test_cli_convert_imports_neither_pandas_nor_simpleitk(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    write_ct_series(phantom(12), src / "s", SeriesSpec())
    code = (
        "import sys\n"
        "from cacflow.cli import main\n"
        "rc = main(['convert', sys.argv[1], sys.argv[2], '--workers', '2'])\n"
        "heavy = sorted(m for m in ('pandas', 'SimpleITK', 'scipy') if m in sys.modules)\n"
        "print(rc, heavy)\n"
    )
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-c", code, str(src), str(out)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "0 []"
    assert len(list(out.glob("*.nii"))) == 1
    side = json.loads(next(out.glob("*.json")).read_text())
    assert side["n_slices"] == 12
