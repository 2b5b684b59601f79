"""The tables step keeps non-coronary region rows only for the sources that provide them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cacflow.tables import keep_provided_regions, provided_regions

ROWS = ["LAD", "LCX", "RCA", "total", "TAC", "AV", "MV"]


def _scores(method: str) -> pd.DataFrame:
    return pd.DataFrame({"series_uid": "s1", "method": method, "artery": ROWS, "agatston": 1.0})


def test_reference_provides_the_regions_its_annotations_use(tmp_path: Path) -> None:
    ann = tmp_path / "ann.csv"
    pd.DataFrame(
        {"series_uid": ["s1", "s1"], "x": 0.0, "y": 0.0, "z": 0.0, "label": ["LAD", "av"]}
    ).to_csv(ann, index=False)
    settings = {"annotations": str(ann), "methods": ["hu-threshold"]}
    assert provided_regions(settings) == {"reference": {"AV"}, "hu-threshold": set()}
    scores = pd.concat([_scores("reference"), _scores("hu-threshold"), _scores("ext")])
    kept = keep_provided_regions(scores, settings)
    got = kept.groupby("method")["artery"].apply(list).to_dict()
    assert got["reference"] == ["LAD", "LCX", "RCA", "total", "AV"]
    assert got["hu-threshold"] == ["LAD", "LCX", "RCA", "total"]
    assert got["ext"] == ROWS  # external tables are kept as given


def test_no_region_rows_without_annotations() -> None:
    kept = keep_provided_regions(_scores("reference"), {"methods": []})
    assert kept["artery"].tolist() == ROWS  # an unknown source (no settings) keeps its rows
    kept = keep_provided_regions(_scores("direct"), {"methods": ["direct"]})
    assert kept["artery"].tolist() == ["LAD", "LCX", "RCA", "total"]


def test_check_table_names_missing_and_mistyped_columns() -> None:
    import pytest

    from cacflow.contract import SCORES_SCHEMA, check_table

    good = pd.DataFrame({c: [None] for c in SCORES_SCHEMA.names}).assign(
        series_uid="s", agatston=1.0, n_lesions=2
    )
    check_table(good, SCORES_SCHEMA, "scores")  # ints fit a float column, nulls fit any
    with pytest.raises(ValueError, match=r"scores: missing contract columns \['mass_mg'\]"):
        check_table(good.drop(columns="mass_mg"), SCORES_SCHEMA, "scores")
    with pytest.raises(ValueError, match=r"scores: columns of the wrong type: agatston"):
        check_table(good.assign(agatston="high"), SCORES_SCHEMA, "scores")
