"""Batch-level glue between the workflow steps and the science modules.

Each function here reads a step's inputs, calls the package functions that hold the
science (reference, methods, calcium/score, stats, report) and writes the step's outputs
atomically with provenance. No conventions are decided here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cacflow.conventions import REFERENCE_METHOD, ScoringConventions, Status, schemes_from_config
from cacflow.provenance import atomic_path, provenance, read_meta, write_table
from cacflow.scorable import SCORABLE_COLUMNS
from cacflow.tables import (
    LESIONS_COLUMNS,
    SCANS_COLUMNS,
    SCORES_COLUMNS,
    read_table,
    with_columns,
)
from cacflow.volume import list_volumes, read_geometry, read_volume

POINTS_FILE = "points.parquet"
SLICE_PREDICTIONS_FILE = "slice_predictions.parquet"
"""Written by methods that predict per-slice scores instead of voxel labels (``direct``)."""
EXTRA_REFERENCE_LABEL = "reference_scores"
"""Method label of a dataset's reference_scores table when annotations provide the reference."""


def _progress(step: str, i: int, n: int, name: str) -> None:
    print(f"{step}: {i}/{n} {name}", flush=True)


def reference_batch(
    images: Path,
    annotations: Path,
    out_dir: Path,
    scoring: dict[str, Any],
    manifest: Path | None = None,
) -> int:
    """Reference label masks for every volume of ``images`` from point annotations.

    Writes ``out_dir/<series_uid>.nii`` (uint8 labels) and ``out_dir/points.parquet``
    (one row per annotation point of these series: ``point_status``, snapped distance,
    conflicts, ``annotation_row``). With the dataset's ``manifest``, points keyed by a
    SeriesInstanceUID that holds several series are resolved to the series whose volume
    holds them (:func:`cacflow.reference.resolve_series`).
    """
    from cacflow.reference import (
        ANNOTATION_ROW,
        match_status,
        read_annotations,
        read_series_boxes,
        reference_labels,
        resolve_series,
    )
    from cacflow.score import write_labels

    conv = ScoringConventions.from_config(scoring)
    points = read_annotations(annotations)
    points[ANNOTATION_ROW] = np.arange(len(points))
    boxes = (
        read_series_boxes(manifest, set(points["series_uid"]))
        if manifest is not None
        else pd.DataFrame()
    )
    points = resolve_series(points, boxes)
    by_series = dict(tuple(points.groupby("series_uid", sort=False)))
    out_dir.mkdir(parents=True, exist_ok=True)
    reports = []
    paths = list_volumes(images)
    for i, path in enumerate(paths, 1):
        vol = read_volume(path)
        uid = path.stem
        pts = by_series.get(uid, points.iloc[0:0])
        mask, report = reference_labels(vol, pts, conv)
        write_labels(mask, vol, out_dir / path.name)
        if len(report):
            reports.append(report.assign(series_uid=uid, point_status=match_status(report)))
        _progress("reference", i, len(paths), uid)
    table = pd.concat(reports, ignore_index=True) if reports else pd.DataFrame({"series_uid": []})
    write_table(table, out_dir / POINTS_FILE, provenance(conventions={"scoring": scoring}))
    return len(paths)


def run_method(
    method: str,
    images: Path,
    out_dir: Path,
    scoring: dict[str, Any],
    *,
    model: Path | None = None,
    device: str = "auto",
) -> int:
    """Run scoring method ``method`` on every volume of ``images`` into ``out_dir``."""
    if method == "hu-threshold":
        from cacflow.methods.hu_threshold import predict_mask
        from cacflow.score import write_labels

        conv = ScoringConventions.from_config(scoring)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = list_volumes(images)
        for i, path in enumerate(paths, 1):
            vol = read_volume(path)
            write_labels(predict_mask(vol, conv.threshold_hu), vol, out_dir / path.name)
            _progress(f"infer {method}", i, len(paths), path.stem)
        return len(paths)
    if method == "direct":
        from cacflow.methods.direct.infer import infer_dir

        return infer_dir(images, out_dir, model=model, device=device)
    raise ValueError(f"unknown method '{method}'")


