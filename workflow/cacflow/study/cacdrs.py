"""CAC-DRS (Hecht et al. 2018, SCCT guideline, J Cardiovasc Comput Tomogr 12:185–191).

Agatston category ``A``: 0 (score 0), 1 (1–99), 2 (100–299), 3 (≥ 300); scores are not
rounded, so (0, 100) is A1, [100, 300) A2, ≥ 300 A3. Vessel count ``N``: the number of
coronary arteries with calcium (score > 0) among LM, LAD, LCX, RCA. With the default
``scoring.artery_groups`` LM is counted with LAD, so N is at most 3 (N4 needs LM scored
on its own). A score of 0 is written ``0`` with no N; a score table without per-artery
scores gives A only (``cac_drs_n`` missing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CACDRS_EDGES = (100.0, 300.0)
"""Agatston edges of CAC-DRS A1/A2/A3 (closed on the left); A0 is a score of exactly 0."""
VESSELS = ("LM", "LAD", "LCX", "RCA")


def cacdrs_a(agatston: np.ndarray) -> np.ndarray:
    """CAC-DRS Agatston category 0–3 of total Agatston scores.

    >>> cacdrs_a(np.array([0, 0.4, 99.9, 100, 299, 300])).tolist()
    [0, 1, 1, 2, 2, 3]
    """
    x = np.asarray(agatston, dtype=float)
    cat = 1 + np.searchsorted(np.asarray(CACDRS_EDGES), x, side="right")
    return np.where(x > 0, cat, 0).astype(np.int64)


def cacdrs_table(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per series × method: ``cac_drs_a``, ``cac_drs_n``, ``cac_drs`` (text).

    ``scores``: the scores table (``series_uid, method, artery, agatston``; artery ``total``
    and the per-vessel rows).
    """
    wide = scores.pivot_table(
        index=["series_uid", "method"], columns="artery", values="agatston", aggfunc="sum"
    )
    total = wide["total"] if "total" in wide else wide.reindex(columns=VESSELS).sum(axis=1)
    vessels = [v for v in VESSELS if v in wide.columns]
    a = cacdrs_a(total.fillna(0).to_numpy())
    if vessels:
        n = pd.array(np.where(a > 0, (wide[vessels].fillna(0) > 0).sum(axis=1), 0), "Int64")
        text = np.where(a > 0, [f"A{i}/N{j}" for i, j in zip(a, n, strict=True)], "0")
    else:  # a total score only (e.g. a score table without arteries): no vessel count
        n = pd.array([pd.NA] * len(a), dtype="Int64")
        text = np.where(a > 0, [f"A{i}" for i in a], "0")
    return pd.DataFrame(
        {
            "series_uid": wide.index.get_level_values(0),
            "method": wide.index.get_level_values(1),
            "cac_drs_a": a,
            "cac_drs_n": n,
            "cac_drs": text,
        }
    )
