"""Outcome models: Cox proportional hazards, PH check, Harrell's C, Kaplan–Meier.

Cox models are fitted with lifelines (``CoxPHFitter``, Breslow baseline, Efron ties), the
survival library epidemiologists know; the tests check it against statsmodels' ``PHReg``.
Models, on complete cases of the CAC score, time, event and every configured covariate
(so that all models use the same participants):

- ``category`` / ``category_adjusted``: indicator per CAC category vs CAC 0 (the lowest
  category) — hazard ratio (HR) per category;
- ``ln_cac`` / ``ln_cac_adjusted``: HR per unit of ln(Agatston + 1);
- ``covariates``: the covariates alone (the baseline of the C-index gain).

``outcomes.parquet`` rows: ``model, adjusted, term, statistic, value, ci_low, ci_high,
p_value, n, n_events``; statistics ``hr`` (95 % Wald CI), ``ph_test`` (Schoenfeld
residuals vs rank of time: chi², p), ``c_index`` (Harrell's C, percentile bootstrap CI),
``c_index_gain`` (C of ``ln_cac_adjusted`` − C of ``covariates``, same resamples).
Categorical covariates (text) enter as indicators vs their first level (sorted). A model
that does not converge or has an infinite CI (e.g. a category without events) is left out
of the table, and the log says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cacflow.study.concordance import bootstrap_c, harrell_c

LN_CAC = "ln_cac_plus_1"
OUTCOME_COLUMNS = (
    "model",
    "adjusted",
    "term",
    "statistic",
    "value",
    "ci_low",
    "ci_high",
    "p_value",
    "n",
    "n_events",
)


@dataclass(frozen=True)
class OutcomeSpec:
    """Config ``study.outcome`` (column names of the clinical table) and bootstrap."""

    time: str = "time_years"
    event: str = "event"
    covariates: tuple[str, ...] = ("age", "sex")
    n_boot: int = 200
    seed: int = 0
    alpha: float = 0.05

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> OutcomeSpec:
        cfg = dict(cfg or {})
        if "covariates" in cfg:
            cfg["covariates"] = tuple(cfg["covariates"])
        return cls(**cfg)


@dataclass
class CoxResult:
    """One fitted model: the lifelines fitter and the design it was fitted on."""

    name: str
    adjusted: bool
    terms: list[str]
    fitter: Any
    design: pd.DataFrame = field(repr=False)


def covariate_design(df: pd.DataFrame, covariates: tuple[str, ...]) -> pd.DataFrame:
    """Numeric design columns of ``covariates``: numbers as they are, text as indicators."""
    parts = []
    for cov in covariates:
        col = df[cov]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            parts.append(col.astype(float).rename(cov))
        else:
            levels = sorted(col.astype(str).unique())
            for lev in levels[1:]:
                parts.append((col.astype(str) == lev).astype(float).rename(f"{cov}={lev}"))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=df.index)


def category_design(category: pd.Series, labels: list[str]) -> pd.DataFrame:
    """Indicators of every category but the first (the reference, CAC 0)."""
    cols = {f"cac {lab}": (category == i).astype(float) for i, lab in enumerate(labels) if i}
    return pd.DataFrame(cols, index=category.index)


def fit_cox(design: pd.DataFrame, time: pd.Series, event: pd.Series, name: str, adjusted: bool):
    """Fit a lifelines Cox model on ``design`` (drops all-zero columns: a category with no
    participants has no HR)."""
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceWarning

    keep = [c for c in design.columns if design[c].std() > 0]
    data = design[keep].assign(_time=time.to_numpy(float), _event=event.to_numpy(int))
    fitter = CoxPHFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # non-convergence (e.g. a category without events: HR 0 or infinite) is an error
        warnings.simplefilter("error", ConvergenceWarning)
        fitter.fit(data, "_time", "_event")
    if not np.isfinite(fitter.summary["exp(coef) upper 95%"]).all():
        raise ValueError(f"model {name}: a hazard ratio is not estimable (infinite CI)")
    return CoxResult(name, adjusted, keep, fitter, data)


def hr_rows(res: CoxResult, n: int, n_events: int) -> list[dict[str, Any]]:
    """HR, 95 % CI and Wald p of each term."""
    s = res.fitter.summary
    return [
        {
            "model": res.name,
            "adjusted": res.adjusted,
            "term": term,
            "statistic": "hr",
            "value": float(s.loc[term, "exp(coef)"]),
            "ci_low": float(s.loc[term, "exp(coef) lower 95%"]),
            "ci_high": float(s.loc[term, "exp(coef) upper 95%"]),
            "p_value": float(s.loc[term, "p"]),
            "n": n,
            "n_events": n_events,
        }
        for term in res.terms
    ]


def ph_rows(res: CoxResult, n: int, n_events: int) -> list[dict[str, Any]]:
    """Proportional-hazards check: scaled Schoenfeld residuals vs rank of time, per term."""
    from lifelines.statistics import proportional_hazard_test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = proportional_hazard_test(res.fitter, res.design, time_transform="rank").summary
    rows = []
    for term in res.terms:
        r = test.loc[term]
        rows.append(
            {
                "model": res.name,
                "adjusted": res.adjusted,
                "term": term,
                "statistic": "ph_test",
                "value": float(r["test_statistic"]),
                "ci_low": np.nan,
                "ci_high": np.nan,
                "p_value": float(r["p"]),
                "n": n,
                "n_events": n_events,
            }
        )
    return rows


def outcome_table(
    cohort: pd.DataFrame, spec: OutcomeSpec, labels: list[str], ph_check: bool = True
) -> pd.DataFrame:
    """All models of the module docstring on ``cohort`` (one row per participant).

    ``cohort`` columns: ``agatston`` (baseline total Agatston), ``category`` (index into
    ``labels``), ``spec.time``, ``spec.event`` and ``spec.covariates``.
    """
    cols = ["agatston", "category", spec.time, spec.event, *spec.covariates]
    df = cohort.dropna(subset=cols).reset_index(drop=True)
    time, event = df[spec.time].astype(float), df[spec.event].astype(int)
    n, n_events = len(df), int(event.sum())
    if n == 0 or n_events == 0:
        return pd.DataFrame(columns=list(OUTCOME_COLUMNS))
    cov = covariate_design(df, spec.covariates)
    cat = category_design(df["category"], labels)
    ln = pd.DataFrame({LN_CAC: np.log1p(df["agatston"].astype(float))})
    designs = {
        ("category", False): cat,
        ("category_adjusted", True): pd.concat([cat, cov], axis=1),
        ("ln_cac", False): ln,
        ("ln_cac_adjusted", True): pd.concat([ln, cov], axis=1),
    }
    if len(cov.columns):
        designs[("covariates", True)] = cov
    rows: list[dict[str, Any]] = []
    risks: dict[str, np.ndarray] = {}
    for (name, adjusted), design in designs.items():
        try:
            res = fit_cox(design, time, event, name, adjusted)
        except Exception as exc:  # a model that does not converge is reported, not fatal
            print(f"outcomes: model {name} not fitted ({type(exc).__name__})", flush=True)
            continue
        if not res.terms:
            continue
        rows += hr_rows(res, n, n_events)
        if ph_check:
            rows += ph_rows(res, n, n_events)
        risks[name] = res.fitter.predict_log_partial_hazard(res.design[res.terms]).to_numpy()
    rows += c_index_rows(time.to_numpy(), event.to_numpy(), risks, spec, n, n_events)
    out = pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS))
    return out


def c_index_rows(
    time: np.ndarray,
    event: np.ndarray,
    risks: dict[str, np.ndarray],
    spec: OutcomeSpec,
    n: int,
    n_events: int,
) -> list[dict[str, Any]]:
    """Harrell's C per model and the gain of adding CAC to the covariates, with
    percentile bootstrap CIs (``spec.n_boot`` resamples, ``spec.seed``)."""
    point = {name: harrell_c(time, event, r) for name, r in risks.items()}
    boot = bootstrap_c(time, event, risks, spec.n_boot, spec.seed) if spec.n_boot else {}
    q = [100 * spec.alpha / 2, 100 * (1 - spec.alpha / 2)]

    def ci(values: np.ndarray | None) -> tuple[float, float]:
        if values is None or not len(values):
            return (np.nan, np.nan)
        lo, hi = np.nanpercentile(values, q)
        return float(lo), float(hi)

    base = {"ci_low": np.nan, "p_value": np.nan, "n": n, "n_events": n_events}
    rows = []
    for name, c in point.items():
        lo, hi = ci(boot.get(name))
        rows.append(
            base
            | {"model": name, "adjusted": name.endswith("adjusted") or name == "covariates"}
            | {"term": "", "statistic": "c_index", "value": c, "ci_low": lo, "ci_high": hi}
        )
    if "ln_cac_adjusted" in point and "covariates" in point:
        gain = point["ln_cac_adjusted"] - point["covariates"]
        diff = boot["ln_cac_adjusted"] - boot["covariates"] if boot else None
        lo, hi = ci(diff)
        rows.append(
            base
            | {"model": "ln_cac_adjusted", "adjusted": True, "term": "vs covariates"}
            | {"statistic": "c_index_gain", "value": gain, "ci_low": lo, "ci_high": hi}
        )
    return rows


def kaplan_meier(cohort: pd.DataFrame, spec: OutcomeSpec, labels: list[str]) -> pd.DataFrame:
    """Kaplan–Meier survival by CAC category: ``category, time, survival, ci_low, ci_high,
    at_risk`` (lifelines ``KaplanMeierFitter``, exponential Greenwood CI)."""
    from lifelines import KaplanMeierFitter

    df = cohort.dropna(subset=[spec.time, spec.event, "category"])
    frames = []
    for i, lab in enumerate(labels):
        part = df[df["category"] == i]
        if part.empty:
            continue
        km = KaplanMeierFitter().fit(part[spec.time], part[spec.event].astype(int))
        sf = km.survival_function_.iloc[:, 0]
        ci = km.confidence_interval_survival_function_
        at_risk = km.event_table["at_risk"].reindex(sf.index)
        frames.append(
            pd.DataFrame(
                {
                    "category": lab,
                    "time": sf.index.to_numpy(float),
                    "survival": sf.to_numpy(float),
                    "ci_low": ci.iloc[:, 0].to_numpy(float),
                    "ci_high": ci.iloc[:, 1].to_numpy(float),
                    "at_risk": at_risk.to_numpy(),
                }
            )
        )
    cols = ["category", "time", "survival", "ci_low", "ci_high", "at_risk"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
