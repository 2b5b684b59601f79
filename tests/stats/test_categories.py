"""Risk categories: edges and closed sides exactly as CONTRACT §4, no rounding."""

from __future__ import annotations

import numpy as np
import pytest

from cacflow.conventions import DEFAULT_SCHEMES, Closure, Scheme
from cacflow.stats import (
    categorize,
    confusion_matrix,
    confusion_table,
    matrix_from_table,
    n_categories,
    representative_scores,
    scores_from_confusion,
)


@pytest.mark.parametrize(
    ("scheme", "scores", "expected"),
    [
        # A: left-closed [1, 10, 100, 400] = {<1, [1,10), [10,100), [100,400), >=400}
        (
            "A",
            [0, 0.5, 0.9999, 1, 9.99, 10, 99.5, 100, 399.99, 400, 5000],
            [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4],
        ),
        # B: right-closed [10, 100, 1000] = {<=10, (10,100], (100,1000], >1000}
        ("B", [0, 10, 10.001, 100, 100.5, 1000, 1000.01], [0, 0, 1, 1, 2, 2, 3]),
        # C: left-closed [10, 100, 400, 1000]
        ("C", [9.99, 10, 100, 399, 400, 999.9, 1000], [0, 1, 2, 2, 3, 3, 4]),
        # nlst4: right-closed [0, 100, 300]: any score above 0 is CAC-positive
        ("nlst4", [0, 1e-6, 0.4, 100, 100.2, 300, 300.5], [0, 1, 1, 1, 2, 2, 3]),
    ],
)
def test_categorize_edges_and_closed_side(scheme: str, scores: list, expected: list) -> None:
    got = categorize(np.array(scores, dtype=float), DEFAULT_SCHEMES[scheme])
    assert got.tolist() == expected


def test_categorize_does_not_round() -> None:
    # 0.5 would round to 1 (category [1,10)) and 9.6 to 10; neither may move
    got = categorize(np.array([0.5, 9.6]), DEFAULT_SCHEMES["A"])
    assert got.tolist() == [0, 1]


def test_categorize_rejects_nan_and_unsorted_edges() -> None:
    with pytest.raises(ValueError, match="NaN"):
        categorize(np.array([1.0, np.nan]), DEFAULT_SCHEMES["A"])
    with pytest.raises(ValueError, match="increase"):
        categorize(np.array([1.0]), Scheme("bad", (10.0, 1.0), Closure.LEFT))


def test_categories_match_scheme_labels() -> None:
    for scheme in DEFAULT_SCHEMES.values():
        assert n_categories(scheme) == len(scheme.labels())


def test_representative_scores_fall_in_their_categories() -> None:
    a = representative_scores(DEFAULT_SCHEMES["A"])
    assert a.tolist() == [0.0, 5.5, 55.0, 250.0, 800.0]
    nl = representative_scores(DEFAULT_SCHEMES["nlst4"])
    assert nl.tolist() == [0.0, 50.0, 200.0, 600.0]
    for scheme in DEFAULT_SCHEMES.values():
        reps = representative_scores(scheme)
        assert categorize(reps, scheme).tolist() == list(range(n_categories(scheme)))


def test_confusion_matrix_hand_counts() -> None:
    ref = np.array([0, 0, 1, 2, 2, 2])
    met = np.array([0, 1, 1, 2, 2, 0])
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_array_equal(confusion_matrix(ref, met, 3), expected)


def test_scores_from_confusion_round_trips_through_confusion_table() -> None:
    matrix = np.array([[3, 0, 1, 0], [0, 0, 0, 0], [2, 1, 4, 0], [0, 0, 1, 5]])
    scheme = DEFAULT_SCHEMES["nlst4"]
    scores = scores_from_confusion(matrix, scheme, method="m")
    assert set(scores["method"]) == {"reference", "m"}
    assert scores["series_uid"].nunique() == matrix.sum()
    total = scores[scores["artery"] == "total"]
    assert total["agatston"].notna().all()
    assert scores[scores["artery"] != "total"]["agatston"].isna().all()
    table = confusion_table(scores, {"nlst4": scheme})
    np.testing.assert_array_equal(matrix_from_table(table, "m", "nlst4").to_numpy(), matrix)


def test_scores_from_confusion_checks_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        scores_from_confusion(np.ones((3, 3)), DEFAULT_SCHEMES["A"])


def test_docstring_examples() -> None:
    import doctest

    from cacflow.stats import categories

    result = doctest.testmod(categories)
    assert result.attempted >= 2 and result.failed == 0
