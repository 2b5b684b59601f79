"""cacflow.study.timepoints: exam keys, days since the first exam, timepoint labels."""

from __future__ import annotations

import pandas as pd

from cacflow.study.timepoints import assign_timepoints, days_from_dates, series_exams


def test_days_from_dates_hand_case() -> None:
    pid = pd.Series(["a", "a", "a", "b"])
    dates = pd.Series(["20200301", "20190301", "20210301", "20100101"])
    assert days_from_dates(pid, dates).tolist() == [366, 0, 731, 0]


def test_exam_table_dates_become_days_and_are_dropped() -> None:
    scans = pd.DataFrame({"series_uid": ["s1", "s2", "s3"], "patient_id": "x", "status": "ok"})
    table = pd.DataFrame(
        {
            "series_uid": ["s1", "s2", "s3"],
            "exam_id": ["e1", "e1", "e2"],
            "patient_id": ["P", "P", "P"],
            "study_date": ["2018-05-01", "2018-05-01", "2020-05-01"],
        }
    )
    out, source = series_exams(scans, table)
    assert source == "exam_table"
    assert "study_date" not in out.columns
    assert out["days"].tolist() == [0, 0, 731]
    assert set(out["patient_id"]) == {"P"}  # the exam table's participant wins


def test_fallbacks_study_uid_then_patient() -> None:
    scans = pd.DataFrame({"series_uid": ["s1", "s2"], "patient_id": ["P", "P"]})
    out, source = series_exams(scans.assign(study_uid=["u1", "u2"]))
    assert source == "study_uid" and out["exam_id"].tolist() == ["u1", "u2"]
    out, source = series_exams(scans)
    assert source == "patient" and out["exam_id"].tolist() == ["P", "P"]


def test_timepoints_from_day_order_and_from_a_table() -> None:
    exams = pd.DataFrame(
        {
            "patient_id": ["P", "P", "P", "Q"],
            "exam_id": ["x", "y", "z", "w"],
            "days": [700, 0, 300, 0],
        }
    )
    out = assign_timepoints(exams).set_index("exam_id")
    assert out["timepoint"].to_dict() == {"y": "T0", "z": "T1", "x": "T2", "w": "T0"}
    table = pd.DataFrame({"exam_id": ["x", "y", "z", "w"], "timepoint": ["T2", "T0", "T10", "T1"]})
    out = assign_timepoints(exams, table).set_index("exam_id")
    assert out["visit"].to_dict() == {"y": 0, "x": 1, "z": 2, "w": 0}  # T10 after T2


def test_dicom_dates_read_as_numbers() -> None:
    pid = pd.Series(["a", "a"])
    assert days_from_dates(pid, pd.Series([20200101, 20200111])).tolist() == [0, 10]
