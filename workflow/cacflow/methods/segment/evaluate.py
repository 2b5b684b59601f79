"""Lesion detection of non-coronary regions (TAC, AV, MV) from a dataset's lesions table,
for the model card: ``detection.parquet`` covers the coronary arteries only.

Same matching as :mod:`cacflow.stats.detection` (one-to-one by position within
``radius_mm``, same series and region; :func:`~cacflow.stats.detection.match_lesions`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cacflow.conventions import REFERENCE_METHOD
from cacflow.stats.detection import MATCH_RADIUS_MM, match_lesions

REGIONS = ("TAC", "AV", "MV")


def region_detection(
    lesions: pd.DataFrame,
    method: str,
    regions: tuple[str, ...] = REGIONS,
    *,
    radius_mm: float = MATCH_RADIUS_MM,
    reference: str = REFERENCE_METHOD,
) -> pd.DataFrame:
    """Per region: ``n_reference, n_method, matched, sensitivity, ppv, f1`` of ``method``'s
    lesions against the reference's, over the series that have reference lesion rows or
    method lesion rows."""
    rows = []
    for region in regions:
        ref = lesions[(lesions["method"] == reference) & (lesions["artery"] == region)]
        met = lesions[(lesions["method"] == method) & (lesions["artery"] == region)]
        ref_ok, _ = match_lesions(
            ref.reset_index(drop=True),
            met.reset_index(drop=True),
            radius_mm=radius_mm,
            keys=("series_uid",),
        )
        tp, n_ref, n_met = int(ref_ok.sum()), len(ref), len(met)
        rows.append(
            {
                "region": region,
                "n_reference": n_ref,
                "n_method": n_met,
                "matched": tp,
                "sensitivity": tp / n_ref if n_ref else np.nan,
                "ppv": tp / n_met if n_met else np.nan,
                "f1": 2 * tp / (n_ref + n_met) if n_ref + n_met else np.nan,
            }
        )
    return pd.DataFrame(rows)
