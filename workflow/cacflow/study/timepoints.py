"""Exam keys and timepoints of every series; dates become days and are dropped here.

Where a series' exam comes from, first that applies:

1. the dataset's exam table (``datasets.<name>.exams``: ``series_uid, exam_id`` and
   optionally ``patient_id``, ``timepoint``, ``days`` (days since the participant's first
   exam) or ``study_date`` (any date format pandas reads; turned into days, then dropped));
2. the ``study_uid`` (StudyInstanceUID) and ``study_days`` columns of the series manifest
   (``cacflow discover`` writes days since the patient's earliest StudyDate, never dates);
3. one exam per participant (no exam information at all).

Timepoints: a ``timepoint`` column of the exam table, else the timepoints table
(``datasets.<name>.timepoints``: ``exam_id, timepoint``), else the order of ``days``
within a participant (``T0``, ``T1``, … ; ties and unknown days in ``exam_id`` order).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TIMEPOINT_PREFIX = "T"
DAYS_PER_YEAR = 365.25
"""Days per year of the annualised changes and of follow-up in years."""

DATE_COLUMNS = ("study_date", "date")
"""Exam-table columns read as dates; they never reach an output table."""


def days_from_dates(patient_id: pd.Series, dates: pd.Series) -> pd.Series:
    """Whole days since each participant's earliest date (int, 0 at the first exam).

    Numbers are read as DICOM dates (YYYYMMDD), text in any format pandas parses.

    >>> days_from_dates(pd.Series(["a", "a", "b"]),
    ...                 pd.Series(["2020-01-01", "2021-01-01", "2019-05-05"])).tolist()
    [0, 366, 0]
    """
    if pd.api.types.is_numeric_dtype(dates):  # DICOM DA read from CSV: 20200301 -> text
        dates = dates.astype("Int64").astype(str)
    when = pd.to_datetime(dates, errors="coerce", format="mixed")
    first = when.groupby(patient_id.to_numpy()).transform("min")
    return (when - first).dt.days.astype("Int64")


def series_exams(
    scans: pd.DataFrame, exam_table: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, str]:
    """Scans rows with ``exam_id`` and ``days`` (and ``timepoint`` when given), plus the
    name of the exam source used (``exam_table``, ``study_uid`` or ``patient``)."""
    df = scans.copy()
    if exam_table is not None:
        et = exam_table.copy()
        if "series_uid" not in et.columns or "exam_id" not in et.columns:
            raise ValueError("exam table: needs columns series_uid, exam_id")
        et["series_uid"] = et["series_uid"].astype(str)
        et["exam_id"] = et["exam_id"].astype(str)
        date_col = next((c for c in DATE_COLUMNS if c in et.columns), None)
        if date_col is not None:
            pid = et["patient_id"] if "patient_id" in et.columns else None
            if pid is None:
                pid = et["series_uid"].map(df.set_index("series_uid")["patient_id"])
            et["days"] = days_from_dates(pid.astype(str), et[date_col])
            et = et.drop(columns=[date_col])
        keep = [c for c in ("series_uid", "exam_id", "patient_id", "timepoint", "days") if c in et]
        et = et[keep]
        if "patient_id" in et.columns:
            df = df.drop(columns=["patient_id"], errors="ignore")
        df = df.merge(et, on="series_uid", how="inner")
        source = "exam_table"
    elif "study_uid" in df.columns and df["study_uid"].notna().all() and len(df):
        df["exam_id"] = df["study_uid"].astype(str)
        if "study_days" in df.columns:
            df["days"] = pd.to_numeric(df["study_days"], errors="coerce").astype("Int64")
        source = "study_uid"
    else:
        df["exam_id"] = df["patient_id"].astype(str)
        source = "patient"
    if "days" not in df.columns:
        df["days"] = pd.array([pd.NA] * len(df), dtype="Int64")
    df = df.drop(columns=[c for c in DATE_COLUMNS if c in df.columns])
    return df, source


def assign_timepoints(exams: pd.DataFrame, timepoints: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add ``timepoint`` (text) and ``visit`` (0-based order within the participant).

    ``exams``: one row per exam with ``patient_id, exam_id, days`` (and ``timepoint`` when
    the exam table gave one). A timepoints table (``exam_id, timepoint``) overrides.
    Visit order: by ``days``, then ``exam_id``; a given timepoint label orders first when
    present (``T0 < T1 < ...`` as text with numbers compared as numbers).
    """
    df = exams.copy()
    if timepoints is not None:
        tp = timepoints[["exam_id", "timepoint"]].astype(str)
        df = df.drop(columns=["timepoint"], errors="ignore").merge(tp, on="exam_id", how="left")
    days = pd.to_numeric(df["days"], errors="coerce")
    df["_d"] = days.fillna(np.inf).to_numpy()
    if "timepoint" in df.columns and df["timepoint"].notna().any():
        label = df["timepoint"].fillna("").astype(str)
        df["_tn"] = pd.to_numeric(label.str.replace(r"\D", "", regex=True), errors="coerce")
        df["_tn"] = df["_tn"].fillna(np.inf)
        df["_ts"] = label
        order = ["patient_id", "_tn", "_ts", "_d", "exam_id"]
    else:
        order = ["patient_id", "_d", "exam_id"]
    df = df.sort_values(order, kind="stable")
    df["visit"] = df.groupby("patient_id", sort=False).cumcount().astype("int64")
    if "timepoint" not in df.columns:
        df["timepoint"] = None
    missing = df["timepoint"].isna()
    df.loc[missing, "timepoint"] = TIMEPOINT_PREFIX + df.loc[missing, "visit"].astype(str)
    tmp = [c for c in ("_tn", "_ts", "_d") if c in df.columns]
    return df.drop(columns=tmp).reset_index(drop=True)
