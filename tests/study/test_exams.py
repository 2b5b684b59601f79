"""cacflow.study.exams: kernel families and the one-series-per-exam rule."""

from __future__ import annotations

import pandas as pd

from cacflow.study.exams import KERNEL_FAMILIES, SelectionRule, kernel_family, select_exams


def test_kernel_families_per_vendor() -> None:
    kernels = ["B30f", "Br36d", "I30f\\3", "B70f", "Br64d", "STANDARD", "LUNG", "BONE"]
    kernels += ["B", "L", "FC03", "FC52", "XYZ", None]
    expected = ["soft", "soft", "soft", "sharp", "sharp", "soft", "sharp", "sharp"]
    expected += ["soft", "sharp", "soft", "sharp", "unknown", "unknown"]
    assert kernel_family(pd.Series(kernels), KERNEL_FAMILIES).tolist() == expected


def _series() -> pd.DataFrame:
    rows = [
        # exam A: sharp 3 mm, soft 1 mm, soft 3 mm (100 slices), soft 3 mm (120 slices)
        ("a1", "P1", "A", "ok", "B70f", 3.0, 100),
        ("a2", "P1", "A", "ok", "B30f", 1.0, 300),
        ("a3", "P1", "A", "ok", "B30f", 3.0, 100),
        ("a4", "P1", "A", "ok", "B31f", 3.0, 120),
        ("a5", "P1", "A", "excluded", "B30f", 3.0, 200),
        # exam B: only a sharp usable one, a soft not_scorable one
        ("b1", "P1", "B", "ok", "B70f", 1.0, 300),
        ("b2", "P1", "B", "not_scorable", "B30f", 3.0, 100),
        # exam C: nothing usable
        ("c1", "P2", "C", "excluded", "B30f", 3.0, 5),
        # exam D: a tie broken by series_uid
        ("d2", "P2", "D", "ok", "B30f", 3.0, 100),
        ("d1", "P2", "D", "ok", "B30f", 3.0, 100),
    ]
    cols = ["series_uid", "patient_id", "exam_id", "status", "kernel"]
    return pd.DataFrame(rows, columns=[*cols, "slice_thickness_mm", "n_slices"])


def test_selection_rule_hand_case() -> None:
    exams = select_exams(_series(), SelectionRule()).set_index("exam_id")
    assert exams.loc["A", "series_uid"] == "a4"  # soft, 3 mm, most slices
    assert exams.loc["B", "series_uid"] == "b1"  # not_scorable never chosen
    assert pd.isna(exams.loc["C", "series_uid"]) and exams.loc["C", "why"] == "no usable series"
    assert exams.loc["D", "series_uid"] == "d1"
    assert exams.loc["A", "n_candidates"] == 5 and exams.loc["A", "n_usable"] == 4
    assert "4 of 5" in exams.loc["A", "why"] and "soft" in exams.loc["A", "why"]


def test_selection_is_independent_of_row_order() -> None:
    s = _series()
    a = select_exams(s, SelectionRule())
    b = select_exams(s.sample(frac=1, random_state=3), SelectionRule())
    pd.testing.assert_frame_equal(a, b)


def test_config_changes_the_rule() -> None:
    rule = SelectionRule.from_config({"prefer_kernel": "sharp", "thickness_mm": 1.0})
    exams = select_exams(_series(), rule).set_index("exam_id")
    assert exams.loc["A", "series_uid"] == "a1"  # sharp first, whatever its thickness
    rule = SelectionRule.from_config({"thickness_mm": 1.0})
    assert select_exams(_series(), rule).set_index("exam_id").loc["A", "series_uid"] == "a2"
    assert SelectionRule.from_config(None, 2.5).thickness_mm == 2.5
