"""Reference-method score pairs from the long scores table (CONTRACT §3).

A pair is one series scored by the reference and by a method (or external label) for one
artery, both values present. Per-artery values are NaN in external tables that give only a
total: those pairs are skipped, so ``n`` counts the pairs actually used.

The long table is turned into one dense array (artery x series x method) with integer
codes from ``pandas.factorize``: at 50,000 series this takes well under a second, where
row-wise string operations take many.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cacflow.conventions import ARTERIES, REFERENCE_METHOD, REGIONS, TOTAL

ARTERY_ORDER: tuple[str, ...] = (*ARTERIES, TOTAL, *REGIONS)
"""Order of arteries in every statistics table: LAD, LCX, RCA, total, then the
non-coronary regions TAC, AV, MV (where both sides provide them)."""

SCORE_COLUMNS = ("series_uid", "method", "artery")


@dataclass(frozen=True)
class Pairs:
    """Paired scores of one method and artery, sorted by ``series_uid``."""

    method: str
    artery: str
    series_uid: np.ndarray
    reference: np.ndarray
    values: np.ndarray

    @property
    def n(self) -> int:
        return int(self.series_uid.size)


@dataclass(frozen=True)
class WideScores:
    """Scores as a dense array ``values[artery, series, method]`` (NaN where absent).

    ``series_uid`` is sorted; ``methods`` keep their order of first appearance.
    """

    series_uid: np.ndarray
    methods: list[str]
    arteries: list[str]
    values: np.ndarray

    def column(self, artery: str, method: str) -> np.ndarray:
        """Values of one artery and method over all series (NaN where absent)."""
        if artery not in self.arteries or method not in self.methods:
            return np.full(self.series_uid.size, np.nan)
        return self.values[self.arteries.index(artery), :, self.methods.index(method)]


def method_order(scores: pd.DataFrame, reference: str = REFERENCE_METHOD) -> list[str]:
    """Methods other than the reference, in order of first appearance in ``scores``."""
    return [str(m) for m in pd.unique(scores["method"]) if m != reference]


def wide_scores(scores: pd.DataFrame, measure: str = "agatston") -> WideScores:
    """Dense (artery, series, method) array of ``measure``; raises on duplicated rows."""
    missing = [c for c in (*SCORE_COLUMNS, measure) if c not in scores.columns]
    if missing:
        raise ValueError(f"scores table lacks columns {missing}")
    s_code, uids = pd.factorize(scores["series_uid"], sort=True)
    m_code, methods = pd.factorize(scores["method"], sort=False)
    a_code, arteries = pd.factorize(scores["artery"], sort=False)
    if (s_code < 0).any() or (m_code < 0).any() or (a_code < 0).any():
        raise ValueError("scores table has rows without series_uid, method or artery")
    shape = (len(arteries), len(uids), len(methods))
    flat = np.ravel_multi_index((a_code, s_code, m_code), shape) if len(scores) else s_code
    if np.any(np.bincount(flat, minlength=1) > 1):
        n_dup = int((np.bincount(flat) > 1).sum())
        raise ValueError(f"scores table has {n_dup} duplicated (series_uid, method, artery) rows")
    values = np.full(int(np.prod(shape)), np.nan)
    values[flat] = scores[measure].to_numpy(dtype=float, na_value=np.nan)
    return WideScores(
        series_uid=np.asarray(uids, dtype=object),
        methods=[str(m) for m in methods],
        arteries=[str(a) for a in arteries],
        values=values.reshape(shape),
    )


def check_scores(scores: pd.DataFrame, reference: str, measure: str) -> WideScores:
    """The wide scores, after checking columns, duplicates and the reference's presence."""
    wide = wide_scores(scores, measure)
    if len(scores) and reference not in wide.methods:
        raise ValueError(f"scores table has no rows for the reference {reference!r}")
    return wide


def iter_pairs(
    scores: pd.DataFrame,
    *,
    reference: str = REFERENCE_METHOD,
    measure: str = "agatston",
    arteries: Collection[str] = ARTERY_ORDER,
    series: Collection[str] | None = None,
) -> Iterator[Pairs]:
    """Yield the pairs of each method x artery (method order, then LAD, LCX, RCA, total).

    ``series`` restricts to those series (subgroups). Groups with no pair are skipped.
    """
    wide = check_scores(scores, reference, measure)
    keep = np.ones(wide.series_uid.size, dtype=bool)
    if series is not None:
        keep = pd.Index(wide.series_uid).isin(pd.Index(list(series), dtype=object))
    for method in (m for m in wide.methods if m != reference):
        for artery in (a for a in ARTERY_ORDER if a in arteries and a in wide.arteries):
            ref = wide.column(artery, reference)
            val = wide.column(artery, method)
            ok = keep & np.isfinite(ref) & np.isfinite(val)
            if not ok.any():
                continue
            yield Pairs(
                method=method,
                artery=artery,
                series_uid=wide.series_uid[ok],
                reference=ref[ok],
                values=val[ok],
            )
