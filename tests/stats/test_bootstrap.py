"""The vectorised bootstrap equals resampling with an explicit index matrix."""

from __future__ import annotations

import numpy as np
import pytest

from cacflow.stats import bootstrap
from cacflow.stats.bootstrap import bootstrap_sums, percentile_ci


def test_bootstrap_sums_equal_explicit_index_resampling() -> None:
    x = np.random.default_rng(0).normal(size=(37, 3))
    got = bootstrap_sums(x, 50, np.random.default_rng(11))  # distinct rows: series drawn
    idx = np.random.default_rng(11).integers(0, 37, size=(50, 37))
    np.testing.assert_allclose(got, x[idx].sum(axis=1), rtol=1e-12)


def test_chunking_does_not_change_the_resamples(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(1).random((40, 2))
    whole = bootstrap_sums(x, 30, np.random.default_rng(2))
    monkeypatch.setattr(bootstrap, "CHUNK_ELEMENTS", 40 * 7)  # 7 resamples per chunk
    chunked = bootstrap_sums(x, 30, np.random.default_rng(2))
    np.testing.assert_array_equal(whole, chunked)


def test_each_resample_draws_n_series() -> None:
    got = bootstrap_sums(np.ones((25, 1)), 40, np.random.default_rng(0))
    assert np.all(got == 25)


def test_percentile_ci_ignores_nan() -> None:
    v = np.concatenate([np.arange(101, dtype=float), [np.nan, np.inf]])
    assert percentile_ci(v) == pytest.approx((2.5, 97.5))
    assert np.isnan(percentile_ci(np.array([np.nan]))[0])


def test_pattern_path_has_the_bootstrap_distribution() -> None:
    # 0/1 indicator, 30 % ones: resampled sums are Binomial(n, 0.3)
    n = 500
    x = (np.arange(n) % 10 < 3).astype(float)
    sums = bootstrap_sums(x, 4000, np.random.default_rng(0))[:, 0]
    assert sums.mean() == pytest.approx(0.3 * n, rel=0.01)
    assert sums.var() == pytest.approx(n * 0.3 * 0.7, rel=0.08)
    # and agrees with drawing series explicitly
    explicit = bootstrap.resampled_sums(x[:, None], 4000, np.random.default_rng(1))[:, 0]
    assert explicit.var() == pytest.approx(sums.var(), rel=0.1)


def test_pattern_path_ignores_row_order() -> None:
    x = np.eye(3)[np.arange(90) % 3]
    a = bootstrap_sums(x, 50, np.random.default_rng(5))
    b = bootstrap_sums(x[::-1], 50, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert np.all(a.sum(axis=1) == 90)
