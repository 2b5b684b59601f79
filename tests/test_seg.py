"""DICOM SEG export (cacflow.seg): read back with pydicom and highdicom, geometry and labels
checked voxel for voxel, identifiers blank, reruns byte-identical; the `seg` step on a
discovered series and on the tiny workflow run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest

from cacflow.conventions import Label
from cacflow.dicom.write import SeriesSpec, ct_slice, write_multiframe_ct
from cacflow.seg import (
    BLANKED_IDENTIFIERS,
    CONTENT_DATE,
    CONTENT_TIME,
    export_report_segs,
    plane_positions,
    write_dicom_seg,
)
from cacflow.volume import Geometry, Volume, read_geometry, read_volume, write_volume

SPEC = SeriesSpec(
    pixel_spacing=(0.8, 0.6), increment_mm=1.5, slice_thickness_mm=3.0, origin=(-50, -60, -200)
)
SHAPE = (6, 16, 20)
# the mask's grid equals the source grid: origin, (column, row, slice) spacing
GEOM = Geometry(origin=(-50.0, -60.0, -200.0), spacing=(0.6, 0.8, 1.5), slice_thickness_mm=3.0)
# identifying values a source may carry: none may reach a SEG
IDENTIFYING = {
    "PatientName": "Doe^Jane",
    "PatientID": "P-SECRET-17",
    "PatientBirthDate": "19511231",
    "PatientSex": "F",
    "PatientAge": "071Y",
    "OtherPatientIDs": "OTHER-ID-99",
    "StudyDate": "20230405",
    "StudyTime": "101112",
    "SeriesDate": "20230405",
    "AcquisitionDateTime": "20230405101530",
    "AccessionNumber": "ACC-4242",
    "StudyID": "ST-77",
    "ReferringPhysicianName": "House^Gregory",
    "InstitutionName": "Secret General Hospital",
    "StudyDescription": "CALCIUM SCORE SECRET",
}
DATE_VRS = ("DA", "DT", "TM")


def sources(tmp_path: Path | None = None, spec: SeriesSpec = SPEC) -> list[pydicom.Dataset]:
    """The source series: real DICOM files with every identifier of :data:`IDENTIFYING`,
    written and read back (headers only) when ``tmp_path`` is given."""
    hu = np.zeros(SHAPE, dtype=np.int16)
    slices = [ct_slice(hu[k], spec, k) for k in range(SHAPE[0])]
    if tmp_path is None:
        return slices
    for k, ds in enumerate(slices):
        for keyword, value in IDENTIFYING.items():
            setattr(ds, keyword, value)
        pydicom.dcmwrite(tmp_path / f"IM{k}.dcm", ds, enforce_file_format=True)
    return [
        pydicom.dcmread(tmp_path / f"IM{k}.dcm", stop_before_pixels=True) for k in range(SHAPE[0])
    ]


def mask() -> np.ndarray:
    m = np.zeros(SHAPE, dtype=np.uint8)
    m[2, 3:5, 4:7] = Label.LAD
    m[3, 3, 4] = Label.LM
    m[4, 10, 12] = Label.AV
    return m


def mask_from_frames(seg: pydicom.Dataset, geometry: Geometry, shape: tuple) -> np.ndarray:
    """The label mask of a SEG rebuilt frame by frame: each frame's plane position mapped
    to its slice of ``geometry`` (must be an integer index), its segment number painted."""
    out = np.zeros(shape, dtype=np.uint8)
    frames = seg.pixel_array.reshape(-1, *shape[1:])
    for item, frame in zip(seg.PerFrameFunctionalGroupsSequence, frames, strict=True):
        xyz = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        i, j, k = geometry.world_to_index(np.asarray(xyz))
        assert abs(i) < 1e-3 and abs(j) < 1e-3 and abs(k - round(k)) < 1e-3, (i, j, k)
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        out[int(round(k))][frame > 0] = number
    return out


def test_seg_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "seg.dcm"
    write_dicom_seg(mask(), GEOM, sources(), path, method="reference")
    seg = hd.seg.segread(path)
    assert seg.Modality == "SEG"
    numbers = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    assert numbers == {int(lab): lab.name for lab in Label if int(lab) <= int(Label.AV)}
    assert str(seg.PatientName) == "" and seg.PatientBirthDate == "" and seg.PatientID == ""
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


def test_seg_blanks_every_identifier_and_keeps_the_uids(tmp_path: Path) -> None:
    """Written from real source files carrying names, IDs, dates: pydicom finds them empty
    or absent, no date but the fixed content date, and the alignment UIDs kept."""
    src = sources(tmp_path)
    path = tmp_path / "seg.dcm"
    write_dicom_seg(mask(), GEOM, src, path, method="hu-threshold")
    ds = pydicom.dcmread(path)
    for keyword in BLANKED_IDENTIFIERS:
        assert str(ds.get(keyword, "")) == "", keyword
    for keyword in set(IDENTIFYING) - set(BLANKED_IDENTIFIERS):
        assert keyword not in ds, keyword
    dates = {e.keyword: str(e.value) for e in ds.iterall() if e.VR in DATE_VRS and e.value}
    assert dates == {"ContentDate": CONTENT_DATE, "ContentTime": CONTENT_TIME}
    blob = path.read_bytes()
    for value in IDENTIFYING.values():
        assert len(value) < 3 or value.encode() not in blob, value
    assert ds.StudyInstanceUID == SPEC.study_uid
    assert ds.FrameOfReferenceUID == SPEC.frame_uid
    (ref,) = ds.ReferencedSeriesSequence
    assert ref.SeriesInstanceUID == SPEC.series_uid
    assert {i.ReferencedSOPInstanceUID for i in ref.ReferencedInstanceSequence} == {
        s.SOPInstanceUID for s in src
    }
    assert ds.SeriesInstanceUID != SPEC.series_uid


def test_seg_keeps_identifiers_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "seg.dcm"
    write_dicom_seg(mask(), GEOM, sources(tmp_path), path, method="m1", keep_identifiers=True)
    seg = hd.seg.segread(path)
    assert str(seg.PatientName) == IDENTIFYING["PatientName"]
    assert seg.PatientID == IDENTIFYING["PatientID"]
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"


def test_seg_on_a_resampled_grid_equals_the_mask_voxel_for_voxel(tmp_path: Path) -> None:
    """Analysis grid != source grid (other origin, slice spacing, thickness): every frame
    sits at its slice's plane position and the mask rebuilt from the frames is the mask."""
    geometry = Geometry(
        origin=(-49.4, -59.2, -199.25), spacing=(0.6, 0.8, 2.0), slice_thickness_mm=4.0
    )
    m = mask()
    m[0, 0, 0] = Label.TAC  # first slice and corner voxel
    m[5, 15, 19] = Label.RCA  # last slice and corner voxel
    path = tmp_path / "seg.dcm"
    write_dicom_seg(m, geometry, sources(tmp_path), path, method="segment")
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(mask_from_frames(ds, geometry, m.shape), m)
    got = [
        [float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]
        for f in ds.PerFrameFunctionalGroupsSequence
    ]
    want = plane_positions(geometry, m.shape[0])
    slices = sorted({int(k) for k in np.nonzero(m)[0]})
    np.testing.assert_allclose(sorted(got, key=lambda p: p[2]), want[slices], atol=1e-6)
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert [float(v) for v in measures.PixelSpacing] == [0.8, 0.6]  # row, column
    assert float(measures.SpacingBetweenSlices) == 2.0 and float(measures.SliceThickness) == 4.0


