"""Lesion matching, detection statistics and CAC-negative rule-out, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cacflow.conventions import Closure, Scheme
from cacflow.stats import agreement_table, detection_table, match_lesions, scores_from_confusion

LESION_COLS = ["series_uid", "method", "artery", "volume_mm3", "x", "y", "z"]


def lesions_frame(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=LESION_COLS)
    return df.assign(agatston=df["volume_mm3"] * 2.0, mass_mg=1.0, peak_hu=400.0, n_voxels=10)


def scores_frame(values: dict[str, dict[str, float]], n_lesions: float = 1.0) -> pd.DataFrame:
    """Total scores only: {method: {series: agatston}}."""
    rows = [
        (uid, uid, m, "total", v, np.nan, np.nan, n_lesions)
        for m, per in values.items()
        for uid, v in per.items()
    ]
    cols = ["series_uid", "patient_id", "method", "artery", "agatston", "volume_mm3", "mass_mg"]
    return pd.DataFrame(rows, columns=[*cols, "n_lesions"])


def stat(df: pd.DataFrame, name: str, artery: str = "total", method: str = "m") -> pd.Series:
    row = df[(df["statistic"] == name) & (df["artery"] == artery) & (df["method"] == method)]
    assert len(row) == 1, (name, artery, method)
    return row.iloc[0]


def test_matching_is_one_to_one_and_maximises_matches() -> None:
    # greedy nearest-first would pair A-P (1.5 mm) and leave B and Q unmatched;
    # the optimal assignment pairs A-Q (1.8 mm) and B-P (2.0 mm)
    ref = pd.DataFrame({"series_uid": ["s", "s"], "x": [0.0, 3.5], "y": 0.0, "z": 0.0})
    met = pd.DataFrame({"series_uid": ["s", "s"], "x": [1.5, -1.8], "y": 0.0, "z": 0.0})
    r, m = match_lesions(ref, met, radius_mm=3.0, keys=("series_uid",))
    assert r.tolist() == [True, True] and m.tolist() == [True, True]
    # two method lesions on one reference lesion: only one matches
    met2 = pd.DataFrame({"series_uid": ["s", "s"], "x": [0.5, -0.5], "y": 0.0, "z": 0.0})
    r, m = match_lesions(ref.iloc[:1], met2, radius_mm=3.0, keys=("series_uid",))
    assert r.tolist() == [True] and m.sum() == 1
    # other series never match, radius is inclusive
    met3 = pd.DataFrame({"series_uid": ["t", "s"], "x": [0.0, 6.5], "y": 0.0, "z": 0.0})
    r, m = match_lesions(ref, met3, radius_mm=3.0, keys=("series_uid",))
    assert r.tolist() == [False, True] and m.tolist() == [False, True]


@pytest.fixture
def cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    lesions = lesions_frame(
        [
            ("s1", "reference", "LAD", 10.0, 0.0, 0.0, 0.0),  # R1
            ("s1", "reference", "LCX", 20.0, 20.0, 0.0, 0.0),  # R2
            ("s2", "reference", "RCA", 30.0, 0.0, 50.0, 0.0),  # R3
            ("s2", "reference", "AV", 99.0, 0.0, 0.0, 0.0),  # not coronary: ignored
            ("s1", "m", "LAD", 12.0, 1.0, 0.0, 0.0),  # M1 matches R1 (1 mm)
            ("s1", "m", "LAD", 18.0, 20.0, 1.0, 0.0),  # M2 at R2, but labelled LAD
            ("s2", "m", "RCA", 5.0, 0.0, 50.0, 10.0),  # M3 10 mm from R3: no match
            ("s3", "m", "RCA", 2.0, 5.0, 5.0, 5.0),  # M4 false positive
        ]
    )
    scores = scores_frame(
        {"reference": {"s1": 80.0, "s2": 60.0, "s3": 0.0}, "m": {"s1": 70.0, "s2": 10.0, "s3": 4.0}}
    )
    return lesions, scores


def test_lesion_statistics_by_hand(cohort) -> None:
    lesions, scores = cohort
    df = detection_table(lesions, scores=scores, match_radius_mm=5.0, n_boot=100)
    # total: 3 reference lesions, 4 method lesions, matched R1-M1 and R2-M2; 3 scans
    assert stat(df, "lesion_sensitivity")["value"] == pytest.approx(2 / 3)
    assert stat(df, "lesion_ppv")["value"] == pytest.approx(2 / 4)
    assert stat(df, "lesion_f1")["value"] == pytest.approx(4 / 7)
    assert stat(df, "fp_lesions_per_scan")["value"] == pytest.approx(2 / 3)
    assert stat(df, "fn_lesions_per_scan")["value"] == pytest.approx(1 / 3)
    assert stat(df, "volume_sensitivity")["value"] == pytest.approx(30 / 60)
    assert stat(df, "fp_volume_per_scan_mm3")["value"] == pytest.approx(7 / 3)
    assert stat(df, "fn_volume_per_scan_mm3")["value"] == pytest.approx(30 / 3)
    assert stat(df, "lesion_f1")["n"] == 3
    # LAD: R1 matched by M1; M2 is a false positive in LAD
    assert stat(df, "lesion_sensitivity", "LAD")["value"] == pytest.approx(1.0)
    assert stat(df, "lesion_ppv", "LAD")["value"] == pytest.approx(0.5)
    assert stat(df, "fp_volume_per_scan_mm3", "LAD")["value"] == pytest.approx(18 / 3)
    # LCX: R2 missed (its detection carried the LAD label)
    assert stat(df, "lesion_sensitivity", "LCX")["value"] == 0.0
    assert np.isnan(stat(df, "lesion_ppv", "LCX")["value"])
    assert stat(df, "fn_volume_per_scan_mm3", "LCX")["value"] == pytest.approx(20 / 3)
    # RCA: nothing matches
    assert stat(df, "lesion_f1", "RCA")["value"] == 0.0
    assert stat(df, "fp_lesions_per_scan", "RCA")["value"] == pytest.approx(2 / 3)


def test_without_scores_scans_are_those_with_lesions(cohort) -> None:
    lesions, _ = cohort
    df = detection_table(lesions, n_boot=0, match_radius_mm=10.0)
    # radius 10 mm: M3 now matches R3 (10 mm, inclusive)
    assert stat(df, "lesion_sensitivity")["value"] == pytest.approx(1.0)
    assert stat(df, "fp_lesions_per_scan")["value"] == pytest.approx(1 / 3)
    assert not df["statistic"].str.startswith("ruleout").any()


def test_method_without_any_lesion_is_reported(cohort) -> None:
    lesions, scores = cohort
    none = scores_frame({"empty": {"s1": 0.0, "s2": 0.0, "s3": 0.0}}, n_lesions=0.0)
    df = detection_table(lesions, scores=pd.concat([scores, none]), n_boot=0)
    assert stat(df, "lesion_sensitivity", method="empty")["value"] == 0.0
    assert stat(df, "fp_lesions_per_scan", method="empty")["value"] == 0.0
    assert stat(df, "ruleout_sensitivity", method="empty")["value"] == 0.0
    assert stat(df, "ruleout_npv", method="empty")["value"] == pytest.approx(1 / 3)


def test_ruleout_by_hand(cohort) -> None:
    _, scores = cohort
    extra = scores_frame({"reference": {"s4": 0.0, "s5": 3.0}, "m": {"s4": 0.0, "s5": 0.0}})
    df = detection_table(None, scores=pd.concat([scores, extra]), n_boot=100)
    # ref positive s1 s2 s5, negative s3 s4; method positive s1 s2 s3
    # TP 2, FN 1 (s5), TN 1 (s4), FP 1 (s3)
    assert stat(df, "ruleout_sensitivity")["value"] == pytest.approx(2 / 3)
    assert stat(df, "ruleout_specificity")["value"] == pytest.approx(1 / 2)
    assert stat(df, "ruleout_npv")["value"] == pytest.approx(1 / 2)
    assert stat(df, "ruleout_ppv")["value"] == pytest.approx(2 / 3)
    assert stat(df, "ruleout_false_negatives")["value"] == 1
    assert stat(df, "ruleout_negative_fraction")["value"] == pytest.approx(2 / 5)
    assert stat(df, "ruleout_npv")["n"] == 5


CAC_PRESENT = Scheme("cac", (0.0,), Closure.RIGHT)  # {0, > 0}


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        # seed 003 Table 2 (rows reference no CAC / CAC, columns predicted) and Table 1
        # (with dilation layers): external validation
        ([[43, 7], [0, 50]], {"sensitivity": 1.00, "npv": 1.00, "specificity": 0.86, "ppv": 0.88}),
        # internal validation: precision 0.72, sensitivity and NPV 1.00
        ([[31, 19], [0, 50]], {"sensitivity": 1.00, "npv": 1.00, "ppv": 0.72}),
    ],
)
def test_reproduces_published_ruleout(matrix, expected) -> None:
    scores = scores_from_confusion(np.array(matrix), CAC_PRESENT, method="pipeline")
    df = detection_table(None, scores=scores, n_boot=200)
    for name, value in expected.items():
        assert round(stat(df, f"ruleout_{name}", method="pipeline")["value"], 2) == value
    assert stat(df, "ruleout_false_negatives", method="pipeline")["value"] == 0


@pytest.mark.parametrize(
    ("matrix", "kappa"), [([[43, 7], [0, 50]], 0.86), ([[31, 19], [0, 50]], 0.62)]
)
def test_reproduces_published_binary_kappa(matrix, kappa) -> None:
    """Seed 003 Table 2 kappa: with two categories linear weights give the simple kappa."""
    scores = scores_from_confusion(np.array(matrix), CAC_PRESENT, method="pipeline")
    df = agreement_table(scores, {"cac": CAC_PRESENT}, n_boot=0)
    assert round(stat(df, "kappa_linear:cac", method="pipeline")["value"], 2) == kappa


def test_bootstrap_is_deterministic(cohort) -> None:
    lesions, scores = cohort
    a = detection_table(lesions, scores=scores, n_boot=100, seed=4)
    b = detection_table(lesions, scores=scores, n_boot=100, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["method", "artery", "statistic", "value", "ci_low", "ci_high", "n"]
