"""Agreement between each method and the reference: ICC, correlation, Bland-Altman, kappa.

Statistics (column ``statistic`` of ``agreement.parquet``; CIs are 95 %):

- ``icc``: ICC(A,1), two-way model, absolute agreement, single measures (McGraw & Wong
  1996; Koo & Li 2016 "two-way, absolute agreement, single rater"), from the two-way ANOVA
  mean squares of the n x 2 table (reference, method). CI: McGraw & Wong's F-based interval
  with Satterthwaite degrees of freedom, at full precision (pingouin rounds its CI95 to two
  decimals; ours rounds to it, tested).
- ``pearson`` (CI: Fisher z), ``spearman`` (CI: Fisher z with the Fieller-Hartley-Pearson
  variance 1.06 / (n - 3)).
- ``ba_bias``, ``ba_loa_low``, ``ba_loa_high``: Bland-Altman on differences method -
  reference; limits bias -/+ 1.96 SD (SD with n - 1). CIs from the approximate standard
  errors of Bland & Altman 1999: SE(bias) = SD / sqrt(n), SE(limit) = SD * sqrt(3 / n),
  times the t quantile with n - 1 degrees of freedom. With ``ba_log`` also the same on
  ln(x + 1) values: ``ba_bias_log``, ``ba_loa_low_log``, ``ba_loa_high_log``.
- ``kappa_linear:<scheme>`` and ``accuracy:<scheme>`` (fraction 0..1) of the risk
  categories of each scheme, on ``total`` only: risk categories are defined for the total
  Agatston score, not per artery. CIs: percentile bootstrap of series (``n_boot``
  resamples, ``numpy.random.default_rng(seed)`` created afresh for each method x artery, so
  a method's intervals do not depend on which other methods are in the table).

``n`` is the number of series pairs used. Groups with too few pairs for a statistic give
NaN (ICC and BA need 2 pairs; correlation CIs need 4).
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from cacflow.conventions import REFERENCE_METHOD, TOTAL, Scheme
from cacflow.stats.bootstrap import DEFAULT_N_BOOT, bootstrap_sums, percentile_ci
from cacflow.stats.categories import categorize, n_categories
from cacflow.stats.kappa import accuracy, linear_kappa
from cacflow.stats.pairs import ARTERY_ORDER, Pairs, iter_pairs

CI_LEVEL = 0.95
LOA_Z = 1.96
"""Bland-Altman limits of agreement: bias -/+ LOA_Z standard deviations."""
SPEARMAN_VARIANCE_FACTOR = 1.06
"""Fieller, Hartley & Pearson (1957): var(atanh(rho_s)) ~ 1.06 / (n - 3)."""

ICC = "icc"
PEARSON = "pearson"
SPEARMAN = "spearman"
BA_BIAS = "ba_bias"
BA_LOA_LOW = "ba_loa_low"
BA_LOA_HIGH = "ba_loa_high"
LOG_SUFFIX = "_log"
KAPPA_PREFIX = "kappa_linear:"
ACCURACY_PREFIX = "accuracy:"

ICC_FORM = "ICC(A,1): two-way, absolute agreement, single measures (McGraw & Wong 1996)"
TABLE_COLUMNS = ["method", "artery", "statistic", "value", "ci_low", "ci_high", "n"]


def kappa_statistic(scheme: str) -> str:
    """Statistic name of the linearly weighted kappa of a scheme, e.g. ``kappa_linear:A``."""
    return f"{KAPPA_PREFIX}{scheme}"


def accuracy_statistic(scheme: str) -> str:
    """Statistic name of the category accuracy of a scheme, e.g. ``accuracy:A``."""
    return f"{ACCURACY_PREFIX}{scheme}"


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95 % CI (NaN where undefined)."""

    value: float
    ci_low: float = np.nan
    ci_high: float = np.nan


