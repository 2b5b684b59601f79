"""Held-out evaluation of a direct model against the reference standard (model card).

The reference is what the workflow computes: the scoring engine
(:func:`cacflow.calcium.score_lesions`) on the reference label masks. The method's scores
come from :func:`.infer.predict_volume` and :func:`.scores.scores_from_predictions`.
Statistics: ICC(A,1) of the total and of each artery, linearly weighted kappa and accuracy
of the risk categories of scheme A (and the other default schemes), Bland-Altman bias.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cacflow.calcium import artery_scores, score_lesions
from cacflow.conventions import ARTERIES, DEFAULT_SCHEMES, TOTAL, ScoringConventions
from cacflow.methods.direct.infer import (
    DirectModel,
    predict_volume,
    prediction_rows,
)
from cacflow.methods.direct.runtime import configure, resolve_device
from cacflow.methods.direct.scores import scores_from_predictions
from cacflow.methods.direct.train import find_pairs
from cacflow.stats import categorize, confusion_matrix, icc_a1, linear_kappa
from cacflow.stats.kappa import accuracy
from cacflow.volume import read_volume


def score_pairs(
    model: Path,
    volumes: Path | Sequence[Path],
    labels: Path | Sequence[Path],
    conv: ScoringConventions,
    *,
    device: str = "cpu",
    threads: int | None = 1,
) -> pd.DataFrame:
    """Wide table, one row per series: ``ref_<artery>``, ``direct_<artery>`` (LAD, LCX, RCA,
    total) and ``seconds`` (registration + prediction, reading excluded)."""
    from cacflow.config import default_of

    configure(0, threads, resolve_device(device))
    net = DirectModel.load(model, device)
    min_pixel_mm = float(default_of("direct")["min_pixel_mm"])  # as the workflow's infer
    rows = []
    for vol_path, lab_path in find_pairs(volumes, labels):
        vol = read_volume(vol_path)
        lab = read_volume(lab_path).array
        ref = artery_scores(score_lesions(vol.array, vol.geometry, lab, conv))
        t0 = time.perf_counter()
        pred = predict_volume(net, vol, min_pixel_mm=min_pixel_mm)
        seconds = time.perf_counter() - t0
        g = vol.geometry
        got = scores_from_predictions(
            prediction_rows(vol_path.stem, pred, g), g.increment_mm, g.slice_thickness_mm, conv
        )
        row: dict[str, Any] = {"series_uid": vol_path.stem, "seconds": seconds}
        for a, v in zip(ref["artery"], ref["agatston"], strict=True):
            row[f"ref_{a}"] = float(v)
        for a, v in zip(got["artery"], got["agatston"], strict=True):
            row[f"direct_{a}"] = float(v)
        rows.append(row)
    return pd.DataFrame(rows)


def metrics(table: pd.DataFrame) -> dict[str, float]:
    """Agreement statistics of a :func:`score_pairs` table."""
    out: dict[str, float] = {"n": float(len(table))}
    for a in (*ARTERIES, TOTAL):
        r, m = table[f"ref_{a}"].to_numpy(), table[f"direct_{a}"].to_numpy()
        out[f"icc_{a}"] = icc_a1(np.column_stack([r, m])).value
        out[f"bias_{a}"] = float(np.mean(m - r))
    r, m = table[f"ref_{TOTAL}"].to_numpy(), table[f"direct_{TOTAL}"].to_numpy()
    for name, scheme in DEFAULT_SCHEMES.items():
        k = len(scheme.edges) + 1
        cm = confusion_matrix(categorize(r, scheme), categorize(m, scheme), k)
        out[f"kappa_linear:{name}"] = float(linear_kappa(cm))
        out[f"accuracy:{name}"] = float(accuracy(cm))
    out["seconds_median"] = float(table["seconds"].median())
    return out


def confusion(table: pd.DataFrame, scheme: str = "A") -> np.ndarray:
    """Risk-category count matrix (rows reference, columns direct) of the totals."""
    s = DEFAULT_SCHEMES[scheme]
    r, m = table[f"ref_{TOTAL}"].to_numpy(), table[f"direct_{TOTAL}"].to_numpy()
    return confusion_matrix(categorize(r, s), categorize(m, s), len(s.edges) + 1)
