"""Agreement table: every statistic against an independent computation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats as sps

from cacflow.conventions import DEFAULT_SCHEMES, Closure, Scheme
from cacflow.stats import agreement_table, icc_a1, scores_from_confusion
from cacflow.stats.agreement import bland_altman, pearson, spearman
from published import DEVOS_TABLE_III_CARDIAC, DEVOS_TABLE_III_CHEST

# seed 000 (de Vos et al. 2019) Table III: rows reference, columns predicted, scheme A
CARDIAC = DEVOS_TABLE_III_CARDIAC
CHEST = DEVOS_TABLE_III_CHEST


def long_scores(ref: np.ndarray, met: np.ndarray, artery: str = "total") -> pd.DataFrame:
    """Long scores table with one artery, reference and method 'm'."""
    uids = [f"u{i:03d}" for i in range(len(ref))]
    rows = []
    for name, vals in (("reference", ref), ("m", met)):
        for uid, v in zip(uids, vals, strict=True):
            rows.append((uid, uid, name, artery, float(v), np.nan, np.nan, np.nan))
    cols = ["series_uid", "patient_id", "method", "artery", "agatston"]
    return pd.DataFrame(rows, columns=[*cols, "volume_mm3", "mass_mg", "n_lesions"])


def stat(df: pd.DataFrame, name: str, artery: str = "total", method: str = "m") -> pd.Series:
    row = df[(df["statistic"] == name) & (df["artery"] == artery) & (df["method"] == method)]
    assert len(row) == 1, (name, artery, method)
    return row.iloc[0]


REF = np.array([0.0, 3.0, 12.0, 40.0, 85.0, 150.0, 310.0, 620.0, 0.0, 7.0])
MET = np.array([1.0, 2.0, 15.0, 33.0, 90.0, 180.0, 290.0, 700.0, 0.0, 12.0])


# ------------------------------------------------------------------------ ICC


def hand_icc_a1(x: np.ndarray) -> float:
    """ICC(A,1) from sums of squares written out with loops (McGraw & Wong 1996)."""
    n, k = x.shape
    grand = sum(sum(row) for row in x) / (n * k)
    row_means = [sum(row) / k for row in x]
    col_means = [sum(x[i][j] for i in range(n)) / n for j in range(k)]
    ss_total = sum((x[i][j] - grand) ** 2 for i in range(n) for j in range(k))
    ss_rows = k * sum((m - grand) ** 2 for m in row_means)
    ss_cols = n * sum((m - grand) ** 2 for m in col_means)
    ss_err = ss_total - ss_rows - ss_cols
    msr, msc, mse = ss_rows / (n - 1), ss_cols / (k - 1), ss_err / ((n - 1) * (k - 1))
    return (msr - mse) / (msr + (k - 1) * mse + k / n * (msc - mse))


def test_icc_equals_hand_anova_formula() -> None:
    got = icc_a1(np.column_stack([REF, MET]))
    assert got.value == pytest.approx(hand_icc_a1(np.column_stack([REF, MET])), abs=1e-12)
    assert got.ci_low < got.value < got.ci_high


def test_icc_tiny_case_by_hand() -> None:
    # 3 subjects, 2 raters: [[1,2],[3,3],[5,7]]; grand 3.5
    # SS rows = 2*((1.5-3.5)^2 + (3-3.5)^2 + (6-3.5)^2) = 21; SS cols = 3*(2*0.5^2) = 1.5
    # SS total = 6.25+2.25+0.25+0.25+2.25+12.25 = 23.5; SS err = 1
    # MSR 10.5, MSC 1.5, MSE 0.5 -> ICC = 10 / (10.5 + 0.5 + 2/3) = 0.857142...
    got = icc_a1(np.array([[1.0, 2.0], [3.0, 3.0], [5.0, 7.0]]))
    assert got.value == pytest.approx(10 / (11 + 2 / 3), abs=1e-12)


def test_icc_and_ci_round_to_pingouin() -> None:
    rng = np.random.default_rng(3)
    for n in (10, 40, 200):
        ref = rng.lognormal(3, 1.5, n)
        met = ref * rng.lognormal(0.1, 0.3, n) + rng.normal(0, 5, n)
        long = pd.DataFrame(
            {
                "target": np.tile(np.arange(n), 2),
                "rater": np.repeat(["reference", "m"], n),
                "score": np.concatenate([ref, met]),
            }
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = pg.intraclass_corr(long, targets="target", raters="rater", ratings="score")
        row = table.set_index("Type").loc["ICC(A,1)"]
        got = icc_a1(np.column_stack([ref, met]))
        assert got.value == pytest.approx(row["ICC"], abs=1e-9)
        lo, hi = row["CI95"]
        assert round(got.ci_low, 2) == pytest.approx(lo, abs=1e-12)
        assert round(got.ci_high, 2) == pytest.approx(hi, abs=1e-12)


def test_icc_ci_equals_the_rater_f_ratio_form() -> None:
    """Full precision: the same McGraw & Wong interval written with F_j = MSC / MSE."""
    x = np.column_stack([REF, MET])
    n, k = x.shape
    grand = x.mean()
    msr = k * ((x.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    mse = (((x - grand) ** 2).sum() - msr * (n - 1) - msc * (k - 1)) / ((n - 1) * (k - 1))
    rho = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    fj = msc / mse
    c = n * (1 + (k - 1) * rho) - k * rho
    v = (n - 1) * (k - 1) * (k * rho * fj + c) ** 2 / ((n - 1) * (k * rho * fj) ** 2 + c**2)
    f_up, f_dn = sps.f.ppf(0.975, n - 1, v), sps.f.ppf(0.975, v, n - 1)
    low = n * (msr - f_up * mse) / (f_up * (k * msc + (k * n - k - n) * mse) + n * msr)
    high = n * (f_dn * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_dn * msr)
    got = icc_a1(x)
    assert got.ci_low == pytest.approx(low, abs=1e-12)
    assert got.ci_high == pytest.approx(high, abs=1e-12)


def test_icc_undefined_for_constant_data() -> None:
    got = icc_a1(np.zeros((5, 2)))
    assert np.isnan(got.value)


# ------------------------------------------------------------- Bland-Altman


def test_bland_altman_against_numpy_and_1999_formulas() -> None:
    d = MET - REF
    n = d.size
    bias, sd = np.mean(d), np.std(d, ddof=1)
    t = sps.t.ppf(0.975, n - 1)
    got = bland_altman(REF, MET)
    assert got["ba_bias"].value == pytest.approx(bias)
    assert got["ba_loa_low"].value == pytest.approx(bias - 1.96 * sd)
    assert got["ba_loa_high"].value == pytest.approx(bias + 1.96 * sd)
    assert got["ba_bias"].ci_low == pytest.approx(bias - t * sd / math.sqrt(n))
    assert got["ba_loa_high"].ci_high == pytest.approx(bias + 1.96 * sd + t * sd * math.sqrt(3 / n))
    assert got["ba_loa_low"].ci_low == pytest.approx(bias - 1.96 * sd - t * sd * math.sqrt(3 / n))


def test_bland_altman_sign_is_method_minus_reference() -> None:
    got = bland_altman(np.array([10.0, 20.0, 30.0]), np.array([12.0, 22.0, 32.0]))
    assert got["ba_bias"].value == pytest.approx(2.0)
    assert got["ba_loa_low"].value == pytest.approx(2.0)  # SD 0


# ---------------------------------------------------------------- correlation


def test_correlations_against_numpy() -> None:
    r = np.corrcoef(REF, MET)[0, 1]
    got = pearson(REF, MET)
    assert got.value == pytest.approx(r)
    z, half = np.arctanh(r), 1.959963984540054 / math.sqrt(REF.size - 3)
    assert got.ci_low == pytest.approx(math.tanh(z - half))
    assert got.ci_high == pytest.approx(math.tanh(z + half))
    rho = np.corrcoef(sps.rankdata(REF), sps.rankdata(MET))[0, 1]
    got_s = spearman(REF, MET)
    assert got_s.value == pytest.approx(rho)
    half_s = 1.959963984540054 * math.sqrt(1.06 / (REF.size - 3))
    assert got_s.ci_high == pytest.approx(math.tanh(np.arctanh(rho) + half_s))


# ------------------------------------------------------------------- the table


def test_table_rows_match_the_single_statistics() -> None:
    df = agreement_table(long_scores(REF, MET), DEFAULT_SCHEMES, n_boot=200, seed=1)
    assert list(df.columns) == ["method", "artery", "statistic", "value", "ci_low", "ci_high", "n"]
    assert stat(df, "icc")["value"] == pytest.approx(hand_icc_a1(np.column_stack([REF, MET])))
    assert stat(df, "ba_bias")["value"] == pytest.approx(np.mean(MET - REF))
    assert (df["n"] == REF.size).all()
    # accuracy by hand, scheme A: categories ref [0,1,2,2,2,3,3,4,0,1], met [1,1,2,2,2,3,3,4,0,2]
    assert stat(df, "accuracy:A")["value"] == pytest.approx(8 / 10)
    # scheme B (right-closed 10/100/1000): ref [0,0,1,1,1,2,2,2,0,0], met [0,0,1,1,1,2,2,2,0,1]
    assert stat(df, "accuracy:B")["value"] == pytest.approx(9 / 10)


def test_accuracy_is_a_fraction_and_bootstrap_ci_brackets_it() -> None:
    df = agreement_table(long_scores(REF, MET), DEFAULT_SCHEMES, n_boot=300, seed=0)
    acc = df[df["statistic"].str.startswith("accuracy:")]
    assert ((acc["value"] >= 0) & (acc["value"] <= 1)).all()
    assert ((acc["ci_low"] <= acc["value"]) & (acc["value"] <= acc["ci_high"])).all()


def test_bootstrap_cis_are_deterministic_for_a_seed() -> None:
    s = long_scores(REF, MET)
    a = agreement_table(s, DEFAULT_SCHEMES, n_boot=200, seed=7)
    b = agreement_table(s.sample(frac=1.0, random_state=3), DEFAULT_SCHEMES, n_boot=200, seed=7)
    pd.testing.assert_frame_equal(a, b)  # row order of the input does not matter
    c = agreement_table(s, DEFAULT_SCHEMES, n_boot=200, seed=8)
    kappa = a["statistic"] == "kappa_linear:A"
    assert not np.allclose(a.loc[kappa, ["ci_low", "ci_high"]], c.loc[kappa, ["ci_low", "ci_high"]])


@pytest.mark.parametrize(
    ("matrix", "kappa", "acc"), [(CARDIAC, 0.9502, 0.93), (CHEST, 0.9267, 0.90)]
)
def test_reproduces_published_kappa_and_accuracy(matrix, kappa, acc) -> None:
    """Seed 000 Table III: kappa 0.95 / 0.93 (0.9502 / 0.9267), accuracy 0.93 / 0.90."""
    scores = scores_from_confusion(matrix, DEFAULT_SCHEMES["A"], method="convnet")
    df = agreement_table(scores, {"A": DEFAULT_SCHEMES["A"]}, n_boot=100)
    k = stat(df, "kappa_linear:A", method="convnet")
    a = stat(df, "accuracy:A", method="convnet")
    assert round(k["value"], 4) == kappa
    assert round(k["value"], 2) == round(kappa, 2)  # as printed in the paper
    assert round(a["value"], 2) == acc
    assert k["n"] == matrix.sum()
    # the published tables give only totals: no per-artery rows
    assert set(df["artery"]) == {"total"}


def test_per_artery_rows_skip_missing_pairs_and_have_no_categories() -> None:
    s = pd.concat(
        [
            long_scores(REF, MET, "total"),
            long_scores(REF[:6], MET[:6], "LAD"),
            long_scores(REF, np.where(np.arange(10) < 4, np.nan, MET), "RCA"),
        ]
    )
    df = agreement_table(s, DEFAULT_SCHEMES, n_boot=50)
    assert list(pd.unique(df["artery"])) == ["LAD", "RCA", "total"]
    assert stat(df, "icc", "LAD")["n"] == 6
    assert stat(df, "icc", "RCA")["n"] == 6
    assert stat(df, "ba_bias", "RCA")["value"] == pytest.approx(np.mean((MET - REF)[4:]))
    per_artery = df[df["artery"] != "total"]
    assert not per_artery["statistic"].str.contains(":").any()


def test_method_without_calcium() -> None:
    df = agreement_table(long_scores(REF, np.zeros_like(REF)), DEFAULT_SCHEMES, n_boot=50)
    assert np.isnan(stat(df, "pearson")["value"])
    assert stat(df, "ba_bias")["value"] == pytest.approx(-REF.mean())
    assert np.isfinite(stat(df, "icc")["value"])
    # scheme A: reference categories [0,1,2,2,2,3,3,4,0,1]; all method scores in <1
    assert stat(df, "accuracy:A")["value"] == pytest.approx(2 / 10)
    assert stat(df, "kappa_linear:A")["value"] == pytest.approx(0.0)


def test_log_bland_altman_rows() -> None:
    df = agreement_table(long_scores(REF, MET), {}, n_boot=0, ba_log=True)
    d = np.log1p(MET) - np.log1p(REF)
    assert stat(df, "ba_bias_log")["value"] == pytest.approx(d.mean())
    hi = d.mean() + 1.96 * d.std(ddof=1)
    assert stat(df, "ba_loa_high_log")["value"] == pytest.approx(hi)
    assert df.attrs["icc_form"].startswith("ICC(A,1)")


def test_custom_scheme_and_reference_name() -> None:
    s = long_scores(REF, MET).replace({"method": {"reference": "reader1"}})
    scheme = {"cac": Scheme("cac", (0.0,), Closure.RIGHT)}
    df = agreement_table(s, scheme, reference="reader1", n_boot=0)
    # CAC present (> 0): ref [0,1,1,1,1,1,1,1,0,1], method [1,1,...,0,1]: 9 of 10 agree
    assert stat(df, "accuracy:cac")["value"] == pytest.approx(0.9)
    assert np.isnan(stat(df, "accuracy:cac")["ci_low"])


def test_duplicated_rows_are_rejected() -> None:
    s = long_scores(REF, MET)
    with pytest.raises(ValueError, match="duplicated"):
        agreement_table(pd.concat([s, s.iloc[:1]]), DEFAULT_SCHEMES)
    with pytest.raises(ValueError, match="reference"):
        agreement_table(s, DEFAULT_SCHEMES, reference="nobody")
