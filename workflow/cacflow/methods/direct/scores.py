"""Scores of the direct method from its slice predictions (torch-free: the score step).

``cacflow infer direct`` writes ``slice_predictions.parquet`` (one row per series x slice
x artery, ``pseudo_agatston`` in mm^2 x weight before the increment factor); the score
step sums them per artery here, with the one increment convention of the scoring engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cacflow.calcium import increment_factor
from cacflow.conventions import ARTERIES, TOTAL, ScoringConventions, Status
from cacflow.tables import SCORES_COLUMNS, read_table, with_columns
from cacflow.volume import Geometry, read_geometry

PREDICTIONS_FILE = "slice_predictions.parquet"
PREDICTION_COLUMNS = ("series_uid", "slice", "artery", "pseudo_agatston")
SCORE_COLUMNS = ("series_uid", "artery", "agatston", "volume_mm3", "mass_mg", "n_lesions")


def scores_from_predictions(
    pred: pd.DataFrame, increment_mm: float, thickness_mm: float, conv: ScoringConventions
) -> pd.DataFrame:
    """Per-series Agatston scores from slice predictions.

    ``pred``: PREDICTION_COLUMNS (``pseudo_agatston`` in mm^2 x weight). Per series and
    artery, ``agatston`` = sum of the slice predictions x the increment factor of
    ``conv.increment_factor`` (``increment/3``: increment_mm / 3; ``increment/thickness``:
    increment_mm / thickness_mm) for the analysis geometry. Four rows per series (LAD, LCX,
    RCA, total = their sum), sorted by series_uid; ``volume_mm3``, ``mass_mg`` and
    ``n_lesions`` are NaN (the method predicts no lesions).
    """
    geom = Geometry(
        (0.0, 0.0, 0.0), (1.0, 1.0, float(increment_mm)), slice_thickness_mm=thickness_mm
    )
    factor = increment_factor(geom, conv)
    uids = sorted(pred["series_uid"].astype(str).unique())
    sums = (
        pred.assign(series_uid=pred["series_uid"].astype(str))
        .groupby(["series_uid", "artery"])["pseudo_agatston"]
        .sum()
    )
    idx = pd.MultiIndex.from_product([uids, list(ARTERIES)], names=["series_uid", "artery"])
    per = sums.reindex(idx, fill_value=0.0).unstack("artery")[list(ARTERIES)] * factor
    per[TOTAL] = per[list(ARTERIES)].sum(axis=1)
    out = per.stack().rename("agatston").reset_index()
    out["agatston"] = out["agatston"].astype(float)
    for c in ("volume_mm3", "mass_mg", "n_lesions"):
        out[c] = np.nan
    return out[list(SCORE_COLUMNS)]


def scores_from_slice_predictions(
    images: Path, labels: Path, scans: pd.DataFrame, method: str, conv: ScoringConventions
) -> pd.DataFrame:
    """Scan scores (scores.parquet rows) of one batch: the predictions in
    ``labels/slice_predictions.parquet`` summed per artery for every ``ok`` series of
    ``scans`` whose analysis volume is in ``images`` (its geometry gives the increment
    factor). A series without any predicted slice gets four 0 rows."""
    pred = read_table(Path(labels) / PREDICTIONS_FILE)
    frames = []
    ok = scans[scans["status"] == Status.OK]
    for row in ok.itertuples():
        path = Path(images) / f"{row.series_uid}.nii"
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
            part = pd.DataFrame({"artery": [*ARTERIES, TOTAL], "agatston": 0.0})
        frames.append(part.assign(series_uid=row.series_uid, patient_id=row.patient_id))
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return with_columns(scores.assign(method=method), SCORES_COLUMNS)
