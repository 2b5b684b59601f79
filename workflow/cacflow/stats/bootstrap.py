"""Percentile bootstrap over series, vectorised.

Every bootstrapped statistic here is a function of column sums of per-series quantities
(confusion-cell indicators, lesion counts, volumes). One resample draws ``n`` series with
replacement and sums their rows. Two exact ways to do that, vectorised:

- few distinct rows (category indicators): draw how often each distinct row is picked,
  ``Multinomial(n, share of that row)`` -- the same distribution as drawing series;
- otherwise draw the series indices (chunks of :data:`CHUNK_ELEMENTS`, memory bounded
  whatever the cohort size) and sum with a count matrix product.

Determinism: the caller passes ``numpy.random.default_rng(seed)``; the same seed, the same
rows and the same ``n_boot`` give the same resamples (the pattern path does not depend on
the row order either).
"""

from __future__ import annotations

import numpy as np

DEFAULT_N_BOOT = 1000
"""Bootstrap resamples for confidence intervals (seed 003: 1000 iterations)."""

CI_PERCENTILES = (2.5, 97.5)
"""Percentile bootstrap 95 % interval."""

CHUNK_ELEMENTS = 5_000_000
"""Resampled indices held in memory at once (int64: 40 MB)."""

PROJECTION_SEED = 20190101
"""Fixed seed of the projection that keys rows when looking for repeated patterns."""

PATTERN_RATIO = 10
"""Sample pattern counts instead of series when there are at most n / PATTERN_RATIO
distinct rows."""


def bootstrap_sums(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Column sums of ``x`` (shape (n, m), one row per series) over ``n_boot`` resamples.

    Returns an array of shape ``(n_boot, m)``; float64. When the rows take few distinct
    values (category indicators, at most ``n / PATTERN_RATIO`` patterns), the number of
    times each pattern is drawn is sampled directly, ``Multinomial(n, pattern share)``:
    the same distribution as drawing series, at a fraction of the cost. Otherwise series
    indices are drawn (:func:`resampled_sums`).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    if n == 0 or n_boot == 0:
        return np.zeros((n_boot, x.shape[1]))
    found = row_patterns(x)
    if found is None or found[0].shape[0] * PATTERN_RATIO > n:
        return resampled_sums(x, n_boot, rng)
    patterns, inverse = found
    share = np.bincount(inverse, minlength=patterns.shape[0]) / n
    counts = rng.multinomial(n, share, size=n_boot)
    return counts.astype(float) @ patterns


def row_patterns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Distinct rows of ``x`` and each row's pattern index, or None (NaN in ``x``).

    Rows are keyed by a fixed random projection (fast on 50,000 x 100 values, unlike
    ``np.unique(axis=0)``); the grouping is verified exactly, so it is never wrong.
    The order of the patterns does not depend on the order of the rows.
    """
    key = x @ np.random.default_rng(PROJECTION_SEED).random(x.shape[1])
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    patterns = x[first]
    if not np.array_equal(patterns[inverse], x):
        return None
    return patterns, inverse.ravel()


def resampled_sums(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Column sums of ``x`` over ``n_boot`` resamples of its rows drawn with replacement.

    Resample ``b`` uses the indices ``rng.integers(0, n, size=(n_boot, n))[b]``, drawn in
    chunks of :data:`CHUNK_ELEMENTS`; its sums are ``W[b] @ x`` with ``W[b, i]`` the number
    of times row ``i`` was drawn.
    """
    x = np.asarray(x, dtype=float)
    n, m = x.shape
    out = np.empty((n_boot, m))
    chunk = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        idx += (np.arange(b, dtype=np.int64) * n)[:, None]
        weights = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)
        # one product per resample: a (b, n) @ (n, m) product rounds differently with b on
        # some BLAS builds, and a resample's sums must not depend on the chunk size
        for r in range(b):
            out[start + r] = weights[r] @ x
    return out


def percentile_ci(values: np.ndarray) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of bootstrap values, ignoring NaN (NaN if none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (np.nan, np.nan)
    lo, hi = np.percentile(v, CI_PERCENTILES)
    return (float(lo), float(hi))
