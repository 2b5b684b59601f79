"""Vectorised weighted kappa and accuracy against hand computation and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa

from cacflow.stats import accuracy, linear_kappa


def test_linear_kappa_hand_computed_3x3() -> None:
    # rows = reference, columns = method, N = 6
    table = np.array([[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    # weights |i-j|/2; observed weighted disagreement (0.5 + 0.5) / 6 = 1/6;
    # rows (3, 2, 1), columns (2, 2, 2): expected sum_ij w r_i c_j / N^2
    # = (3*1.5 + 2*1 + 1*1.5) * 2 / 36 = 4/9; kappa = 1 - (1/6) / (4/9) = 0.625
    assert linear_kappa(table) == pytest.approx(0.625, abs=1e-12)
    assert cohens_kappa(table, wt="linear").kappa == pytest.approx(0.625, abs=1e-12)


def test_accuracy_hand_computed() -> None:
    table = np.array([[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert accuracy(table) == pytest.approx(4 / 6)


def test_linear_kappa_equals_statsmodels_with_empty_categories() -> None:
    # category 2 empty for both raters, category 4 used by the method only
    table = np.array(
        [[40, 3, 0, 1, 0], [2, 10, 0, 0, 1], [0, 0, 0, 0, 0], [0, 1, 0, 7, 0], [0, 0, 0, 0, 0]]
    )
    assert linear_kappa(table) == pytest.approx(cohens_kappa(table, wt="linear").kappa, abs=1e-12)


def test_linear_kappa_vectorised_over_a_stack() -> None:
    rng = np.random.default_rng(5)
    stack = rng.integers(0, 30, size=(20, 4, 4))
    got = linear_kappa(stack)
    expected = [cohens_kappa(t, wt="linear").kappa for t in stack]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(accuracy(stack), [np.trace(t) / t.sum() for t in stack])


def test_kappa_undefined_when_everything_is_one_category() -> None:
    table = np.zeros((4, 4))
    table[0, 0] = 25
    assert np.isnan(linear_kappa(table))
    assert accuracy(table) == 1.0
    assert np.isnan(accuracy(np.zeros((3, 3))))


def test_perfect_agreement_gives_kappa_one() -> None:
    assert linear_kappa(np.diag([5, 3, 0, 2])) == pytest.approx(1.0)
