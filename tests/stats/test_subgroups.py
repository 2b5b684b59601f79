"""Agreement per subgroup equals the agreement table on that subset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cacflow.conventions import DEFAULT_SCHEMES
from cacflow.stats import agreement_table, subgroup_table
from cacflow.stats.subgroups import group_label

REF = np.array([0.0, 3.0, 12.0, 40.0, 85.0, 150.0, 310.0, 620.0, 0.0, 7.0, 55.0, 1200.0])
MET = np.array([1.0, 2.0, 15.0, 33.0, 90.0, 180.0, 290.0, 700.0, 0.0, 12.0, 40.0, 1500.0])
UIDS = [f"u{i:02d}" for i in range(REF.size)]


def scores() -> pd.DataFrame:
    rows = [
        (uid, uid, name, "total", float(v), np.nan, np.nan, np.nan)
        for name, vals in (("reference", REF), ("m", MET))
        for uid, v in zip(UIDS, vals, strict=True)
    ]
    cols = ["series_uid", "patient_id", "method", "artery", "agatston", "volume_mm3", "mass_mg"]
    return pd.DataFrame(rows, columns=[*cols, "n_lesions"])


def scans() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "series_uid": UIDS,
            "status": "ok",
            "kernel": ["B30f", "B60f"] * 6,
            "slice_thickness_mm": [3.0] * 6 + [1.0] * 5 + [np.nan],
        }
    )


def test_subgroup_rows_equal_agreement_on_the_subset() -> None:
    df = subgroup_table(
        scores(), scans(), ["kernel", "slice_thickness_mm"], DEFAULT_SCHEMES, n_boot=50
    )
    assert list(df.columns[:2]) == ["group_by", "group"]
    assert list(pd.unique(df["group"])) == ["B30f", "B60f", "1", "3", "missing"]
    soft = [u for u, k in zip(UIDS, scans()["kernel"], strict=True) if k == "B30f"]
    subset = agreement_table(
        scores()[scores()["series_uid"].isin(soft)], DEFAULT_SCHEMES, n_boot=50
    )
    got = df[df["group"] == "B30f"].set_index("statistic")
    want = subset.set_index("statistic")
    assert set(got.index) == {"icc", "ba_bias"} | {
        f"{p}:{s}" for p in ("kappa_linear", "accuracy") for s in DEFAULT_SCHEMES
    }
    for name in got.index:
        assert got.loc[name, "value"] == pytest.approx(want.loc[name, "value"], nan_ok=True)
        assert got.loc[name, "n"] == 6
    thin = df[(df["group_by"] == "slice_thickness_mm") & (df["group"] == "1")]
    assert (thin["n"] == 5).all()
    missing = df[df["group"] == "missing"]
    assert (missing["n"] == 1).all()
    assert np.isnan(missing.set_index("statistic").loc["icc", "value"])


def test_unknown_column_is_rejected() -> None:
    with pytest.raises(ValueError, match="vendor"):
        subgroup_table(scores(), scans(), ["vendor"], DEFAULT_SCHEMES)


def test_group_labels() -> None:
    assert group_label(3.0) == "3"
    assert group_label(0.625) == "0.625"
    assert group_label(np.float64(1.5)) == "1.5"
    assert group_label(float("nan")) == "missing"
    assert group_label("SIEMENS") == "SIEMENS"
