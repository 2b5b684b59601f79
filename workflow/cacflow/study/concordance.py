"""Harrell's C for many bootstrap weightings at once, in O(B · n log n).

Conventions (lifelines' ``concordance_index``): a pair (i, j) is comparable when i had the
event and j was observed longer (T_j > T_i), or at the same time but censored; it is
concordant when i's risk is higher, and a tie in risk counts one half. Higher ``risk`` means
shorter expected survival (e.g. a Cox linear predictor).

Bootstrap resamples are weightings of the participants (each one's multiplicity), so the
ordering work is done once and every resample costs a few cumulative sums: a weighted
inversion count over the levels of a bottom-up merge sort.
"""

from __future__ import annotations

import numpy as np


def _dense_rank(x: np.ndarray) -> np.ndarray:
    return np.unique(x, return_inverse=True)[1].astype(np.int64)


class _Plan:
    """Index arrays of one (time, event, risk) triple, reused for every weighting."""

    def __init__(self, time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> None:
        t = _dense_rank(np.asarray(time, dtype=float))
        e = np.asarray(event).astype(bool)
        q = _dense_rank(np.asarray(risk, dtype=float))
        # An event at time rank r has key 2r, a censored subject 2r + 1: "j comparable to
        # event i" is key_j > key_i (other events at the same time are excluded).
        key = 2 * t + (~e)
        self.n = n = len(key)
        self.event = e
        nk, nq = int(key.max(initial=0)) + 2, int(q.max(initial=0)) + 2
        # den: weight of subjects with a larger key
        order = np.argsort(key, kind="stable")
        self.den_perm = order
        self.den_idx = np.searchsorted(key[order], key, side="right")
        # eq: larger key and the same risk
        comb = q * nk + key
        order = np.argsort(comb, kind="stable")
        s = comb[order]
        self.eq_perm = order
        self.eq_lo = np.searchsorted(s, comb, side="right")
        self.eq_hi = np.searchsorted(s, (q + 1) * nk, side="left")
        # lt: larger key and a lower risk = later position (key, q ascending), lower q
        pos_order = np.lexsort((q, key))
        qp = q[pos_order]
        self.levels: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        pos = np.arange(n)
        size = 1
        while size < n:
            block = pos // size
            perm = np.lexsort((qp, block))
            arranged = block[perm] * nq + qp[perm]
            left = np.flatnonzero((block % 2 == 0) & ((block + 1) * size < n))
            target = (block[left] + 1) * nq + qp[left]
            g = np.searchsorted(arranged, target, side="left")
            start = (block[left] + 1) * size
            self.levels.append((pos_order[perm], pos_order[left], g, start))
            size *= 2

    def c_index(self, w: np.ndarray) -> np.ndarray:
        """Harrell's C for each row of integer weights ``w`` (B × n multiplicities)."""
        # Integer multiplicities: int32 cumulative sums are exact (n < 2**31) and move half
        # the memory of float64; products are summed in int64.
        w = np.atleast_2d(np.asarray(w)).astype(np.int32)
        b = w.shape[0]
        wd = w * self.event.astype(np.int32)

        def excl_cumsum(perm: np.ndarray) -> np.ndarray:
            c = np.empty((b, self.n + 1), dtype=np.int32)
            c[:, 0] = 0
            np.cumsum(w[:, perm], axis=1, out=c[:, 1:])
            return c

        def dot(a: np.ndarray, d: np.ndarray) -> np.ndarray:
            # a <= max multiplicity, d <= n: the int32 product cannot overflow for n < 2**26
            return (a * d).sum(axis=1, dtype=np.int64)

        c = excl_cumsum(self.den_perm)
        den = dot(wd, c[:, -1:] - c[:, self.den_idx])
        c = excl_cumsum(self.eq_perm)
        twice_num = dot(wd, c[:, self.eq_hi] - c[:, self.eq_lo])
        for perm, who, g, start in self.levels:
            c = excl_cumsum(perm)
            twice_num += 2 * dot(wd[:, who], c[:, g] - c[:, start])
        with np.errstate(invalid="ignore", divide="ignore"):
            return 0.5 * twice_num / den


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C of ``risk`` (higher = shorter survival) for right-censored data.

    >>> harrell_c(np.array([1., 2, 3, 4]), np.array([1, 1, 0, 1]), np.array([4., 3, 2, 1]))
    1.0
    """
    return float(_Plan(time, event, risk).c_index(np.ones(len(time)))[0])


def bootstrap_c(
    time: np.ndarray,
    event: np.ndarray,
    risks: dict[str, np.ndarray],
    n_boot: int,
    seed: int,
    chunk: int = 50,
) -> dict[str, np.ndarray]:
    """Harrell's C of each risk score on the same ``n_boot`` participant resamples.

    Resamples draw n participants with replacement (seeded); the fitted risks are held
    fixed (no refit, so the CI does not include model-selection optimism).
    """
    n = len(time)
    rng = np.random.default_rng(seed)
    plans = {name: _Plan(time, event, r) for name, r in risks.items()}
    out: dict[str, list[np.ndarray]] = {name: [] for name in risks}
    done = 0
    while done < n_boot:
        k = min(chunk, n_boot - done)
        draws = rng.integers(0, n, size=(k, n))
        w = np.zeros((k, n))
        np.add.at(w, (np.repeat(np.arange(k), n), draws.ravel()), 1.0)
        for name, plan in plans.items():
            out[name].append(plan.c_index(w))
        done += k
    return {name: np.concatenate(v) if v else np.array([]) for name, v in out.items()}
