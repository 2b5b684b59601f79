"""The ``stats`` step: a dataset's agreement, confusion, detection and subgroup tables
(+ CSV copies of every table in ``tables/``) from its scans / scores / lesions tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cacflow.config import default_of
from cacflow.contract import TABLES, check_table
from cacflow.conventions import schemes_from_config
from cacflow.provenance import atomic_path, write_table
from cacflow.tables import read_table, table_meta


def run_stats(data_dir: Path, settings: dict[str, Any]) -> None:
    """Agreement, confusion, detection and subgroup tables (+ CSV copies in tables/)."""
    from cacflow import stats

    st = default_of("stats") | (settings.get("stats") or {})
    reference = st["reference"]
    schemes = schemes_from_config(settings.get("schemes"))
    scores = read_table(data_dir / "scores.parquet")
    scans = read_table(data_dir / "scans.parquet")
    lesions = read_table(data_dir / "lesions.parquet")
    has_ref = reference in set(scores["method"])
    boot = {"n_boot": st["n_boot"], "seed": st["seed"]}
    kw: dict[str, Any] = {"reference": reference}
    if has_ref:
        agreement = stats.agreement_table(scores, schemes, ba_log=st["ba_log"], **boot, **kw)
        confusion = stats.confusion_table(scores, schemes, **kw)
        detection = stats.detection_table(
            lesions,
            scores=scores,
            match_radius_mm=st["match_radius_mm"],
            **boot,
            **kw,
        )
        by = [c for c in st["subgroups"] if c in scans.columns and len(scans)]
        subgroups = stats.subgroup_table(scores, scans, by, schemes, **boot, **kw) if by else None
    else:
        agreement = confusion = detection = subgroups = None
    meta = table_meta(settings) | stats.agreement_metadata(**boot)
    tables = {
        "agreement": agreement if agreement is not None else stats.empty_agreement(),
        "confusion": confusion if confusion is not None else stats.empty_confusion(),
        "detection": detection if detection is not None else stats.empty_agreement(),
        "subgroups": subgroups if subgroups is not None else pd.DataFrame({"group_by": []}),
    }
    for name, df in tables.items():
        if name in TABLES:
            check_table(df, TABLES[name], f"{name}.parquet")
        write_table(df.reset_index(drop=True), data_dir / f"{name}.parquet", meta)
    csv_dir = data_dir / "tables"
    csv_dir.mkdir(parents=True, exist_ok=True)
    inputs = {"scans": scans, "scores": scores, "lesions": lesions}
    inputs["reference_points"] = read_table(data_dir / "reference_points.parquet")
    for name, df in (inputs | tables).items():
        with atomic_path(csv_dir / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