def score_batch_files(
    images: Path,
    labels: Path,
    scans_path: Path,
    method: str,
    scoring: dict[str, Any],
    scores_out: Path,
    lesions_out: Path,
) -> int:
    """Score one batch for one source (reference or method) and write its two tables.

    ``labels`` holds label masks (``<series_uid>.nii``) or, for slice-regression methods,
    ``slice_predictions.parquet``; the latter have no lesions.
    """
    from cacflow.score import score_batch

    conv = ScoringConventions.from_config(scoring)
    scans = read_table(scans_path)
    if (labels / SLICE_PREDICTIONS_FILE).exists():
        scores = _scores_from_slice_predictions(images, labels, scans, method, conv)
        lesions = pd.DataFrame(columns=list(LESIONS_COLUMNS))
    else:
        scores, lesions = score_batch(images, labels, conv, method=method, scans=scans)
    meta = provenance(conventions={"scoring": scoring})
    write_table(with_columns(scores, SCORES_COLUMNS), scores_out, meta)
    write_table(with_columns(lesions, LESIONS_COLUMNS), lesions_out, meta)
    return int(scores["series_uid"].nunique()) if len(scores) else 0


def _scores_from_slice_predictions(
    images: Path, labels: Path, scans: pd.DataFrame, method: str, conv: ScoringConventions
) -> pd.DataFrame:
    """Scan scores of a slice-regression method: its predictions summed per artery."""
    from cacflow.methods.direct.predictions import scores_from_predictions

    pred = read_table(labels / SLICE_PREDICTIONS_FILE)
    frames = []
    ok = scans[scans["status"] == "ok"]
    for row in ok.itertuples():
        path = images / f"{row.series_uid}.nii"
        if not path.exists():
            continue
        geom = read_geometry(path)
        part = scores_from_predictions(
            pred[pred["series_uid"] == row.series_uid],
            geom.increment_mm,
            geom.slice_thickness_mm,
            conv,
        )
        if part.empty:  # no slice predicted: a scan without calcium
            part = pd.DataFrame({"artery": ["LAD", "LCX", "RCA", "total"], "agatston": 0.0})
        frames.append(part.assign(series_uid=row.series_uid, patient_id=row.patient_id))
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return with_columns(scores.assign(method=method), SCORES_COLUMNS)


def _concat(paths: list[Path], columns: tuple[str, ...]) -> pd.DataFrame:
    frames = [read_table(p) for p in paths]
    frames = [f for f in frames if len(f)]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))
    return with_columns(df, columns)


def score_tables_from_settings(settings: dict[str, Any]) -> list[pd.DataFrame]:
    """Score tables given as files in the dataset config (reference_scores, external_scores)."""
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
    conventions = {k: settings.get(k) for k in ("scoring", "schemes", "qc", "resample", "stats")}
    return provenance(settings.get("config_hash", ""), conventions)


