"""Reference-method score pairs from the long scores table (CONTRACT §3).

A pair is one series scored by the reference and by a method (or external label) for one
artery, both values present. Per-artery values are NaN in external tables that give only a
total: those pairs are skipped, so ``n`` counts the pairs actually used.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cacflow.conventions import ARTERIES, REFERENCE_METHOD, TOTAL

ARTERY_ORDER: tuple[str, ...] = (*ARTERIES, TOTAL)
"""Order of arteries in every statistics table: LAD, LCX, RCA, total."""

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


def method_order(scores: pd.DataFrame, reference: str = REFERENCE_METHOD) -> list[str]:
    """Methods other than the reference, in order of first appearance in ``scores``."""
    return [m for m in pd.unique(scores["method"]) if m != reference]


def check_scores(scores: pd.DataFrame, reference: str, measure: str) -> None:
    """Raise ``ValueError`` naming the problem if ``scores`` cannot be paired."""
    missing = [c for c in (*SCORE_COLUMNS, measure) if c not in scores.columns]
    if missing:
        raise ValueError(f"scores table lacks columns {missing}")
    dup = scores.duplicated(list(SCORE_COLUMNS))
    if dup.any():
        raise ValueError(
            f"scores table has {int(dup.sum())} duplicated (series_uid, method, artery) rows"
        )
    if len(scores) and reference not in set(scores["method"]):
        raise ValueError(f"scores table has no rows for the reference {reference!r}")


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
    check_scores(scores, reference, measure)
    if series is not None:
        scores = scores[scores["series_uid"].isin(list(series))]
    if scores.empty or reference not in set(scores["method"]):
        return
    wide = scores.pivot(index=["artery", "series_uid"], columns="method", values=measure)
    wide = wide.sort_index()
    present = set(wide.index.get_level_values("artery"))
    for method in method_order(scores, reference):
        for artery in (a for a in ARTERY_ORDER if a in arteries and a in present):
            sub = wide.xs(artery, level="artery")
            ref = sub[reference].to_numpy(dtype=float)
            val = sub[method].to_numpy(dtype=float)
            ok = np.isfinite(ref) & np.isfinite(val)
            if not ok.any():
                continue
            yield Pairs(
                method=method,
                artery=artery,
                series_uid=sub.index.to_numpy()[ok],
                reference=ref[ok],
                values=val[ok],
            )