def test_seg_rerun_is_byte_identical(tmp_path: Path) -> None:
    src = sources(tmp_path)
    a, b, c = (tmp_path / f"{n}.dcm" for n in "abc")
    write_dicom_seg(mask(), GEOM, src, a, method="hu-threshold")
    write_dicom_seg(mask(), GEOM, src, b, method="hu-threshold")
    write_dicom_seg(mask(), GEOM, src, c, method="reference")
    assert a.read_bytes() == b.read_bytes()
    da, dc = pydicom.dcmread(a), pydicom.dcmread(c)
    assert da.SeriesInstanceUID != dc.SeriesInstanceUID
    assert da.SOPInstanceUID != dc.SOPInstanceUID


def test_seg_of_a_multiframe_source(tmp_path: Path) -> None:
    path = write_multiframe_ct(np.zeros(SHAPE, np.int16), tmp_path / "mf.dcm", SPEC)
    src = pydicom.dcmread(path, stop_before_pixels=True)
    write_dicom_seg(mask(), GEOM, [src], tmp_path / "seg.dcm")
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    np.testing.assert_array_equal(mask_from_frames(ds, GEOM, SHAPE), mask())
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == SPEC.series_uid


def test_seg_refuses_empty_and_unknown_masks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no labelled voxel"):
        write_dicom_seg(np.zeros(SHAPE, np.uint8), GEOM, sources(), tmp_path / "a.dcm")
    bad = mask()
    bad[0, 0, 0] = 12
    with pytest.raises(ValueError, match="not cacflow Labels"):
        write_dicom_seg(bad, GEOM, sources(), tmp_path / "b.dcm")


