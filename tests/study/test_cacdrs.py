"""cacflow.study.cacdrs: CAC-DRS categories (Hecht et al. 2018) by hand."""

from __future__ import annotations

import pandas as pd

from cacflow.study.cacdrs import cacdrs_table


def test_cacdrs_hand_cases() -> None:
    rows = []
    for uid, arts in {
        "zero": {"LAD": 0, "LCX": 0, "RCA": 0},
        "one": {"LAD": 50, "LCX": 0, "RCA": 0},
        "two": {"LAD": 60, "LCX": 40, "RCA": 0},
        "three": {"LAD": 200, "LCX": 50, "RCA": 50},
    }.items():
        for art, v in arts.items():
            rows.append((uid, "reference", art, float(v)))
        rows.append((uid, "reference", "total", float(sum(arts.values()))))
    scores = pd.DataFrame(rows, columns=["series_uid", "method", "artery", "agatston"])
    t = cacdrs_table(scores).set_index("series_uid")
    assert t["cac_drs"].to_dict() == {"zero": "0", "one": "A1/N1", "two": "A2/N2", "three": "A3/N3"}


def test_total_only_gives_no_vessel_count() -> None:
    scores = pd.DataFrame(
        {"series_uid": ["a", "b"], "method": "r", "artery": "total", "agatston": [0.0, 150.0]}
    )
    t = cacdrs_table(scores).set_index("series_uid")
    assert t["cac_drs"].to_dict() == {"a": "0", "b": "A2"}
    assert t["cac_drs_n"].isna().all()
