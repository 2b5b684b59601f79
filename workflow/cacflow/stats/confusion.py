"""Risk-category confusion matrices of each method against the reference (total score)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from cacflow.conventions import REFERENCE_METHOD, TOTAL, Scheme
from cacflow.stats.categories import categorize, confusion_matrix, n_categories
from cacflow.stats.pairs import iter_pairs

CONFUSION_COLUMNS = ["method", "scheme", "reference_category", "method_category", "count"]


def confusion_table(
    scores: pd.DataFrame,
    schemes: Mapping[str, Scheme],
    *,
    reference: str = REFERENCE_METHOD,
    measure: str = "agatston",
) -> pd.DataFrame:
    """All k x k cells (zeros included) per method x scheme, on the ``total`` score.

    Category labels are ``Scheme.labels()``; rows come in category order (reference
    category, then method category, lowest first), so the table can be pivoted back into
    the matrix in order.
    """
    records: list[tuple[str, str, str, str, int]] = []
    for p in iter_pairs(scores, reference=reference, measure=measure, arteries=(TOTAL,)):
        for name, scheme in schemes.items():
            k = n_categories(scheme)
            labels = scheme.labels()
            m = confusion_matrix(categorize(p.reference, scheme), categorize(p.values, scheme), k)
            for i in range(k):
                for j in range(k):
                    records.append((p.method, name, labels[i], labels[j], int(m[i, j])))
    df = pd.DataFrame.from_records(records, columns=CONFUSION_COLUMNS)
    return df.astype({"count": "int64"})


def empty_confusion() -> pd.DataFrame:
    """A table with the confusion columns and no row (dataset without a reference)."""
    df = pd.DataFrame({c: pd.Series(dtype=object) for c in CONFUSION_COLUMNS})
    return df.astype({"count": "int64"})


def matrix_from_table(confusion: pd.DataFrame, method: str, scheme: str) -> pd.DataFrame:
    """The k x k matrix (rows reference, columns method) of one method x scheme.

    Labels keep their order of appearance in ``confusion`` (category order).
    """
    sub = confusion[(confusion["method"] == method) & (confusion["scheme"] == scheme)]
    labels = list(pd.unique(sub["reference_category"]))
    mat = sub.pivot(index="reference_category", columns="method_category", values="count")
    return mat.reindex(index=labels, columns=labels).fillna(0).astype(np.int64)