# --- the `seg` step ------------------------------------------------------------------------
def _dataset(tmp_path: Path) -> tuple[Path, Path, pd.DataFrame, pd.DataFrame]:
    """Two discovered DICOM series (work folder: analysis volumes on the source grid, a
    reference mask each, hu-threshold masks; one labels nothing)."""
    from cacflow.dicom.discover import assign_batches, discover

    for name in ("a", "b"):
        d = tmp_path / "dicom" / name
        d.mkdir(parents=True)
        sources(d, SeriesSpec(**{**SPEC.__dict__, "series_uid": pydicom.uid.generate_uid()}))
    manifest, _ = discover(tmp_path / "dicom")
    path = tmp_path / "manifest.parquet"
    manifest.to_parquet(path)
    work = tmp_path / "work"
    uids = list(manifest["series_uid"])
    for uid, b in assign_batches(manifest, 1)[["series_uid", "batch"]].itertuples(index=False):
        write_volume(Volume(np.zeros(SHAPE, np.int16), GEOM), work / "resampled" / b / f"{uid}.nii")
        write_volume(Volume(mask(), GEOM), work / "labels" / "reference" / b / f"{uid}.nii")
        method = mask() if uid == uids[0] else np.zeros(SHAPE, np.uint8)
        write_volume(Volume(method, GEOM), work / "labels" / "hu-threshold" / b / f"{uid}.nii")
    scans = pd.DataFrame({"series_uid": uids, "status": "ok", "reason": None})
    totals = {"reference": [200.0, 200.0], "hu-threshold": [200.0, 0.0], "direct": [190.0, 195.0]}
    scores = pd.DataFrame(
        [
            {"series_uid": u, "method": m, "artery": "total", "agatston": v[i]}
            for m, v in totals.items()
            for i, u in enumerate(uids)
        ]
    )
    return work, path, scans, scores


def test_the_step_writes_the_pictured_scans_of_each_label_source(tmp_path: Path) -> None:
    work, manifest, scans, scores = _dataset(tmp_path)
    settings = {"methods": ["hu-threshold", "direct"], "batch_size": 1}
    out = tmp_path / "seg"
    index = export_report_segs(work, manifest, settings, scans, scores, out)
    uids = list(scans["series_uid"])
    # the second scan is the outlier (hu-threshold 0 vs reference 200), pictured first;
    # direct writes no masks, hu-threshold labelled nothing on the outlier: no file
    assert list(zip(index["series_uid"], index["source"], index["why"], strict=True)) == [
        (uids[1], "reference", "outlier"),
        (uids[1], "hu-threshold", "outlier"),
        (uids[0], "reference", "sample"),
        (uids[0], "hu-threshold", "sample"),
    ]
    assert index["file"].isna().tolist() == [False, True, False, False]
    assert index.loc[0, "segments"] == "LAD LM AV" and index.loc[1, "n_voxels"] == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.dcm")) == sorted(
        index["file"].dropna()
    )
    assert pd.read_parquet(out / "index.parquet").equals(index)
    ds = pydicom.dcmread(out / index.loc[0, "file"])
    for image in (work / "resampled").rglob(f"{uids[0]}.nii"):
        image.unlink()  # a cleaned work folder: that scan is left out, the others written
    again = export_report_segs(work, manifest, settings, scans, scores, tmp_path / "again")
    assert set(again["series_uid"]) == {uids[1]}
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID in set(
        pd.read_parquet(manifest)["dicom_series_uid"]
    )
    np.testing.assert_array_equal(mask_from_frames(ds, GEOM, SHAPE), mask())