def gather(
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
    scores = with_columns(scores, SCORES_COLUMNS)
    order = {s: i for i, s in enumerate(settings.get("sources", []))}
    scores["_src"] = scores["method"].map(order).fillna(len(order))
    artery_order = {"LAD": 0, "LCX": 1, "RCA": 2, "total": 3}
    scores["_art"] = scores["artery"].map(artery_order)
    scores = scores.sort_values(["_src", "method", "series_uid", "_art"], kind="stable")
    scores = scores.drop(columns=["_src", "_art"])
    lesions = _concat(lesions_parts, LESIONS_COLUMNS).sort_values(
        ["method", "series_uid", "artery", "z", "y", "x"], kind="stable"
    )
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
        write_table(df.reset_index(drop=True), out_dir / f"{name}.parquet", meta)


def apply_scorability(scans: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """``scans`` with the verdicts of :mod:`cacflow.scorable` applied to its ``ok`` rows:
    status / reason of the not-scorable ones, notes joined into ``reason_detail``, and the
    measured ``noise_hu`` and ``blood_pool_hu`` columns (NaN where not measured)."""
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


def run_stats(data_dir: Path, settings: dict[str, Any]) -> None:
    """Agreement, confusion, detection and subgroup tables (+ CSV copies in tables/)."""
    from cacflow import stats

    st = settings.get("stats") or {}
    reference = st.get("reference", REFERENCE_METHOD)
    schemes = schemes_from_config(settings.get("schemes"))
    scores = read_table(data_dir / "scores.parquet")
    scans = read_table(data_dir / "scans.parquet")
    lesions = read_table(data_dir / "lesions.parquet")
    has_ref = reference in set(scores["method"])
    boot = {"n_boot": st.get("n_boot", 1000), "seed": st.get("seed", 0)}
    kw: dict[str, Any] = {"reference": reference}
    if has_ref:
        agreement = stats.agreement_table(
            scores, schemes, ba_log=st.get("ba_log", False), **boot, **kw
        )
        confusion = stats.confusion_table(scores, schemes, **kw)
        detection = stats.detection_table(
            lesions,
            scores=scores,
            match_radius_mm=st.get("match_radius_mm", stats.MATCH_RADIUS_MM),
            **boot,
            **kw,
        )
        by = [c for c in st.get("subgroups", []) if c in scans.columns and len(scans)]
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
        write_table(df.reset_index(drop=True), data_dir / f"{name}.parquet", meta)
    csv_dir = data_dir / "tables"
    csv_dir.mkdir(parents=True, exist_ok=True)
    inputs = {"scans": scans, "scores": scores, "lesions": lesions}
    inputs["reference_points"] = read_table(data_dir / "reference_points.parquet")
    for name, df in (inputs | tables).items():
        with atomic_path(csv_dir / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)


def provenance_rows(settings: dict[str, Any]) -> list[list[str]]:
    """Rows of the report's "What you are looking at" table: the data, then per method what
    it was trained on."""
    from cacflow.methods import TRAINING_DOMAIN

    rows = [["data", data_source(settings)]]
    for m in settings.get("methods", []):
        rows.append([f"method {m}", TRAINING_DOMAIN.get(m, "not stated")])
    return rows


def data_source(settings: dict[str, Any]) -> str:
    """One line on where a dataset's images come from, for the report."""
    if "synthetic" in settings:
        domain = settings["synthetic"].get("domain", "v1")
        return f"synthetic CT written by `cacflow synth` (domain {domain}): phantoms, not patients"
    if "inserted" in settings:
        return (
            "real CT series with synthetic calcium inserted by `cacflow insert` at coronary "
            "positions on each scan's own heart (truth known by construction)"
        )
    if settings.get("has_dicom"):
        return "real DICOM series from the configured folder"
    return "score tables only (no images)"


def write_report(
    data_dir: Path,
    settings: dict[str, Any],
    out: Path,
    feedback_dirs: tuple[Path, Path] | None = None,
) -> None:
    """Render ``report.html`` from a dataset's tables; ``feedback_dirs`` (analysis volumes,
    ``direct`` predictions of one batch) add the decision-feedback figures."""
    from cacflow.report import render_report
    from cacflow.report.feedback import feedback_examples, feedback_pairs

    def table(name: str) -> pd.DataFrame:
        df = read_table(data_dir / f"{name}.parquet")
        df.attrs.update(read_meta(data_dir / f"{name}.parquet"))  # Parquet drops attrs
        return df

    counts = {
        k.removeprefix("count."): int(v)
        for k, v in read_meta(data_dir / "scans.parquet").items()
        if k.startswith("count.")
    }
    conventions = {
        k: settings.get(k) for k in ("scoring", "schemes", "qc", "resample", "stats", "methods")
    }
    conventions["config_hash"] = settings.get("config_hash")
    reference = (settings.get("stats") or {}).get("reference", REFERENCE_METHOD)
    scores = table("scores")
    pairs = feedback_pairs(*feedback_dirs) if feedback_dirs else []
    html = render_report(
        dataset=settings["dataset"],
        reference=reference,
        scans=table("scans"),
        scores=scores,
        agreement=table("agreement"),
        confusion=table("confusion"),
        conventions=json.loads(json.dumps(conventions, default=str)),
        counts=counts,
        lesions=table("lesions"),
        detection=table("detection"),
        subgroups=table("subgroups"),
        reference_points=table("reference_points"),
        feedback=feedback_examples(pairs, scores, reference),
        provenance_rows=provenance_rows(settings),
    )
    from cacflow.study.run import study_enabled

    if study_enabled(settings):
        from cacflow.study.report import add_study_section

        html = add_study_section(html, data_dir)
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
