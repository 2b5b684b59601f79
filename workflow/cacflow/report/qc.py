"""Scan QC pictures of the report: what a reader checks first on a scan.

For each chosen scan, one figure of the axial slice of the analysis image with the most
calcium labelled by the QC method (the reference's when that method labelled none, the
middle slice of the heart region when neither did), the heart-region outline
(:func:`cacflow.heart.find_heart` on the analysis volume) and the calcium overlay: the QC
method's labelled voxels coloured by artery and the reference's labelled voxels outlined.

Which scans (:func:`choose_scans`): every **outlier** (:func:`outliers`) first, largest
disagreement first, then a deterministic **sample** of ``report.qc_sample`` scored scans
spread evenly over the range of scores, then ``report.qc_not_scorable`` not-scorable scans
(spread over series_uid order; no method overlay, the reason in the caption); at most
``report.qc_max`` in all, in that order (the report says how many the cap left out).

Outlier rule. With a reference: a scan on which a method's total Agatston score and the
reference's fall in different categories of scheme :data:`OUTLIER_SCHEME` (A by default:
<1, 1-10, 10-100, 100-400, >=400), *or* differ by more than
``max(OUTLIER_MIN_DIFF, OUTLIER_REL_DIFF x reference)`` (10 Agatston, 50 %). Without a
reference: a scan scored >= :data:`CROSS_HIGH` (400) by one source and < :data:`CROSS_LOW`
(10) by another; a high score alone is not an outlier.

The QC method is the first method of the config's ``methods`` whose registry output is
``labels`` (voxel masks); ``slice_scores`` methods (``direct``) have no voxels to draw
(their decision-feedback figures are a section of their own).

Files: the analysis volume ``work/resampled/<batch>/<series_uid>.nii`` and masks
``work/labels/<source>/<batch>/<series_uid>.nii``; each chosen scan's batch comes from the
manifest's batch assignment (:func:`cacflow.dicom.discover.assign_batches`), so the report
reads only the chosen scans' files, never a listing of every batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cacflow.conventions import DEFAULT_SCHEMES, REFERENCE_METHOD, TOTAL, Scheme, Status

QC_SAMPLE = 4
"""Default of ``report.qc_sample`` (schema): scans sampled besides the outliers."""
QC_MAX = 24
"""Default of ``report.qc_max`` (schema): most QC pictures in one report."""
OUTLIER_SCHEME = "A"
OUTLIER_MIN_DIFF = 10.0
"""Agatston: a difference above max(this, :data:`OUTLIER_REL_DIFF` x reference) is an
outlier."""
OUTLIER_REL_DIFF = 0.5
CROSS_HIGH = 400.0
"""Without a reference: a scan scored >= this by one source and < :data:`CROSS_LOW` by
another is an outlier."""
CROSS_LOW = 10.0
QC_NOT_SCORABLE = 2
"""Default of ``report.qc_not_scorable`` (schema): not-scorable scans pictured (middle
heart slice, no overlay)."""
REFERENCE_SOURCE = "reference"
"""Folder name of the reference's masks under ``work/labels``."""
SEG_INDEX_FILE = "index.parquet"
"""The DICOM SEG folder's table (:func:`cacflow.seg.export_report_segs` writes it)."""


@dataclass(frozen=True)
class Chosen:
    """One scan to picture and why (``outlier: ...``, ``sample`` or ``not_scorable``);
    ``reason``: the not-scorable reason code."""

    series_uid: str
    why: str
    outlier: bool
    reason: str | None = None


@dataclass
class Selection:
    """The scans to picture; ``cut_*``: outliers, sampled and not-scorable scans left
    out by the cap."""

    chosen: list[Chosen] = field(default_factory=list)
    n_outliers: int = 0
    cut_outliers: int = 0
    cut_sample: int = 0
    cut_not_scorable: int = 0


def qc_method(settings: dict[str, Any]) -> str | None:
    """The first configured method writing voxel label masks, or None."""
    from cacflow.methods.registry import METHODS

    for m in settings.get("methods", []):
        if m in METHODS and METHODS[m].output == "labels":
            return m
    return None


def totals(scores: pd.DataFrame) -> pd.DataFrame:
    """Total Agatston per series (rows, sorted) and source (columns); NaN where unscored."""
    t = scores[scores["artery"] == TOTAL]
    wide = t.pivot_table(index="series_uid", columns="method", values="agatston", aggfunc="first")
    return wide.sort_index()


