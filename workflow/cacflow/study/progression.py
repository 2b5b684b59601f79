"""Change between consecutive exams of a participant, per artery.

For each participant and consecutive pair of exams (visit k → k+1) and each artery
(``LAD, LCX, RCA, total``; Agatston units): baseline and follow-up score, interval (days,
years of :data:`~cacflow.study.timepoints.DAYS_PER_YEAR` days), absolute change,
annualised change (per year), annualised percent change, √-difference
(√follow-up − √baseline), and progression by three published definitions (thresholds in
config ``study.progression``):

- ``progression_sqrt`` (Hokanson et al. 2004): √-difference ≥ ``sqrt_diff`` (2.5);
- ``progression_berry`` (Berry et al. 2009, MESA): baseline 0 → follow-up > 0
  (incident); 0 < baseline < ``pct_baseline`` (100) → annualised change ≥
  ``annual_abs`` (10); baseline ≥ 100 → annualised percent change ≥ ``annual_pct`` (10 %);
- ``incident``: baseline 0 and follow-up > 0.

An interval of 0 or unknown days gives NaN annualised changes and no Berry verdict (NA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cacflow.study.timepoints import DAYS_PER_YEAR

PAIR_KEYS = ("patient_id", "exam_id_1", "exam_id_2", "timepoint_1", "timepoint_2")


@dataclass(frozen=True)
class ProgressionRule:
    """Config ``study.progression`` (Agatston units; percent in %)."""

    sqrt_diff: float = 2.5
    annual_abs: float = 10.0
    annual_pct: float = 10.0
    pct_baseline: float = 100.0

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> ProgressionRule:
        return cls(**{k: float(v) for k, v in (cfg or {}).items()})


def consecutive_pairs(exams: pd.DataFrame) -> pd.DataFrame:
    """Rows (exam k, exam k+1) of each participant; ``exams`` has ``patient_id, visit``.

    Exams without a chosen series are skipped, so a pair joins the nearest scored visits.
    """
    scored = exams[exams["series_uid"].notna()].sort_values(["patient_id", "visit"])
    nxt = scored.groupby("patient_id", sort=False).shift(-1)
    first = scored[nxt["series_uid"].notna()]
    second = nxt[nxt["series_uid"].notna()]
    out = pd.DataFrame({"patient_id": first["patient_id"].to_numpy()})
    for col in ("exam_id", "timepoint", "series_uid", "days"):
        out[f"{col}_1"] = first[col].to_numpy()
        out[f"{col}_2"] = second[col].to_numpy()
    return out


def progression_table(
    pairs: pd.DataFrame, scores: pd.DataFrame, rule: ProgressionRule
) -> pd.DataFrame:
    """Per pair × artery: changes and progression flags (see module docstring).

    ``scores``: ``series_uid, artery, agatston`` of the study's score source.
    """
    by = scores.set_index(["series_uid", "artery"])["agatston"]
    present = set(scores["artery"].unique())
    arteries = [a for a in ("LAD", "LCX", "RCA", "total") if a in present]
    frames = []
    for artery in arteries:
        s = by.xs(artery, level="artery")
        part = pairs.assign(artery=artery)
        part["baseline"] = part["series_uid_1"].map(s).to_numpy(dtype=float)
        part["followup"] = part["series_uid_2"].map(s).to_numpy(dtype=float)
        frames.append(part)
    df = pd.concat(frames, ignore_index=True) if frames else pairs.assign(artery=None)
    days = pd.to_numeric(df["days_2"], errors="coerce") - pd.to_numeric(
        df["days_1"], errors="coerce"
    )
    df["interval_days"] = days.astype("Float64")
    years = (days / DAYS_PER_YEAR).where(days > 0)
    df["interval_years"] = years.astype(float)
    return _changes(df, rule)


def _changes(df: pd.DataFrame, rule: ProgressionRule) -> pd.DataFrame:
    b, f, years = df["baseline"], df["followup"], df["interval_years"]
    df["abs_change"] = f - b
    df["annual_change"] = df["abs_change"] / years
    with np.errstate(divide="ignore", invalid="ignore"):
        df["annual_pct_change"] = (100.0 * df["annual_change"] / b).where(b > 0)
    df["sqrt_diff"] = np.sqrt(f.clip(lower=0)) - np.sqrt(b.clip(lower=0))
    df["progression_sqrt"] = df["sqrt_diff"] >= rule.sqrt_diff
    df["incident"] = (b == 0) & (f > 0)
    berry = np.where(
        b == 0,
        f > 0,
        np.where(
            b < rule.pct_baseline,
            df["annual_change"] >= rule.annual_abs,
            df["annual_pct_change"] >= rule.annual_pct,
        ),
    )
    known = (b == 0) | years.notna()
    flags = pd.array(berry.astype(bool), dtype="boolean")
    flags[~known.to_numpy()] = pd.NA
    df["progression_berry"] = flags
    cols = ["patient_id", "exam_id_1", "exam_id_2", "timepoint_1", "timepoint_2"]
    cols += ["series_uid_1", "series_uid_2", "artery", "baseline", "followup"]
    cols += ["interval_days", "interval_years", "abs_change", "annual_change"]
    cols += ["annual_pct_change", "sqrt_diff", "progression_sqrt", "progression_berry", "incident"]
    return df[cols].reset_index(drop=True)
