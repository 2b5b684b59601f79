"""The cohort flow counts usable series kept with a note (issue 14)."""

from __future__ import annotations

import pandas as pd

from cacflow.report.html import cohort_flow, usable_notes


def test_usable_notes_count_fallback_reformat_and_tilt() -> None:
    scans = pd.DataFrame(
        {
            "series_uid": ["a", "b", "c", "d"],
            "status": ["ok", "ok", "ok", "excluded"],
            "reason": [None, None, None, "derived"],
            "reason_detail": [
                "no SeriesInstanceUID: grouped by folder, PatientID, StudyID, SeriesNumber; "
                "axial primary reformat (ImageType DERIVED\\PRIMARY\\MPR)",
                "no SeriesInstanceUID: grouped by folder, PatientID, StudyID, SeriesNumber",
                None,
                "ImageType DERIVED\\SECONDARY",
            ],
        }
    )
    ok = scans[scans["status"] == "ok"]
    assert usable_notes(ok) == [
        "2 without SeriesInstanceUID (grouped by folder)",
        "1 axial primary reformats",
    ]
    flow = cohort_flow(scans, pd.DataFrame(columns=["method", "artery", "agatston"]), {}, "ref")
    usable = next(s for s in flow["steps"] if s[1] == "Series usable for scoring")
    assert "2 without SeriesInstanceUID" in usable[2] and "1 excluded" in usable[2]