def _category_text(scheme: Scheme, k: int) -> str:
    return scheme.labels()[int(k)]


def outliers(
    scores: pd.DataFrame,
    reference: str = REFERENCE_METHOD,
    scheme: Scheme = DEFAULT_SCHEMES[OUTLIER_SCHEME],
) -> list[Chosen]:
    """Scans that meet the outlier rule (module docstring), largest disagreement first
    (ties by series_uid); ``why`` names the source and both scores."""
    from cacflow.stats.categories import categorize

    wide = totals(scores)
    found: dict[str, tuple[float, str]] = {}

    def keep(uid: str, size: float, why: str) -> None:
        if uid not in found or size > found[uid][0]:
            found[uid] = (size, why)

    if reference in wide.columns:
        for m in (c for c in wide.columns if c != reference):
            pair = wide[[reference, m]].dropna()
            ref, met = pair[reference].to_numpy(), pair[m].to_numpy()
            cr, cm = categorize(ref, scheme), categorize(met, scheme)
            diff = np.abs(met - ref)
            bad = (cr != cm) | (diff > np.maximum(OUTLIER_MIN_DIFF, OUTLIER_REL_DIFF * ref))
            for uid, r, v, a, b, d in zip(
                pair.index[bad], ref[bad], met[bad], cr[bad], cm[bad], diff[bad], strict=True
            ):
                cats = (
                    f", scheme {scheme.name} {_category_text(scheme, b)} vs "
                    f"{_category_text(scheme, a)}"
                    if a != b
                    else ""
                )
                keep(uid, float(d), f"{m} {v:,.1f} vs {reference} {r:,.1f}{cats}")
    else:
        if wide.shape[1] >= 2:
            hi, lo = wide.max(axis=1), wide.min(axis=1)
            for uid in wide.index[(hi >= CROSS_HIGH) & (lo < CROSS_LOW)]:
                row = wide.loc[uid].dropna()
                keep(
                    uid,
                    float(hi[uid] - lo[uid]),
                    f"{row.idxmax()} {row.max():,.1f} vs {row.idxmin()} {row.min():,.1f}",
                )
    order = sorted(found, key=lambda u: (-found[u][0], u))
    return [Chosen(u, f"outlier: {found[u][1]}", True) for u in order]


def sample(uids_by_score: Sequence[str], n: int) -> list[str]:
    """``n`` of ``uids_by_score`` (sorted by score) at evenly spaced ranks, lowest and
    highest included; all of them when there are no more than ``n``."""
    k = len(uids_by_score)
    if n <= 0 or k == 0:
        return []
    if k <= n:
        return list(uids_by_score)
    idx = np.unique(np.round(np.linspace(0, k - 1, n)).astype(int))
    return [uids_by_score[i] for i in idx]


def choose_scans(
    scans: pd.DataFrame,
    scores: pd.DataFrame,
    by: str | None,
    reference: str = REFERENCE_METHOD,
    n_sample: int = QC_SAMPLE,
    n_max: int = QC_MAX,
    scheme: Scheme = DEFAULT_SCHEMES[OUTLIER_SCHEME],
    n_not_scorable: int = QC_NOT_SCORABLE,
) -> Selection:
    """Every outlier, then ``n_sample`` other ``ok`` scans spread over source ``by``'s
    scores (the reference's when ``by`` has none; series_uid order when neither), then
    ``n_not_scorable`` not-scorable scans spread over series_uid order; capped at ``n_max``
    in that order."""
    ok = set(scans.loc[scans["status"] == Status.OK, "series_uid"])
    out = [c for c in outliers(scores, reference, scheme) if c.series_uid in ok]
    wide = totals(scores)
    source = by if by in wide.columns else reference if reference in wide.columns else None
    rest = sorted(ok - {c.series_uid for c in out})
    if source is not None:
        score = wide[source].reindex(rest).fillna(-1.0)
        rest = sorted(rest, key=lambda u: (score[u], u))
    picked = [Chosen(u, "sample", False) for u in sample(rest, n_sample)]
    unscorable = scans[scans["status"] == Status.NOT_SCORABLE].sort_values("series_uid")
    why = unscorable["reason"] if "reason" in unscorable else [None] * len(unscorable)
    reasons = dict(zip(unscorable["series_uid"], why, strict=True))
    shown = [
        Chosen(u, "not_scorable", False, reasons[u]) for u in sample(list(reasons), n_not_scorable)
    ]
    every = out + picked + shown
    chosen = every[: max(n_max, 0)]
    kept = {c.series_uid for c in chosen}

    def cut(group: list[Chosen]) -> int:
        return sum(c.series_uid not in kept for c in group)

    return Selection(chosen, len(out), cut(out), cut(picked), cut(shown))


