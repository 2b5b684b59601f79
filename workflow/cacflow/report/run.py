"""The ``report`` step: ``report.html`` of a dataset from its tables (and, when given, the
decision-feedback maps of one batch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from cacflow.conventions import REFERENCE_METHOD
from cacflow.provenance import atomic_path, read_meta
from cacflow.tables import read_table


def provenance_rows(settings: dict[str, Any]) -> list[list[str]]:
    """Rows of the report's "What you are looking at" table: the data, then per method what
    it was trained on."""
    from cacflow.methods.registry import METHODS

    rows = [["data", data_source(settings)]]
    for m in settings.get("methods", []):
        domain = METHODS[m].training_domain if m in METHODS else "not stated"
        rows.append([f"method {m}", domain])
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
    qc_inputs: tuple[Path, Path] | None = None,
    seg_dir: Path | None = None,
) -> None:
    """Render ``report.html`` from a dataset's tables; ``feedback_dirs`` (analysis volumes,
    ``direct`` predictions of one batch) add the decision-feedback figures, ``qc_inputs``
    (the dataset's work folder and manifest) the scan QC pictures
    (:mod:`cacflow.report.qc`), ``seg_dir`` (the `seg` step's folder) links to the DICOM
    SEG files of the pictured scans."""
    from cacflow.methods.registry import METHODS
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
    with_maps = [m for m in settings.get("methods", []) if m in METHODS and METHODS[m].feedback]
    scans = table("scans")
    if qc_inputs:
        from cacflow.report.qc import qc_section

        qc = qc_section(*qc_inputs, settings, scans, scores, reference)
    else:
        qc = None
    if qc is not None and seg_dir is not None:
        from cacflow.report.qc import add_seg_links

        qc = add_seg_links(qc, seg_dir, out.parent)
    html = render_report(
        dataset=settings["dataset"],
        reference=reference,
        scans=scans,
        scores=scores,
        agreement=table("agreement"),
        confusion=table("confusion"),
        conventions=json.loads(json.dumps(conventions, default=str)),
        counts=counts,
        lesions=table("lesions"),
        detection=table("detection"),
        subgroups=table("subgroups"),
        reference_points=table("reference_points"),
        feedback=feedback_examples(pairs, scores, reference, method=with_maps[0])
        if pairs and with_maps
        else [],
        provenance_rows=provenance_rows(settings),
        qc=qc,
    )
    from cacflow.study.run import study_enabled

    if study_enabled(settings):
        from cacflow.study.report import add_study_section

        html = add_study_section(html, data_dir)
    from cacflow.methods.segment.report import add_triage_section

    html = add_triage_section(html, data_dir)
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
