"""cacflow.study.concordance: Harrell's C against lifelines and a brute-force count."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines.utils import concordance_index

from cacflow.study.concordance import _Plan, bootstrap_c, harrell_c


def _brute(time, event, risk) -> float:
    num = den = 0.0
    for i in range(len(time)):
        if not event[i]:
            continue
        for j in range(len(time)):
            if time[j] > time[i] or (time[j] == time[i] and not event[j] and i != j):
                den += 1
                num += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return num / den


@pytest.mark.parametrize("ties", [False, True])
def test_matches_lifelines_and_brute_force(ties: bool) -> None:
    rng = np.random.default_rng(7)
    n = 150
    x = rng.normal(size=n)
    t = rng.exponential(np.exp(-x))
    e = rng.uniform(size=n) < 0.6
    if ties:
        t, x = np.round(t, 1), np.round(x, 1)
    c = harrell_c(t, e, x)
    assert c == pytest.approx(concordance_index(t, -x, e), abs=1e-12)
    assert c == pytest.approx(_brute(t, e, x), abs=1e-12)


def test_weights_equal_an_explicit_resample() -> None:
    rng = np.random.default_rng(3)
    n = 120
    x = np.round(rng.normal(size=n), 1)
    t = np.round(rng.exponential(np.exp(-x)), 1)
    e = rng.uniform(size=n) < 0.5
    draw = rng.integers(0, n, n)
    w = np.bincount(draw, minlength=n).astype(float)
    weighted = _Plan(t, e, x).c_index(w[None, :])[0]
    assert weighted == pytest.approx(concordance_index(t[draw], -x[draw], e[draw]), abs=1e-12)


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=500)
    t = rng.exponential(np.exp(-x))
    e = np.ones(500, bool)
    a = bootstrap_c(t, e, {"x": x}, 60, seed=1)["x"]
    b = bootstrap_c(t, e, {"x": x}, 60, seed=1)["x"]
    np.testing.assert_array_equal(a, b)
    lo, hi = np.percentile(a, [2.5, 97.5])
    assert lo < harrell_c(t, e, x) < hi
