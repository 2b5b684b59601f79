"""Exams from DICOM headers: StudyInstanceUID keys the exam, StudyDate becomes days since
the patient's first study in the manifest (never the date itself)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cacflow.dicom.discover import discover
from cacflow.dicom.write import SeriesSpec, ct_slice, phantom
from cacflow.study.exams import SelectionRule, select_exams
from cacflow.study.run import with_study_keys
from cacflow.study.timepoints import assign_timepoints, series_exams


def _write(root: Path, spec: SeriesSpec, study_date: str, n: int = 3) -> None:
    hu = phantom(n, 16, 16)
    for k in range(n):
        ds = ct_slice(hu[k], spec, k)
        ds.StudyDate = study_date
        out = root / spec.series_uid / f"{k}.dcm"
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(out, enforce_file_format=True)


def test_study_uid_and_days_from_headers(tmp_path: Path) -> None:
    t0 = SeriesSpec(patient_id="P1", study_uid="1.2.3.1", series_uid="1.2.3.1.1")
    t0b = SeriesSpec(patient_id="P1", study_uid="1.2.3.1", series_uid="1.2.3.1.2", kernel="B70f")
    t1 = SeriesSpec(patient_id="P1", study_uid="1.2.3.2", series_uid="1.2.3.2.1")
    other = SeriesSpec(patient_id="P2", study_uid="1.2.3.9", series_uid="1.2.3.9.1")
    _write(tmp_path / "dicom", t0, "20100101")
    _write(tmp_path / "dicom", t0b, "20100101")
    _write(tmp_path / "dicom", t1, "20120101")
    _write(tmp_path / "dicom", other, "20150607")
    manifest, _ = discover(tmp_path / "dicom")
    assert "study_date" not in manifest.columns
    days = manifest.set_index("series_uid")["study_days"].to_dict()
    assert days == {"1.2.3.1.1": 0, "1.2.3.1.2": 0, "1.2.3.2.1": 730, "1.2.3.9.1": 0}
    path = tmp_path / "manifest.parquet"
    manifest.to_parquet(path)
    assert "20100101" not in path.read_bytes().decode("latin-1")
    scans = manifest[["series_uid", "patient_id", "status", "kernel", "slice_thickness_mm"]]
    series, source = series_exams(with_study_keys(scans, path))
    assert source == "study_uid"
    exams = select_exams(series, SelectionRule())
    exams = exams.merge(
        series.groupby(["patient_id", "exam_id"])["days"].min().reset_index(),
        on=["patient_id", "exam_id"],
    )
    exams = assign_timepoints(exams).set_index("exam_id")
    assert exams.loc["1.2.3.1", "series_uid"] == "1.2.3.1.1"  # the soft kernel of two
    assert exams["timepoint"].to_dict() == {"1.2.3.1": "T0", "1.2.3.2": "T1", "1.2.3.9": "T0"}
    assert pd.api.types.is_integer_dtype(exams["days"])