def batch_of(manifest: Path, batch_size: int, uids: Sequence[str]) -> dict[str, str]:
    """Batch id of each of ``uids`` in ``manifest`` (as the workflow assigned them)."""
    from cacflow.dicom.discover import assign_batches

    path = os.fspath(manifest)
    if path.lower().endswith((".parquet", ".pq")):
        series = pd.read_parquet(path, columns=["series_uid"])
    else:
        series = pd.read_csv(path, usecols=["series_uid"])
    batches = assign_batches(series, batch_size).set_index("series_uid")["batch"]
    return {u: str(batches[u]) for u in uids if u in batches.index}


def _read(path: Path) -> np.ndarray | None:
    from cacflow.volume import read_volume

    return read_volume(path).array if path.exists() else None


def most_calcium_slice(*masks: np.ndarray | None) -> int | None:
    """Axial index (z) with the most labelled voxels of the first mask that has any."""
    for m in masks:
        if m is not None and m.any():
            return int(np.argmax((m > 0).sum(axis=(1, 2))))
    return None


def heart_slice(heart_mask: np.ndarray | None, n_slices: int) -> int:
    """The middle axial slice of the heart's z extent (not its largest slice: in
    non-contrast CT the mask's widest slices may be the liver dome, see
    :mod:`cacflow.heart`); the middle slice of the volume without a heart."""
    if heart_mask is None or not heart_mask.any():
        return n_slices // 2
    ks = np.flatnonzero(heart_mask.any(axis=(1, 2)))
    return int((ks[0] + ks[-1]) // 2)


def qc_figure_item(
    image_path: Path,
    method_mask: Path | None,
    reference_mask: Path | None,
    chosen: Chosen,
    method: str | None,
    wide: pd.DataFrame,
    reference: str,
) -> dict[str, Any]:
    """One QC picture and its caption facts (``series_uid``, ``slice``, ``n_slices``,
    ``why``, ``outlier``, ``status``, ``reason``, ``others`` ((source, total) of the
    other sources), ``method``, ``score``, ``reference``, ``heart``, ``uri``)."""
    from cacflow.heart import HEART_SUFFIX, find_heart
    from cacflow.report.plots import qc_figure
    from cacflow.volume import read_volume

    image = read_volume(image_path)
    scorable = chosen.reason is None
    labels = _read(method_mask) if method_mask and scorable else None
    ref = _read(reference_mask) if reference_mask else None
    heart = find_heart(image, image_path.with_name(f"{chosen.series_uid}{HEART_SUFFIX}"))
    heart_mask = heart.full_mask(image.array.shape) if heart is not None else None
    z = most_calcium_slice(labels, ref)
    if z is None:
        z = heart_slice(heart_mask, image.array.shape[0])
    sx, sy = image.geometry.spacing[0], image.geometry.spacing[1]
    uid = chosen.series_uid

    def total(source: str | None) -> float | None:
        if source is None or source not in wide.columns or uid not in wide.index:
            return None
        v = wide.at[uid, source]
        return None if pd.isna(v) else float(v)

    return {
        "series_uid": uid,
        "slice": z,
        "n_slices": int(image.array.shape[0]),
        "why": chosen.why,
        "outlier": chosen.outlier,
        "status": "ok" if scorable else "not_scorable",
        "reason": chosen.reason,
        "others": [
            (s, v)
            for s in wide.columns
            if s not in (method, reference) and (v := total(s)) is not None
        ],
        "method": method,
        "score": total(method),
        "reference": total(reference),
        "heart": heart is not None,
        "uri": qc_figure(
            image.array[z],
            heart_mask[z] if heart_mask is not None else None,
            labels[z] if labels is not None else None,
            ref[z] if ref is not None else None,
            (sx, sy),
        ),
    }


def _qc_settings(settings: dict[str, Any]) -> tuple[int, int, int, Scheme]:
    """``report.qc_sample``, ``qc_max``, ``qc_not_scorable`` and the outlier scheme."""
    from cacflow.conventions import schemes_from_config

    conf = settings.get("report") or {}
    n_sample = int(conf.get("qc_sample", QC_SAMPLE))
    n_max = int(conf.get("qc_max", QC_MAX))
    n_unscorable = int(conf.get("qc_not_scorable", QC_NOT_SCORABLE))
    schemes = schemes_from_config(settings.get("schemes"))
    return (
        n_sample,
        n_max,
        n_unscorable,
        schemes.get(OUTLIER_SCHEME, DEFAULT_SCHEMES[OUTLIER_SCHEME]),
    )


def select_scans(
    settings: dict[str, Any],
    scans: pd.DataFrame,
    scores: pd.DataFrame,
    reference: str = REFERENCE_METHOD,
) -> Selection:
    """The scans the report pictures (:func:`choose_scans` with the dataset's ``report``
    settings and QC method); the DICOM SEG export (:mod:`cacflow.seg`) writes the same."""
    n_sample, n_max, n_unscorable, scheme = _qc_settings(settings)
    method = qc_method(settings)
    return choose_scans(scans, scores, method, reference, n_sample, n_max, scheme, n_unscorable)


def qc_section(
    work: Path,
    manifest: Path,
    settings: dict[str, Any],
    scans: pd.DataFrame,
    scores: pd.DataFrame,
    reference: str = REFERENCE_METHOD,
) -> dict[str, Any]:
    """The report's "Scan QC pictures" section: ``pictures`` (see :func:`qc_figure_item`),
    ``n_outliers``, ``cut_outliers``, ``cut_sample``, ``missing`` (chosen scans whose
    volume was not found, e.g. a work folder cleaned after the run), ``method``,
    ``qc_sample``, ``qc_max`` and the outlier rule's numbers."""
    n_sample, n_max, n_unscorable, scheme = _qc_settings(settings)
    method = qc_method(settings)
    sel = select_scans(settings, scans, scores, reference)
    uids = [c.series_uid for c in sel.chosen]
    where = batch_of(manifest, int(settings["batch_size"]), uids) if manifest.exists() else {}
    wide = totals(scores)
    items = []
    for c in sel.chosen:
        b = where.get(c.series_uid)
        image = work / "resampled" / str(b) / f"{c.series_uid}.nii"
        if b is None or not image.exists():
            continue
        masks = work / "labels"
        items.append(
            qc_figure_item(
                image,
                masks / method / b / f"{c.series_uid}.nii" if method else None,
                masks / REFERENCE_SOURCE / b / f"{c.series_uid}.nii",
                c,
                method,
                wide,
                reference,
            )
        )
    return {
        "pictures": items,
        "method": method,
        "n_outliers": sel.n_outliers,
        "cut_outliers": sel.cut_outliers,
        "cut_sample": sel.cut_sample,
        "cut_not_scorable": sel.cut_not_scorable,
        "missing": len(sel.chosen) - len(items),
        "qc_not_scorable": n_unscorable,
        "qc_sample": n_sample,
        "qc_max": n_max,
        "scheme": scheme.name,
        "has_reference": reference in wide.columns,
        "min_diff": OUTLIER_MIN_DIFF,
        "rel_diff": OUTLIER_REL_DIFF,
        "cross_high": CROSS_HIGH,
        "cross_low": CROSS_LOW,
    }


def seg_links(seg_dir: Path, page_dir: Path) -> dict[str, list[tuple[str, str | None]]]:
    """(label source, link) pairs per series_uid from the SEG folder's index
    (:data:`SEG_INDEX_FILE`); the link is relative to the page's folder (None where
    the mask labelled no voxel, so no SEG was written)."""
    index = pd.read_parquet(seg_dir / SEG_INDEX_FILE)
    links: dict[str, list[tuple[str, str | None]]] = {}
    for row in index.itertuples(index=False):
        href = None
        if isinstance(row.file, str) and row.file:
            href = Path(os.path.relpath(seg_dir / row.file, page_dir)).as_posix()
        links.setdefault(str(row.series_uid), []).append((str(row.source), href))
    return links


def add_seg_links(qc: dict[str, Any], seg_dir: Path, page_dir: Path) -> dict[str, Any]:
    """``qc`` (:func:`qc_section`) with each picture's ``segs`` (:func:`seg_links`) and the
    section's ``seg_dir`` (relative to the page's folder)."""
    links = seg_links(seg_dir, page_dir)
    pictures = [{**f, "segs": links.get(f["series_uid"], [])} for f in qc["pictures"]]
    where = Path(os.path.relpath(seg_dir, page_dir)).as_posix()
    return {**qc, "pictures": pictures, "seg_dir": where}
