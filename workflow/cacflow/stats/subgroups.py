"""Agreement within subgroups of scans (kernel, slice thickness, manufacturer, ...)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from cacflow.conventions import REFERENCE_METHOD, TOTAL, Scheme
from cacflow.stats.agreement import (
    ACCURACY_PREFIX,
    BA_BIAS,
    ICC,
    KAPPA_PREFIX,
    TABLE_COLUMNS,
    estimates_frame,
    pair_estimates,
)
from cacflow.stats.bootstrap import DEFAULT_N_BOOT
from cacflow.stats.pairs import iter_pairs

SUBGROUP_STATISTICS = (ICC, BA_BIAS, KAPPA_PREFIX, ACCURACY_PREFIX)
"""Statistics computed per subgroup (``kappa_linear:`` and ``accuracy:`` for every scheme)."""

SUBGROUP_COLUMNS = ["group_by", "group", *TABLE_COLUMNS]
MISSING_GROUP = "missing"
"""Group name of series whose grouping value is missing (NaN / None)."""


def group_label(value: object) -> str:
    """Text label of a grouping value: ``3.0`` -> ``'3'``, ``0.625`` -> ``'0.625'``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING_GROUP
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def subgroup_table(
    scores: pd.DataFrame,
    scans: pd.DataFrame,
    by: Sequence[str],
    schemes: Mapping[str, Scheme],
    *,
    reference: str = REFERENCE_METHOD,
    arteries: Collection[str] = (TOTAL,),
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """ICC, Bland-Altman bias, kappa and accuracy per value of each ``scans`` column in ``by``.

    Columns ``group_by`` (the scans column), ``group`` (its value as text, ``missing`` for
    NaN), then those of the agreement table (``method, artery, statistic, value, ci_low,
    ci_high, n``). Groups are listed in sorted order of their values; ``arteries``
    defaults to ``total`` only. Series absent from ``scans`` belong to no group; an empty
    ``scans`` table (statistics-only dataset) gives an empty table.
    """
    frames = []
    if scans.empty:  # statistics-only dataset: no scans table, no subgroups
        by = []
    for column in by:
        if column not in scans.columns:
            raise ValueError(f"subgroup column {column!r} is not in the scans table")
        values = scans[["series_uid", column]].dropna(subset=["series_uid"])
        for value in sorted(pd.unique(values[column]), key=_sort_key):
            is_na = pd.isna(value)
            member = values[column].isna() if is_na else values[column] == value
            series = set(values.loc[member, "series_uid"])
            rows = [
                (
                    p,
                    pair_estimates(
                        p, schemes, n_boot=n_boot, seed=seed, statistics=SUBGROUP_STATISTICS
                    ),
                )
                for p in iter_pairs(scores, reference=reference, arteries=arteries, series=series)
            ]
            df = estimates_frame(rows)
            df.insert(0, "group", group_label(None if is_na else value))
            df.insert(0, "group_by", column)
            frames.append(df)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SUBGROUP_COLUMNS})
    return pd.concat(frames, ignore_index=True)[SUBGROUP_COLUMNS]


def _sort_key(value: object) -> tuple[int, float, str]:
    """Numbers first in numeric order, then text, missing last."""
    if pd.isna(value):
        return (2, 0.0, "")
    if isinstance(value, int | float | np.number):
        return (0, float(value), "")
    return (1, 0.0, str(value))
