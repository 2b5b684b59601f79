"""cacflow.study.outcomes: lifelines Cox vs statsmodels PHReg, known hazard ratios
recovered, Kaplan–Meier by hand, the PH check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.duration.hazard_regression import PHReg

from cacflow.study.cacdrs import cacdrs_a
from cacflow.study.outcomes import (
    LN_CAC,
    OutcomeSpec,
    covariate_design,
    fit_cox,
    kaplan_meier,
    outcome_table,
)
from cacflow.study.run import CAC_DRS_LABELS
from cacflow.study.simulate import HR_AGE_10Y, HR_LN_CAC, HR_MALE, simulate_cohort


def _cohort(n: int, seed: int) -> pd.DataFrame:
    sim = simulate_cohort(n, n_exams=1, seed=seed, recon_p=0.0)
    first = sim.scores[sim.scores["artery"] == "total"].set_index("patient_id")["agatston"]
    c = sim.clinical.assign(agatston=sim.clinical["patient_id"].map(first).to_numpy())
    return c.assign(category=cacdrs_a(c["agatston"].to_numpy()))


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return _cohort(4000, seed=11)


def test_lifelines_cox_matches_statsmodels_phreg(cohort: pd.DataFrame) -> None:
    design = pd.concat(
        [
            pd.DataFrame({LN_CAC: np.log1p(cohort["agatston"])}),
            covariate_design(cohort, ("age", "sex")),
        ],
        axis=1,
    )
    res = fit_cox(design, cohort["time_years"], cohort["event"], "ln_cac_adjusted", True)
    ref = PHReg(
        cohort["time_years"].to_numpy(),
        design.to_numpy(),
        status=cohort["event"].to_numpy(),
        ties="efron",
    ).fit()
    s = res.fitter.summary
    np.testing.assert_allclose(s["coef"].to_numpy(), ref.params, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(s["se(coef)"].to_numpy(), ref.bse, rtol=1e-4)


def test_simulated_hazard_ratios_are_covered(cohort: pd.DataFrame) -> None:
    spec = OutcomeSpec(n_boot=50)
    out = outcome_table(cohort, spec, list(CAC_DRS_LABELS))
    hr = out[(out["statistic"] == "hr") & (out["model"] == "ln_cac_adjusted")].set_index("term")
    lo, hi = hr.loc[LN_CAC, ["ci_low", "ci_high"]]
    assert lo <= HR_LN_CAC <= hi
    lo, hi = hr.loc["age", ["ci_low", "ci_high"]] ** 10  # per year -> per 10 years
    assert lo <= HR_AGE_10Y <= hi
    lo, hi = hr.loc["sex=M", ["ci_low", "ci_high"]]
    assert lo <= HR_MALE <= hi
    # categories: HR increases with category, all above 1
    cat = out[(out["statistic"] == "hr") & (out["model"] == "category")]["value"].to_numpy()
    assert len(cat) == 3 and np.all(np.diff(cat) > 0) and cat[0] > 1
    # C-index: CAC adds to the covariates; CIs bracket the estimates
    c = out[out["statistic"].isin(["c_index", "c_index_gain"])]
    assert (c["ci_low"] <= c["value"]).all() and (c["value"] <= c["ci_high"]).all()
    gain = c[c["statistic"] == "c_index_gain"].iloc[0]
    assert gain["ci_low"] > 0
    # proportional hazards hold in the simulation: no term is rejected at 0.001
    ph = out[out["statistic"] == "ph_test"]
    assert len(ph) and (ph["p_value"] > 0.001).all()


def test_ph_check_flags_a_time_varying_effect() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    x = rng.integers(0, 2, n).astype(float)
    # x = 1: early hazard high then low (crossing survival curves)
    t = np.where(x == 1, rng.weibull(0.5, n), rng.weibull(2.0, n))
    df = pd.DataFrame({"agatston": np.where(x == 1, 150.0, 0.0), "time_years": t, "event": 1})
    df["category"] = cacdrs_a(df["agatston"].to_numpy())
    out = outcome_table(df, OutcomeSpec(covariates=(), n_boot=0), list(CAC_DRS_LABELS))
    ph = out[(out["statistic"] == "ph_test") & (out["model"] == "ln_cac")]
    assert ph["p_value"].iloc[0] < 1e-6


def test_kaplan_meier_hand_case() -> None:
    # times 1, 2(censored), 3, 4 in one category: S = 3/4 at 1, then 3/4 * 1/2 at 3, 0 at 4
    df = pd.DataFrame({"time_years": [1, 2, 3, 4], "event": [1, 0, 1, 1], "category": 0})
    km = kaplan_meier(df, OutcomeSpec(), ["0"]).set_index("time")
    assert km.loc[1.0, "survival"] == pytest.approx(0.75)
    assert km.loc[3.0, "survival"] == pytest.approx(0.375)
    assert km.loc[4.0, "survival"] == pytest.approx(0.0)