# --- the workflow ---------------------------------------------------------------------------
def _seg_dir(run: Path) -> Path:
    return run / "results" / "tiny" / "seg"


@pytest.mark.slow
def test_the_run_writes_a_seg_per_pictured_scan_and_source(tiny_run: Path) -> None:
    """Every SEG of the tiny run: identifiers blank (the synthetic DICOM has them all), the
    source series referenced, the mask on the analysis grid voxel for voxel; the report
    links each with a relative link."""
    from cacflow.dicom.discover import assign_batches

    seg_dir = _seg_dir(tiny_run)
    index = pd.read_parquet(seg_dir / "index.parquet")
    assert set(index["source"]) == {"reference", "hu-threshold"}  # direct: no masks
    assert set(index["why"]) <= {"outlier", "sample"} and index["file"].notna().sum() >= 2
    manifest = pd.read_parquet(tiny_run / "results" / "tiny" / "manifest.parquet")
    batches = assign_batches(manifest, 4).set_index("series_uid")["batch"]
    dicom_uid = manifest.set_index("series_uid")["dicom_series_uid"]
    page = (tiny_run / "results" / "tiny" / "report.html").read_text()
    work = tiny_run / "results" / "tiny" / "work"
    for row in index.dropna(subset=["file"]).itertuples():
        ds = pydicom.dcmread(seg_dir / row.file)
        for keyword in BLANKED_IDENTIFIERS:
            assert str(ds.get(keyword, "")) == "", (row.file, keyword)
        assert {e.keyword for e in ds.iterall() if e.VR in DATE_VRS and e.value} == {
            "ContentDate",
            "ContentTime",
        }
        assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == dicom_uid[row.series_uid]
        b = batches[row.series_uid]
        geometry = read_geometry(work / "resampled" / b / f"{row.series_uid}.nii")
        labels = read_volume(work / "labels" / row.source / b / f"{row.series_uid}.nii").array
        np.testing.assert_array_equal(mask_from_frames(ds, geometry, labels.shape), labels)
        assert f'href="seg/{row.file}"' in page
    assert str(tiny_run) not in page


@pytest.mark.slow
def test_the_step_rerun_writes_identical_files(tiny_run: Path, tmp_path: Path) -> None:
    """`cacflow seg` again on the run's tables and work folder: the same files, byte for
    byte (UIDs derived, no clock time)."""
    import yaml

    from wf import BIN

    seg_dir = _seg_dir(tiny_run)
    res = tiny_run / "results" / "tiny"
    config = yaml.safe_load((tiny_run / "config" / "config.yaml").read_text())
    config |= yaml.safe_load((tiny_run / "tiny.yaml").read_text())
    settings = {k: config[k] for k in ("methods", "batch_size")}
    out = tmp_path / "seg"
    cmd = [str(BIN / "cacflow"), "seg", str(res / "work"), str(res / "manifest.parquet")]
    cmd += ["--scans", str(res / "scans.parquet"), "--scores", str(res / "scores.parquet")]
    cmd += ["--settings", json.dumps(settings), "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=tiny_run, capture_output=True)
    first = sorted(p.relative_to(seg_dir) for p in seg_dir.rglob("*.dcm"))
    assert first == sorted(p.relative_to(out) for p in out.rglob("*.dcm")) and first
    for rel in first:
        assert (seg_dir / rel).read_bytes() == (out / rel).read_bytes(), rel


@pytest.mark.slow
def test_report_seg_false_drops_the_rule(tiny_run: Path) -> None:
    """Config `report.seg: false`: the report no longer asks for the SEG folder (a dry run
    plans the report again, without rule seg); the default plans nothing."""
    import yaml

    from wf import run_snakemake

    off = tiny_run / "seg_off.yaml"
    off.write_text(yaml.safe_dump({"report": {"seg": False}}))
    cfg = str(tiny_run / "tiny.yaml")
    proc = run_snakemake(tiny_run, "-n", "--configfile", cfg, str(off), "--forcerun", "report")
    text = proc.stdout + proc.stderr
    assert "rule report:" in text or "localrule report:" in text
    assert "rule seg:" not in text and "results/tiny/seg" not in text
    forced = run_snakemake(tiny_run, "-n", "--configfile", cfg, "--forcerun", "report").stdout
    assert "results/tiny/seg" in forced  # the default: the SEG folder is the report's input
