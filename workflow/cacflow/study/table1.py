"""Baseline characteristics by CAC category ("Table 1").

One row per covariate × level × category (and ``all``): numeric covariates as median
[IQR] (``median, q1, q3`` = 25th/75th percentiles, linear interpolation) of the non-missing
values with their count ``n``; text / boolean covariates as n (%) per level, percent of the
category's participants with a known value. ``text`` renders the cell as printed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ALL = "all"
TABLE1_COLUMNS = ("covariate", "level", "category", "n", "percent", "median", "q1", "q3", "text")


def _numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def table1(cohort: pd.DataFrame, covariates: list[str], labels: list[str]) -> pd.DataFrame:
    """``cohort``: one row per participant with ``category`` (index into ``labels``)."""
    groups = [(ALL, cohort)] + [
        (lab, cohort[cohort["category"] == i]) for i, lab in enumerate(labels)
    ]
    rows = []
    for name, part in groups:
        rows.append(_row("participants", "", name, len(part), np.nan, None, f"{len(part)}"))
    for cov in covariates:
        for name, part in groups:
            col = part[cov]
            if _numeric(cohort[cov]):
                x = col.dropna().astype(float)
                if len(x):
                    med, q1, q3 = (float(v) for v in np.percentile(x, [50, 25, 75]))
                    text = f"{med:.1f} [{q1:.1f}, {q3:.1f}]"
                else:
                    med = q1 = q3 = np.nan
                    text = "–"
                rows.append(_row(cov, "", name, len(x), np.nan, (med, q1, q3), text))
            else:
                known = col.dropna().astype(str)
                for lev in sorted(cohort[cov].dropna().astype(str).unique()):
                    k = int((known == lev).sum())
                    pct = 100.0 * k / len(known) if len(known) else np.nan
                    rows.append(_row(cov, lev, name, k, pct, None, f"{k} ({pct:.1f}%)"))
    return pd.DataFrame(rows, columns=list(TABLE1_COLUMNS))


def _row(cov, level, cat, n, pct, q, text) -> dict:
    med, q1, q3 = q if q else (np.nan, np.nan, np.nan)
    return {
        "covariate": cov,
        "level": level,
        "category": cat,
        "n": int(n),
        "percent": pct,
        "median": med,
        "q1": q1,
        "q3": q3,
        "text": text,
    }
