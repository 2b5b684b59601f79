"""Risk categories of Agatston scores and the confusion-matrix test-data builder.

A :class:`~cacflow.conventions.Scheme` has ``k`` edges and ``k + 1`` categories, indexed
0 (lowest) to ``k``. ``closed: left`` means category ``i`` (0 < i < k) is ``[e_(i-1), e_i)``;
``closed: right`` means ``(e_(i-1), e_i]`` (CONTRACT §4). Scores are never rounded before
they are categorised: with scheme A (left, edges 1, 10, 100, 400) a score of 0.5 is ``<1``
and 9.999 is ``[1,10)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cacflow.conventions import ARTERIES, REFERENCE_METHOD, TOTAL, Closure, Scheme

CONFUSION_ROWS_ARE = "reference"
"""Orientation of every confusion matrix here: rows = reference category, columns = method."""


def n_categories(scheme: Scheme) -> int:
    """Number of categories of ``scheme`` (edges + 1)."""
    return len(scheme.edges) + 1


def categorize(scores: np.ndarray, scheme: Scheme) -> np.ndarray:
    """Category index (0 .. len(edges)) of each Agatston score under ``scheme``.

    ``closed: left``: a score equal to an edge falls in the category above the edge;
    ``closed: right``: in the category below it. No rounding. NaN is not a score and raises
    ``ValueError`` (drop missing pairs before categorising).

    >>> from cacflow.conventions import DEFAULT_SCHEMES
    >>> categorize(np.array([0, 0.99, 1, 10, 399.9, 400]), DEFAULT_SCHEMES["A"]).tolist()
    [0, 0, 1, 2, 3, 4]
    >>> categorize(np.array([0, 0.01, 100, 100.5, 300, 301]), DEFAULT_SCHEMES["nlst4"]).tolist()
    [0, 1, 1, 2, 2, 3]
    """
    x = np.asarray(scores, dtype=float)
    if np.isnan(x).any():
        raise ValueError("categorize: scores contain NaN; drop missing values first")
    edges = np.asarray(scheme.edges, dtype=float)
    if np.any(np.diff(edges) <= 0):
        raise ValueError(f"scheme {scheme.name!r}: edges must increase strictly, got {edges}")
    # left-closed: index = number of edges <= x; right-closed: number of edges < x.
    side = "right" if Closure(scheme.closed) is Closure.LEFT else "left"
    return np.searchsorted(edges, x, side=side).astype(np.int64)


def confusion_matrix(ref_cat: np.ndarray, method_cat: np.ndarray, k: int) -> np.ndarray:
    """k x k count matrix, rows = reference category, columns = method category."""
    codes = np.asarray(ref_cat, dtype=np.int64) * k + np.asarray(method_cat, dtype=np.int64)
    return np.bincount(codes, minlength=k * k).reshape(k, k)


def representative_scores(scheme: Scheme) -> np.ndarray:
    """One Agatston score inside each category of ``scheme``, lowest category first.

    Lowest category: 0 when 0 belongs to it, else the first edge minus 1. Inner
    categories: the midpoint of their edges. Highest: twice the last edge (last edge + 1
    when that edge is <= 0). Each value is checked with :func:`categorize`.
    """
    e = np.asarray(scheme.edges, dtype=float)
    first = 0.0 if categorize(np.array([0.0]), scheme)[0] == 0 else e[0] - 1.0
    last = 2.0 * e[-1] if e[-1] > 0 else e[-1] + 1.0
    reps = np.concatenate([[first], (e[:-1] + e[1:]) / 2.0, [last]])
    assert np.array_equal(categorize(reps, scheme), np.arange(len(reps)))
    return reps


def scores_from_confusion(
    matrix: np.ndarray,
    scheme: Scheme,
    *,
    method: str = "method",
    reference: str = REFERENCE_METHOD,
) -> pd.DataFrame:
    """Long-format scores (CONTRACT §3) whose categories reproduce a confusion matrix.

    ``matrix[i, j]`` series have a reference score in category ``i`` and a ``method``
    score in category ``j`` of ``scheme`` (rows = reference, as printed in seed 000
    Table III). Each series gets the representative score of its categories
    (:func:`representative_scores`) as ``total``; per-artery rows, volume, mass and lesion
    counts are NaN, as for an external table that gives only a total. Series are named
    ``s000001``, ``s000002``, ... (patients ``p000001``, ...), in row-major cell order.
    """
    m = np.asarray(matrix)
    k = n_categories(scheme)
    if m.shape != (k, k):
        raise ValueError(f"matrix shape {m.shape} does not match scheme {scheme.name!r} ({k}x{k})")
    if np.any(m < 0) or not np.all(np.equal(np.mod(m, 1), 0)):
        raise ValueError("matrix must hold non-negative integer counts")
    reps = representative_scores(scheme)
    ref_cat, met_cat = np.divmod(np.repeat(np.arange(k * k), m.astype(np.int64).ravel()), k)
    n = ref_cat.size
    uids = [f"s{i:06d}" for i in range(1, n + 1)]
    pids = [f"p{i:06d}" for i in range(1, n + 1)]
    frames = []
    for name, cat in ((reference, ref_cat), (method, met_cat)):
        for artery in (*ARTERIES, TOTAL):
            value = reps[cat] if artery == TOTAL else np.full(n, np.nan)
            frames.append(
                pd.DataFrame(
                    {
                        "series_uid": uids,
                        "patient_id": pids,
                        "method": name,
                        "artery": artery,
                        "agatston": value,
                        "volume_mm3": np.nan,
                        "mass_mg": np.nan,
                        "n_lesions": np.nan,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)
