"""Scores of one series or a batch: label masks -> the ``scores`` and ``lesions`` tables.

The reference standard and every method go through :func:`score_volume`, which calls
the scoring engine :mod:`cacflow.calcium`; nothing here decides a convention.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cacflow.calcium import artery_scores, region_scores, score_lesions
from cacflow.conventions import Label, ScoringConventions, Status
from cacflow.tables import LESIONS_COLUMNS, SCORES_COLUMNS
from cacflow.volume import Volume, read_volume, write_volume

log = logging.getLogger(__name__)

GRID_TOLERANCE_MM = 1e-3
"""Origins and spacings of an image and its label mask closer than this (mm) are equal."""

OK_STATUS = Status.OK


def score_volume(
    vol: Volume,
    labels: np.ndarray,
    conv: ScoringConventions,
    *,
    series_uid: str,
    method: str,
    patient_id: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score one series: ``(scores, lesions)``.

    ``vol``: HU image (z, y, x); ``labels``: uint8 Label mask on the same grid.
    ``scores``: 7 rows (LAD, LCX, RCA, total, then the non-coronary regions TAC, AV, MV)
    with the columns of :data:`cacflow.tables.SCORES_COLUMNS` (the tables step keeps the
    region rows of the sources that provide them, :func:`cacflow.tables.provided_regions`);
    ``lesions``: one row per lesion (coronary and
    non-coronary) with :data:`cacflow.tables.LESIONS_COLUMNS`.
    """
    if labels.shape != vol.array.shape:
        raise ValueError(
            f"{series_uid}: label mask {labels.shape} and image {vol.array.shape} differ"
        )
    lesions = score_lesions(vol.array, vol.geometry, labels, conv)
    scores = pd.concat([artery_scores(lesions), region_scores(lesions)], ignore_index=True)
    scores.insert(0, "method", method)
    scores.insert(0, "patient_id", patient_id)
    scores.insert(0, "series_uid", series_uid)
    lesions = lesions.assign(series_uid=series_uid, method=method)
    return scores[list(SCORES_COLUMNS)], lesions[list(LESIONS_COLUMNS)]


def _same_grid(a: Volume, b: Volume) -> bool:
    ga, gb = a.geometry, b.geometry
    return (
        a.array.shape == b.array.shape
        and np.allclose(ga.origin, gb.origin, atol=GRID_TOLERANCE_MM)
        and np.allclose(ga.spacing, gb.spacing, atol=GRID_TOLERANCE_MM)
        and np.allclose(ga.direction, gb.direction, atol=GRID_TOLERANCE_MM)
    )


def score_batch(
    images_dir: Path,
    labels_dir: Path,
    conv: ScoringConventions,
    *,
    method: str,
    scans: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every ``ok`` series of ``scans`` whose image ``images_dir/<series_uid>.nii``
    exists, with the label mask ``labels_dir/<series_uid>.nii``.

    A series without a mask file scores zeros (no lesions). A mask on another grid than
    its image raises ValueError. Returns the concatenated ``(scores, lesions)``.
    """
    ok = scans[scans["status"] == OK_STATUS]
    scores, lesions = [], []
    for row in ok.itertuples(index=False):
        uid = str(row.series_uid)
        image_path = Path(images_dir) / f"{uid}.nii"
        if not image_path.exists():
            # an ok series always has its analysis image: a missing one means an earlier
            # step did not finish, and scoring on would silently drop the series
            raise FileNotFoundError(f"{image_path}: analysis image of an ok series is missing")
        vol = read_volume(image_path)
        label_path = Path(labels_dir) / f"{uid}.nii"
        if label_path.exists():
            lab = read_volume(label_path)
            if not _same_grid(vol, lab):
                raise ValueError(f"{label_path}: label mask is not on the grid of its image")
            mask = lab.array.astype(np.uint8, copy=False)
        else:
            mask = np.zeros(vol.array.shape, dtype=np.uint8)
        pid = getattr(row, "patient_id", None)
        pid = None if pid is None or pd.isna(pid) else str(pid)
        s, les = score_volume(vol, mask, conv, series_uid=uid, method=method, patient_id=pid)
        scores.append(s)
        if len(les):
            lesions.append(les)
    return _concat(scores, SCORES_COLUMNS), _concat(lesions, LESIONS_COLUMNS)


def _concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.concat(frames, ignore_index=True)[list(columns)]


def write_labels(mask: np.ndarray, like: Volume, path: str | os.PathLike) -> None:
    """Write a uint8 label mask as NIfTI on the grid of ``like`` (with a JSON sidecar).

    The sidecar keeps only ``series_uid`` from ``like.meta`` (no identifiers) and the
    Label legend.
    """
    if mask.shape != like.array.shape:
        raise ValueError(f"mask {mask.shape} and image {like.array.shape} differ in shape")

    meta = {"labels": {lab.name: int(lab) for lab in Label}}
    if "series_uid" in like.meta:
        meta["series_uid"] = like.meta["series_uid"]
    write_volume(Volume(mask.astype(np.uint8, copy=False), like.geometry, meta), path)


def score_batch_files(
    images: Path,
    labels: Path,
    scans_path: Path,
    method: str,
    scoring: dict,
    scores_out: Path,
    lesions_out: Path,
) -> int:
    """Score one batch for one source (reference or method) and write its two tables.

    ``labels`` holds label masks (``<series_uid>.nii``) or, for a registered method whose
    output is ``slice_scores`` (:mod:`cacflow.methods.registry`), its slice predictions,
    scored by that method's ``score_predictions`` entry point; those have no lesions.
    """
    from cacflow.methods.registry import METHODS
    from cacflow.provenance import provenance, write_table
    from cacflow.tables import read_table, with_columns

    conv = ScoringConventions.from_config(scoring)
    scans = read_table(scans_path)
    registered = METHODS.get(method)
    if registered is not None and registered.output == "slice_scores":
        predictions = registered.entry("score_predictions")
        scores = predictions(images, labels, scans, method, conv)
        lesions = pd.DataFrame(columns=list(LESIONS_COLUMNS))
    else:
        scores, lesions = score_batch(images, labels, conv, method=method, scans=scans)
    meta = provenance(conventions={"scoring": scoring})
    write_table(with_columns(scores, SCORES_COLUMNS), scores_out, meta)
    write_table(with_columns(lesions, LESIONS_COLUMNS), lesions_out, meta)
    return int(scores["series_uid"].nunique()) if len(scores) else 0
