"""Linearly weighted Cohen's kappa and accuracy from confusion counts, vectorised.

Both work on a stack of k x k count matrices (shape ``(..., k, k)``, rows = reference,
columns = method) so that a bootstrap of 1000 resamples is one array operation. The point
estimate equals ``statsmodels.stats.inter_rater.cohens_kappa(table, wt='linear')`` on the
full k x k table, empty categories included (tested).

Linear disagreement weights ``w_ij = |i - j| / (k - 1)``;
``kappa = 1 - sum(w * observed) / sum(w * expected)`` with
``expected_ij = row_i * col_j / N``. Undefined (NaN) when the expected weighted
disagreement is 0, i.e. both raters put every series in the same single category.
"""

from __future__ import annotations

import numpy as np


def linear_weights(k: int) -> np.ndarray:
    """k x k linear disagreement weights ``|i - j| / (k - 1)``."""
    idx = np.arange(k, dtype=float)
    return np.abs(idx[:, None] - idx[None, :]) / max(k - 1, 1)


def linear_kappa(counts: np.ndarray) -> np.ndarray:
    """Linearly weighted kappa of each k x k count matrix in ``counts`` (shape (..., k, k))."""
    c = np.asarray(counts, dtype=float)
    k = c.shape[-1]
    w = linear_weights(k)
    total = c.sum(axis=(-2, -1))
    rows = c.sum(axis=-1)
    cols = c.sum(axis=-2)
    observed = (c * w).sum(axis=(-2, -1))
    # sum_ij w_ij * row_i * col_j / N, without building the (..., k, k) expected matrix
    expected = np.einsum("...i,ij,...j->...", rows, w, cols)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = expected / total
        kappa = 1.0 - observed / expected
    return np.where(expected > 0, kappa, np.nan)


def accuracy(counts: np.ndarray) -> np.ndarray:
    """Fraction (0..1) of series on the diagonal of each k x k count matrix."""
    c = np.asarray(counts, dtype=float)
    total = c.sum(axis=(-2, -1))
    diag = np.trace(c, axis1=-2, axis2=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, diag / total, np.nan)
