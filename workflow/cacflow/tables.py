"""The dataset tables: reading input tables, the column layout of the output tables
(CONTRACT §3), and the ``tables`` step, which assembles a dataset's ``scans``, ``scores``,
``lesions`` and ``reference_points`` tables from its batch outputs (:func:`build_tables`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cacflow.contract import LESIONS_SCHEMA, SCANS_SCHEMA, SCORES_SCHEMA, TABLES, check_table

SCANS_COLUMNS = tuple(SCANS_SCHEMA.names)
SCORES_COLUMNS = tuple(SCORES_SCHEMA.names)
LESIONS_COLUMNS = tuple(LESIONS_SCHEMA.names)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or Parquet table; a one-line ValueError names the file when it cannot."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # any parser error becomes one line naming the file
        raise ValueError(f"{path}: cannot read table ({type(exc).__name__}: {exc})") from exc


def with_columns(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Columns of ``columns`` first (added as missing values when absent), then the rest."""
    out = df.copy()
    for c in columns:
        if c not in out.columns:
            out[c] = None
    rest = [c for c in out.columns if c not in columns]
    return out[list(columns) + rest]


EXTRA_REFERENCE_LABEL = "reference_scores"
"""Method label of a dataset's reference_scores table when annotations provide the reference."""
ARTERY_ORDER = {"LAD": 0, "LCX": 1, "RCA": 2, "total": 3, "TAC": 4, "AV": 5, "MV": 6}
"""Row order of the arteries (then the non-coronary regions) of one series in scores.parquet."""


def provided_regions(settings: dict[str, Any]) -> dict[str, set[str]]:
    """The non-coronary regions (TAC, AV, MV) each scored source of a dataset provides:
    the reference those its point annotations use (any row with that label), a method
    those of its registry entry (``regions``). Score rows of other sources' regions are
    dropped: a method that never labels the aorta has no aortic score, not a 0."""
    from cacflow.conventions import REFERENCE_METHOD, REGIONS
    from cacflow.methods.registry import METHODS

    out: dict[str, set[str]] = {}
    if settings.get("annotations"):
        labels = set(read_table(settings["annotations"])["label"].astype(str).str.upper())
        out[REFERENCE_METHOD] = labels & set(REGIONS)
    for m in settings.get("methods", []):
        out[m] = set(METHODS[m].regions) if m in METHODS else set()
    return out


def keep_provided_regions(scores: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """``scores`` without the region rows (TAC, AV, MV) of sources that do not provide
    that region (:func:`provided_regions`); rows of other sources are kept as given."""
    from cacflow.conventions import REGIONS

    provided = provided_regions(settings)
    is_region = scores["artery"].isin(REGIONS)
    if not is_region.any():
        return scores
    known = scores["method"].isin(provided)
    allowed = [
        a in provided.get(m, set()) for m, a in zip(scores["method"], scores["artery"], strict=True)
    ]
    return scores[~(is_region & known) | pd.Series(allowed, index=scores.index)]


def batch_parts(work: Path, batches: list[str], sources: list[str]) -> dict[str, list[Path]]:
    """Where the ``tables`` step finds a dataset's batch outputs under its work folder
    ``work`` (the layout the rules write): native scans tables, per-source score and lesion
    tables, reference point reports and scorability verdicts, per batch id."""
    from cacflow.reference import POINTS_FILE
    from cacflow.scorable import SCORABLE_FILE

    return {
        "scans": [work / "native" / b / "scans.parquet" for b in batches],
        "scores": [work / "scores" / s / f"{b}.parquet" for s in sources for b in batches],
        "lesions": [work / "lesions" / s / f"{b}.parquet" for s in sources for b in batches],
        "points": [work / "labels" / "reference" / b / POINTS_FILE for b in batches]
        if "reference" in sources
        else [],
        "scorable": [work / "resampled" / b / SCORABLE_FILE for b in batches],
    }


def _concat(paths: list[Path], columns: tuple[str, ...]) -> pd.DataFrame:
    frames = [read_table(p) for p in paths]
    frames = [f for f in frames if len(f)]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))
    return with_columns(df, columns)


def score_tables_from_settings(settings: dict[str, Any]) -> list[pd.DataFrame]:
    """Score tables given as files in the dataset config (reference_scores, external_scores)."""
    from cacflow.conventions import REFERENCE_METHOD
    from cacflow.reference import read_score_table

    frames = []
    if "reference_scores" in settings:
        label = EXTRA_REFERENCE_LABEL if "annotations" in settings else REFERENCE_METHOD
        frames.append(read_score_table(settings["reference_scores"]).assign(method=label))
    for label, path in sorted(settings.get("external_scores", {}).items()):
        frames.append(read_score_table(path).assign(method=label))
    return frames


def table_meta(settings: dict[str, Any]) -> dict[str, str]:
    """Provenance of a dataset-level table: version, config hash, conventions."""
    from cacflow.provenance import provenance

    conventions = {k: settings.get(k) for k in ("scoring", "schemes", "qc", "resample", "stats")}
    return provenance(settings.get("config_hash", ""), conventions)


