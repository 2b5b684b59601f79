"""The direct method's slice predictions and the scan scores they sum to.

Torch-free on purpose: the score step (rule ``score``, ``envs/imaging.yaml``, no torch)
turns the ``slice_predictions.parquet`` that :func:`.infer.infer_dir` wrote into scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cacflow.calcium import increment_factor
from cacflow.conventions import ARTERIES, TOTAL, ScoringConventions
from cacflow.volume import Geometry

PREDICTIONS_FILE = "slice_predictions.parquet"
PREDICTION_COLUMNS = ("series_uid", "slice", "artery", "pseudo_agatston")
"""One row per series x slice x artery; ``slice`` is the z index of the analysis volume,
``pseudo_agatston`` the slice's Agatston contribution (mm^2 x weight) before the increment
factor."""
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