def agreement_metadata(*, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict[str, str]:
    """Provenance of the statistics, for ``provenance.write_table(meta=...)``."""
    return {
        "icc_form": ICC_FORM,
        "ba_difference": "method - reference; limits bias -/+ 1.96 SD; CIs Bland & Altman 1999",
        "kappa": "Cohen's kappa, linear weights, full k x k table (statsmodels cohens_kappa)",
        "bootstrap": f"percentile 2.5/97.5, {n_boot} resamples of series, default_rng({seed})",
        "correlation_ci": "Fisher z (Spearman: variance 1.06/(n-3))",
    }


# --------------------------------------------------------------------------- ICC


def anova_mean_squares(ratings: np.ndarray) -> tuple[float, float, float]:
    """Two-way ANOVA mean squares of an n x k ratings table (subjects x raters).

    Returns ``(ms_rows, ms_columns, ms_error)``: between subjects (df n - 1), between
    raters (df k - 1) and residual (df (n - 1)(k - 1)).
    """
    x = np.asarray(ratings, dtype=float)
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_err = np.sum((x - grand) ** 2) - ss_rows - ss_cols
    return (
        ss_rows / (n - 1),
        ss_cols / (k - 1),
        max(ss_err, 0.0) / ((n - 1) * (k - 1)),
    )


def icc_a1(ratings: np.ndarray) -> Estimate:
    """ICC(A,1) of an n x k table (subjects x raters) with McGraw & Wong's 95 % CI."""
    x = np.asarray(ratings, dtype=float)
    n, k = x.shape
    if n < 2 or k < 2:
        return Estimate(np.nan)
    msr, msc, mse = anova_mean_squares(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        # Satterthwaite degrees of freedom of the denominator (McGraw & Wong 1996, Table 7)
        a = k * rho / (n * (1.0 - rho))
        b = 1.0 + k * rho * (n - 1) / (n * (1.0 - rho))
        v = (a * msc + b * mse) ** 2 / (
            (a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1))
        )
    if not (np.isfinite(rho) and np.isfinite(v) and v > 0):
        return Estimate(float(rho))
    q = 1.0 - (1.0 - CI_LEVEL) / 2.0
    f_up = sps.f.ppf(q, n - 1, v)
    f_dn = sps.f.ppf(q, v, n - 1)
    c = k * msc + (k * n - k - n) * mse
    low = n * (msr - f_up * mse) / (f_up * c + n * msr)
    high = n * (f_dn * msr - mse) / (c + n * f_dn * msr)
    return Estimate(float(rho), float(low), float(high))


# ------------------------------------------------------------------ correlation


def _fisher_ci(r: float, n: int, variance_factor: float = 1.0) -> tuple[float, float]:
    if not np.isfinite(r) or n <= 3:
        return (np.nan, np.nan)
    if abs(r) >= 1.0:
        return (float(r), float(r))
    z = np.arctanh(r)
    half = sps.norm.ppf(1.0 - (1.0 - CI_LEVEL) / 2.0) * np.sqrt(variance_factor / (n - 3))
    return (float(np.tanh(z - half)), float(np.tanh(z + half)))


def _constant(x: np.ndarray) -> bool:
    return bool(x.size == 0 or np.all(x == x[0]))


def pearson(x: np.ndarray, y: np.ndarray) -> Estimate:
    """Pearson r with Fisher-z 95 % CI (NaN when either variable is constant)."""
    if x.size < 2 or _constant(x) or _constant(y):
        return Estimate(np.nan)
    r = float(sps.pearsonr(x, y).statistic)
    return Estimate(r, *_fisher_ci(r, x.size))


def spearman(x: np.ndarray, y: np.ndarray) -> Estimate:
    """Spearman rho with Fisher-z 95 % CI, variance 1.06 / (n - 3)."""
    if x.size < 2 or _constant(x) or _constant(y):
        return Estimate(np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = float(sps.spearmanr(x, y).statistic)
    return Estimate(r, *_fisher_ci(r, x.size, SPEARMAN_VARIANCE_FACTOR))


# --------------------------------------------------------------- Bland-Altman


def bland_altman(reference: np.ndarray, method: np.ndarray) -> dict[str, Estimate]:
    """Bias and limits of agreement of ``method - reference`` with Bland & Altman 1999 CIs.

    Keys ``ba_bias``, ``ba_loa_low``, ``ba_loa_high``; units of the inputs.
    """
    d = np.asarray(method, dtype=float) - np.asarray(reference, dtype=float)
    n = d.size
    if n < 2:
        bias = float(d.mean()) if n else np.nan
        return {
            BA_BIAS: Estimate(bias),
            BA_LOA_LOW: Estimate(np.nan),
            BA_LOA_HIGH: Estimate(np.nan),
        }
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    t = sps.t.ppf(1.0 - (1.0 - CI_LEVEL) / 2.0, n - 1)
    se_bias = sd / np.sqrt(n)
    se_loa = sd * np.sqrt(3.0 / n)
    out = {BA_BIAS: Estimate(bias, bias - t * se_bias, bias + t * se_bias)}
    for key, limit in ((BA_LOA_LOW, bias - LOA_Z * sd), (BA_LOA_HIGH, bias + LOA_Z * sd)):
        out[key] = Estimate(limit, limit - t * se_loa, limit + t * se_loa)
    return out


# ------------------------------------------------------------ risk categories


def category_estimates(
    reference: np.ndarray,
    method: np.ndarray,
    schemes: Mapping[str, Scheme],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> dict[str, Estimate]:
    """``kappa_linear:<s>`` and ``accuracy:<s>`` of every scheme, bootstrap CIs.

    One set of resamples (drawn from ``default_rng(seed)``) serves all schemes.
    """
    n = np.asarray(reference).size
    if n == 0 or not schemes:
        return {}
    sizes = [n_categories(s) ** 2 for s in schemes.values()]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    onehot = np.zeros((n, int(offsets[-1])))
    rows = np.arange(n)
    for off, scheme in zip(offsets[:-1], schemes.values(), strict=True):
        k = n_categories(scheme)
        onehot[rows, off + categorize(reference, scheme) * k + categorize(method, scheme)] = 1.0
    point = onehot.sum(axis=0)
    boot = bootstrap_sums(onehot, n_boot, np.random.default_rng(seed)) if n_boot else None
    out: dict[str, Estimate] = {}
    for off, (name, scheme) in zip(offsets[:-1], schemes.items(), strict=True):
        k = n_categories(scheme)
        cells = slice(off, off + k * k)
        counts = point[cells].reshape(k, k)
        for stat, fn in (
            (kappa_statistic(name), linear_kappa),
            (accuracy_statistic(name), accuracy),
        ):
            ci = (np.nan, np.nan)
            if boot is not None:
                ci = percentile_ci(fn(boot[:, cells].reshape(-1, k, k)))
            out[stat] = Estimate(float(fn(counts)), *ci)
    return out


# ------------------------------------------------------------------ the table


def pair_estimates(
    pairs: Pairs,
    schemes: Mapping[str, Scheme],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    ba_log: bool = False,
    statistics: Collection[str] | None = None,
) -> dict[str, Estimate]:
    """Every agreement statistic of one method x artery, in table order.

    ``statistics`` (names or prefixes such as ``kappa_linear:``) keeps a subset.
    """

    def wanted(name: str) -> bool:
        if statistics is None:
            return True
        return any(name == s or (s.endswith(":") and name.startswith(s)) for s in statistics)

    ref, val = pairs.reference, pairs.values
    out: dict[str, Estimate] = {}
    if wanted(ICC):
        out[ICC] = icc_a1(np.column_stack([ref, val]))
    if wanted(PEARSON):
        out[PEARSON] = pearson(ref, val)
    if wanted(SPEARMAN):
        out[SPEARMAN] = spearman(ref, val)
    out.update({k: v for k, v in bland_altman(ref, val).items() if wanted(k)})
    if ba_log:
        log_ba = bland_altman(np.log1p(ref), np.log1p(val))
        out.update({k + LOG_SUFFIX: v for k, v in log_ba.items() if wanted(k + LOG_SUFFIX)})
    if pairs.artery == TOTAL:
        cat = category_estimates(ref, val, schemes, n_boot=n_boot, seed=seed)
        out.update({k: v for k, v in cat.items() if wanted(k)})
    return out


def estimates_frame(rows: list[tuple[Pairs, dict[str, Estimate]]]) -> pd.DataFrame:
    """Long table (``TABLE_COLUMNS``) from per-pair estimates."""
    records = [
        (p.method, p.artery, stat, e.value, e.ci_low, e.ci_high, p.n)
        for p, est in rows
        for stat, e in est.items()
    ]
    df = pd.DataFrame.from_records(records, columns=TABLE_COLUMNS)
    return df.astype({"value": float, "ci_low": float, "ci_high": float, "n": "int64"})


def empty_agreement() -> pd.DataFrame:
    """A table with the agreement columns and no row (dataset without a reference)."""
    return estimates_frame([])


def agreement_table(
    scores: pd.DataFrame,
    schemes: Mapping[str, Scheme],
    *,
    reference: str = REFERENCE_METHOD,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    ba_log: bool = False,
    measure: str = "agatston",
) -> pd.DataFrame:
    """Agreement of every method with the reference, per artery (LAD, LCX, RCA, total).

    ``scores``: long table (CONTRACT §3) with ``series_uid, method, artery`` and the
    ``measure`` column (default Agatston). Returns columns ``method, artery, statistic,
    value, ci_low, ci_high, n`` (module docstring lists the statistics). The table's
    ``attrs`` hold :func:`agreement_metadata`.
    """
    rows = [
        (p, pair_estimates(p, schemes, n_boot=n_boot, seed=seed, ba_log=ba_log))
        for p in iter_pairs(scores, reference=reference, measure=measure, arteries=ARTERY_ORDER)
    ]
    df = estimates_frame(rows)
    df.attrs.update(agreement_metadata(n_boot=n_boot, seed=seed))
    return df