def build_tables(
    settings: dict[str, Any],
    manifest: Path | None,
    scans_parts: list[Path],
    scores_parts: list[Path],
    lesions_parts: list[Path],
    points_parts: list[Path],
    out_dir: Path,
    scorable_parts: list[Path] | None = None,
) -> None:
    """Assemble ``scans``, ``scores``, ``lesions`` and ``reference_points`` of a dataset.

    Rows are sorted by key so that the tables do not depend on batch or job order.
    File counts of the discovery pass travel in the scans table's metadata. The
    scorability verdicts (``scorable_parts``, :mod:`cacflow.scorable`) turn ``ok`` series
    into ``not_scorable`` ones, whose method scores and lesions are dropped.
    """
    from cacflow.provenance import read_meta, write_table
    from cacflow.scorable import SCORABLE_COLUMNS

    meta = table_meta(settings)
    if manifest is not None:
        meta |= {k: v for k, v in read_meta(manifest).items() if k.startswith("count.")}
    scans = _concat(scans_parts, SCANS_COLUMNS).sort_values("series_uid", kind="stable")
    verdicts = _concat([p for p in scorable_parts or [] if p.exists()], SCORABLE_COLUMNS)
    scans = apply_scorability(scans, verdicts)
    scores = pd.concat(
        [_concat(scores_parts, SCORES_COLUMNS), *score_tables_from_settings(settings)],
        ignore_index=True,
    )
    scores = keep_provided_regions(with_columns(scores, SCORES_COLUMNS), settings)
    order = {s: i for i, s in enumerate(settings.get("sources", []))}
    scores["_src"] = scores["method"].map(order).fillna(len(order))
    scores["_art"] = scores["artery"].map(ARTERY_ORDER)
    scores = scores.sort_values(["_src", "method", "series_uid", "_art"], kind="stable")
    scores = scores.drop(columns=["_src", "_art"])
    lesions = _concat(lesions_parts, LESIONS_COLUMNS).sort_values(
        ["method", "series_uid", "artery", "z", "y", "x"], kind="stable"
    )
    from cacflow.conventions import Status

    unscorable = set(scans.loc[scans["status"] == Status.NOT_SCORABLE, "series_uid"])
    methods = set(settings.get("methods", []))
    scores = scores[~(scores["method"].isin(methods) & scores["series_uid"].isin(unscorable))]
    lesions = lesions[~(lesions["method"].isin(methods) & lesions["series_uid"].isin(unscorable))]
    points = _concat(points_parts, ("series_uid",))
    if settings.get("annotations") and points_parts:
        points = _with_unscored_points(points, Path(settings["annotations"]), scans)
    for name, df in (
        ("scans", scans),
        ("scores", scores),
        ("lesions", lesions),
        ("reference_points", points),
    ):
        if name in TABLES:
            check_table(df, TABLES[name], f"{name}.parquet")
        write_table(df.reset_index(drop=True), out_dir / f"{name}.parquet", meta)


def apply_scorability(scans: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """``scans`` with the verdicts of :mod:`cacflow.scorable` applied to its ``ok`` rows:
    status / reason of the not-scorable ones, notes joined into ``reason_detail``, and the
    measured ``noise_hu`` and ``blood_pool_hu`` columns (NaN where not measured)."""
    from cacflow.conventions import Status

    out = scans.copy()
    out["noise_hu"] = np.nan
    out["blood_pool_hu"] = np.nan
    if verdicts.empty:
        return out
    v = verdicts.drop_duplicates("series_uid").set_index("series_uid")
    idx = out["series_uid"].isin(v.index) & (out["status"] == Status.OK)
    uids = out.loc[idx, "series_uid"]
    out.loc[idx, "noise_hu"] = uids.map(v["noise_hu"]).astype(float).to_numpy()
    out.loc[idx, "blood_pool_hu"] = uids.map(v["blood_pool_hu"]).astype(float).to_numpy()
    bad = idx & out["series_uid"].map(v["status"]).eq(Status.NOT_SCORABLE)
    out.loc[bad, "status"] = str(Status.NOT_SCORABLE)
    out.loc[bad, "reason"] = out.loc[bad, "series_uid"].map(v["reason"])
    notes = out.loc[idx, "series_uid"].map(v["reason_detail"]).fillna("")
    old = out.loc[idx, "reason_detail"].fillna("").astype(str)
    joined = [("; ".join(x for x in (a, b) if x)) or None for a, b in zip(old, notes, strict=True)]
    out.loc[idx, "reason_detail"] = joined
    return out


def _with_unscored_points(points: pd.DataFrame, annotations: Path, scans: pd.DataFrame):
    """``points`` plus every annotation row no batch reported (unknown or excluded series,
    outside the volumes of a split UID), sorted by annotation row: no row disappears."""
    from cacflow.reference import ANNOTATION_ROW, read_annotations, unscored_points

    table = read_annotations(annotations)
    table[ANNOTATION_ROW] = np.arange(len(table))
    rest = unscored_points(table, points, scans)
    if rest.empty:
        return points
    out = pd.concat([points, rest], ignore_index=True) if len(points) else rest
    return out.sort_values([ANNOTATION_ROW, "series_uid"], kind="stable")
