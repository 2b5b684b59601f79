"""Percentile bootstrap over series, vectorised.

Every bootstrapped statistic here is a function of column sums of per-series quantities
(confusion-cell indicators, lesion counts, volumes). One resample draws ``n`` series with
replacement; its column sums are ``W @ X`` with ``W[b, i]`` the number of times series ``i``
was drawn in resample ``b``. Resamples are drawn in chunks so that memory stays bounded
(about :data:`CHUNK_ELEMENTS` indices at a time) whatever the cohort size.

Determinism: the caller passes ``numpy.random.default_rng(seed)``; the same seed, the same
series order and the same ``n_boot`` give the same resamples.
"""

from __future__ import annotations

import numpy as np

DEFAULT_N_BOOT = 1000
"""Bootstrap resamples for confidence intervals (seed 003: 1000 iterations)."""

CI_PERCENTILES = (2.5, 97.5)
"""Percentile bootstrap 95 % interval."""

CHUNK_ELEMENTS = 5_000_000
"""Resampled indices held in memory at once (int64: 40 MB)."""


def bootstrap_sums(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Column sums of ``x`` (shape (n, m), one row per series) over ``n_boot`` resamples.

    Returns an array of shape ``(n_boot, m)``; float64.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    n, m = x.shape
    out = np.empty((n_boot, m))
    if n == 0 or n_boot == 0:
        out[:] = 0.0
        return out
    chunk = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        idx += (np.arange(b, dtype=np.int64) * n)[:, None]
        weights = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        out[start : start + b] = weights.astype(float) @ x
    return out


def percentile_ci(values: np.ndarray) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of bootstrap values, ignoring NaN (NaN if none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (np.nan, np.nan)
    lo, hi = np.percentile(v, CI_PERCENTILES)
    return (float(lo), float(hi))
