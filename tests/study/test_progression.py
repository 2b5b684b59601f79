"""cacflow.study.progression: hand-computed changes and the three definitions."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cacflow.study.progression import ProgressionRule, consecutive_pairs, progression_table


def _exams() -> pd.DataFrame:
    rows = [
        ("A", "a0", "T0", 0, 0, "sa0"),
        ("A", "a1", "T1", 1, 730, "sa1"),
        ("B", "b0", "T0", 0, 0, "sb0"),
        ("B", "b1", "T1", 1, 365, None),  # no usable series: skipped
        ("B", "b2", "T2", 2, 730, "sb2"),
        ("C", "c0", "T0", 0, 0, "sc0"),
        ("C", "c1", "T1", 1, 365, "sc1"),
        ("D", "d0", "T0", 0, 0, "sd0"),
    ]
    cols = ["patient_id", "exam_id", "timepoint", "visit", "days", "series_uid"]
    return pd.DataFrame(rows, columns=cols)


def _scores() -> pd.DataFrame:
    total = {"sa0": 0.0, "sa1": 5.0, "sb0": 50.0, "sb2": 80.0, "sc0": 200.0, "sc1": 230.0}
    total["sd0"] = 1.0
    return pd.DataFrame(
        {"series_uid": list(total), "artery": "total", "agatston": list(total.values())}
    )


def test_pairs_skip_unscored_exams() -> None:
    pairs = consecutive_pairs(_exams())
    assert list(zip(pairs["exam_id_1"], pairs["exam_id_2"], strict=True)) == [
        ("a0", "a1"),
        ("b0", "b2"),
        ("c0", "c1"),
    ]


def test_hand_computed_changes() -> None:
    prog = progression_table(consecutive_pairs(_exams()), _scores(), ProgressionRule())
    p = prog.set_index("patient_id")
    # A: 0 -> 5 in two years: incident, Berry yes, sqrt diff 2.236 < 2.5
    assert p.loc["A", "incident"] and p.loc["A", "progression_berry"]
    assert p.loc["A", "sqrt_diff"] == pytest.approx(math.sqrt(5))
    assert not p.loc["A", "progression_sqrt"]
    # B: 50 -> 80 over 730 days: 15 / year >= 10 -> Berry; sqrt 8.944 - 7.071 = 1.873
    years = 730 / 365.25
    assert p.loc["B", "annual_change"] == pytest.approx(30 / years)
    assert p.loc["B", "progression_berry"] and not p.loc["B", "progression_sqrt"]
    # C: 200 -> 230 in one year (365 days): 15.0 % / year -> Berry; sqrt diff 1.024
    assert p.loc["C", "annual_pct_change"] == pytest.approx(100 * 30 / 200 / (365 / 365.25))
    assert p.loc["C", "progression_berry"]
    rule = ProgressionRule(annual_pct=20.0, sqrt_diff=1.0)
    p2 = progression_table(consecutive_pairs(_exams()), _scores(), rule).set_index("patient_id")
    assert not p2.loc["C", "progression_berry"] and p2.loc["C", "progression_sqrt"]


def test_unknown_interval_gives_no_berry_verdict() -> None:
    exams = _exams().assign(days=pd.NA)
    prog = progression_table(consecutive_pairs(exams), _scores(), ProgressionRule())
    p = prog.set_index("patient_id")
    assert pd.isna(p.loc["B", "progression_berry"]) and pd.isna(p.loc["B", "annual_change"])
    assert p.loc["A", "progression_berry"]  # incident needs no interval
