"""Synthetic study cohorts with known hazard ratios (tests, benchmark, the demo).

:func:`simulate_cohort` draws participants with age (years), sex, a baseline total
Agatston score (zero with a probability that falls with age; otherwise log-normal), CAC
progression between exams, several reconstructions per exam, and an event time from an
exponential proportional-hazards model

    h(t) = h0 · exp(β_cac · ln(CAC+1) + β_age · (age − 60)/10 + β_sex · [male]),

censored administratively at ``follow_up_years`` and by uniform drop-out. The true
hazard ratios are ``HR_LN_CAC`` per ln(CAC+1), ``HR_AGE_10Y`` per 10 years, ``HR_MALE``.
No dates are made: exams carry days since the first exam.

:func:`demo_study_tables` turns a synthetic *imaging* dataset (one patient per scan, as
``cacflow synth`` writes it) into a study: its series are grouped into participants with
one or two exams, some exams with two reconstructions, and a clinical table is simulated
from each participant's first exam score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cacflow.conventions import Status
from cacflow.study.timepoints import DAYS_PER_YEAR

HR_LN_CAC = 1.25
HR_AGE_10Y = 1.5
HR_MALE = 1.4
BASELINE_HAZARD_PER_YEAR = 0.01
ARTERY_SHARE = {"LAD": 0.5, "LCX": 0.2, "RCA": 0.3}
"""Mean share of the total score per artery (Dirichlet means of the split)."""
DEMO_HAZARD_FACTOR = 2.0
"""The demo's baseline hazard is this many times BASELINE_HAZARD_PER_YEAR (few participants)."""
KERNELS = ("B30f", "B70f")
"""Soft and sharp reconstruction kernels of the simulated exams."""


@dataclass(frozen=True)
class SimulatedCohort:
    """Tables of a simulated study in the workflow's input formats."""

    scans: pd.DataFrame  # series_uid, patient_id, status, kernel, slice_thickness_mm, n_slices
    scores: pd.DataFrame  # series_uid, patient_id, method, artery, agatston
    exam_table: pd.DataFrame  # series_uid, exam_id, patient_id, days
    clinical: pd.DataFrame  # patient_id, age, sex, time_years, event
    truth: dict[str, float]


def event_times(
    lp: np.ndarray, rng: np.random.Generator, follow_up_years: float, dropout_per_year: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exponential event times (years) with linear predictor ``lp``, censored."""
    t_event = rng.exponential(1.0 / (BASELINE_HAZARD_PER_YEAR * np.exp(lp)))
    t_drop = rng.exponential(1.0 / dropout_per_year, size=len(lp)) if dropout_per_year else np.inf
    t_cens = np.minimum(follow_up_years, t_drop)
    return np.minimum(t_event, t_cens), (t_event <= t_cens).astype(np.int64)


def baseline_cac(age: np.ndarray, male: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Total Agatston at the first exam: P(CAC > 0) rises with age and male sex."""
    logit = -0.5 + 0.09 * (age - 60) + 0.6 * male
    positive = rng.uniform(size=len(age)) < 1 / (1 + np.exp(-logit))
    score = np.exp(rng.normal(3.5 + 0.03 * (age - 60), 1.6))
    return np.where(positive, score, 0.0)


def simulate_cohort(
    n_participants: int,
    n_exams: int = 3,
    seed: int = 0,
    recon_p: float = 0.5,
    follow_up_years: float = 10.0,
    dropout_per_year: float = 0.02,
    interval_years: float = 2.0,
    min_exams: int = 1,
) -> SimulatedCohort:
    """A cohort of ``n_participants`` with up to ``n_exams`` exams (a participant has k
    exams with k uniform in 1..n_exams), each with a soft 3 mm series and, with
    probability ``recon_p``, a sharp 1 mm one (scored higher: sharp-kernel noise)."""
    rng = np.random.default_rng(seed)
    n = n_participants
    pid = np.array([f"P{i:06d}" for i in range(n)], dtype=object)
    age = np.round(rng.uniform(45, 80, n), 1)
    male = (rng.uniform(size=n) < 0.5).astype(int)
    cac0 = baseline_cac(age, male, rng)
    lp = np.log(HR_LN_CAC) * np.log1p(cac0)
    lp = lp + np.log(HR_AGE_10Y) * (age - 60) / 10 + np.log(HR_MALE) * male
    time, event = event_times(lp, rng, follow_up_years, dropout_per_year)
    clinical = pd.DataFrame(
        {
            "patient_id": pid,
            "age": age,
            "sex": np.where(male == 1, "M", "F"),
            "time_years": np.round(time, 4),
            "event": event,
        }
    )
    k = rng.integers(min_exams, n_exams + 1, n)
    p_rep = np.repeat(np.arange(n), k)
    visit = np.concatenate([np.arange(i) for i in k]) if n else np.array([], int)
    days = np.round(visit * interval_years * DAYS_PER_YEAR + rng.normal(0, 30, len(visit)))
    days = np.where(visit == 0, 0, np.maximum(days, 1)).astype(np.int64)
    years = days / DAYS_PER_YEAR
    growth = np.exp(rng.normal(0.2, 0.1, len(visit)) * years)
    incident = (cac0[p_rep] == 0) & (rng.uniform(size=len(visit)) < 0.05 * years)
    cac = np.where(incident, rng.exponential(10, len(visit)), cac0[p_rep] * growth)
    exam_id = np.array([f"E{p:06d}-{v}" for p, v in zip(p_rep, visit, strict=True)], dtype=object)
    has_sharp = rng.uniform(size=len(visit)) < recon_p
    e_rep = np.concatenate([np.arange(len(visit)), np.flatnonzero(has_sharp)])
    e_rep.sort(kind="stable")
    second = np.zeros(len(e_rep), bool)
    second[1:] = e_rep[1:] == e_rep[:-1]
    uid = np.array(
        [f"S{e:07d}.{int(s) + 1}" for e, s in zip(e_rep, second, strict=True)], dtype=object
    )
    scans = pd.DataFrame(
        {
            "series_uid": uid,
            "patient_id": pid[p_rep[e_rep]],
            "status": str(Status.OK),
            "kernel": np.where(second, KERNELS[1], KERNELS[0]),
            "slice_thickness_mm": np.where(second, 1.0, 3.0),
            "n_slices": np.where(second, 300, 100),
        }
    )
    total = cac[e_rep] * np.where(second, 1.3, 1.0) + np.where(second & (cac[e_rep] == 0), 5, 0)
    scores = _artery_scores(uid, scans["patient_id"].to_numpy(), np.round(total, 2), rng)
    exam_table = pd.DataFrame(
        {
            "series_uid": uid,
            "exam_id": exam_id[e_rep],
            "patient_id": pid[p_rep[e_rep]],
            "days": days[e_rep],
        }
    )
    truth = {"ln_cac_plus_1": HR_LN_CAC, "age_per_10y": HR_AGE_10Y, "sex=M": HR_MALE}
    return SimulatedCohort(scans, scores, exam_table, clinical, truth)


def _artery_scores(
    uid: np.ndarray, pid: np.ndarray, total: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Scores rows (method ``reference``): per artery a Dirichlet share of the total."""
    shares = rng.dirichlet(10 * np.array(list(ARTERY_SHARE.values())), len(uid))
    parts = {a: np.round(total * shares[:, i], 2) for i, a in enumerate(ARTERY_SHARE)}
    parts["total"] = sum(parts[a] for a in ARTERY_SHARE)
    frames = [
        pd.DataFrame(
            {
                "series_uid": uid,
                "patient_id": pid,
                "method": "reference",
                "artery": a,
                "agatston": v,
            }
        )
        for a, v in parts.items()
    ]
    return pd.concat(frames, ignore_index=True)


def demo_study_tables(
    series: pd.DataFrame, total_scores: pd.Series, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exam table and clinical table for a synthetic imaging dataset.

    ``series``: scans rows (``series_uid``, ``status``) of the dataset; ``total_scores``:
    total Agatston per ``series_uid`` (the reference). Series are taken in ``series_uid``
    order in groups of 3: the first two are two reconstructions of exam T0, the third is
    exam T1 (about two years later) of the same participant. Returns
    (exam table ``series_uid, exam_id, patient_id, days``; clinical table
    ``patient_id, age, sex, time_years, event``) with events from the hazard model of
    :func:`simulate_cohort`.
    """
    rng = np.random.default_rng(seed)
    uids = sorted(series["series_uid"].astype(str))
    rows = []
    for i, uid in enumerate(uids):
        p, r = divmod(i, 3)
        visit = 0 if r < 2 else 1
        days = 0 if visit == 0 else int(2 * DAYS_PER_YEAR + rng.integers(-60, 60))
        rows.append((uid, f"DEMO-E{p:03d}-{visit}", f"DEMO-P{p:03d}", days))
    exams = pd.DataFrame(rows, columns=["series_uid", "exam_id", "patient_id", "days"])
    first = exams[exams["days"] == 0].groupby("patient_id")["series_uid"].first()
    cac = first.map(total_scores).fillna(0.0).to_numpy(float)
    n = len(first)
    age = np.round(rng.uniform(45, 80, n), 1)
    male = (rng.uniform(size=n) < 0.5).astype(int)
    lp = np.log(HR_LN_CAC) * np.log1p(cac)
    lp = lp + np.log(HR_AGE_10Y) * (age - 60) / 10 + np.log(HR_MALE) * male
    # the demo is small: a higher baseline hazard so that some events occur
    time, event = event_times(lp + np.log(DEMO_HAZARD_FACTOR), rng, 10.0, 0.02)
    clinical = pd.DataFrame(
        {
            "patient_id": first.index.to_numpy(),
            "age": age,
            "sex": np.where(male == 1, "M", "F"),
            "time_years": np.round(time, 4),
            "event": event,
        }
    )
    return exams, clinical


def demo_readme(n_participants: int, n_events: int) -> str:
    """README of the demo's simulated study (true hazard ratios stated)."""
    return f"""# Simulated study of the demo dataset

Written by `cacflow study simulate` (cacflow.study.simulate.demo_study_tables); not real data.

- `exams.csv`: `series_uid, exam_id, patient_id, days`. The synthetic scans are grouped in
  `series_uid` order, three at a time, into one participant: the first two are two
  reconstructions of exam T0, the third is exam T1 about two years (730 ± 60 days) later.
  (The phantom generator draws every scan independently, so the change between T0 and T1
  is not real progression.)
- `clinical.csv`: `patient_id, age, sex, time_years, event` for {n_participants} participants
  ({n_events} events). Event times are exponential with hazard
  h(t) = {BASELINE_HAZARD_PER_YEAR * DEMO_HAZARD_FACTOR:g} / year · exp(ln {HR_LN_CAC} · ln(CAC+1)
  + ln {HR_AGE_10Y} · (age − 60)/10 + ln {HR_MALE} · [male]), CAC = the T0 reference total
  Agatston score; censoring at 10 years and by 2 % / year drop-out.

True hazard ratios: **{HR_LN_CAC} per unit ln(CAC+1)**, **{HR_AGE_10Y} per 10 years of age**,
**{HR_MALE} for men vs women**. The demo has too few participants to estimate them
precisely; `tests/study/test_outcomes.py` recovers them (95 % CIs cover the truth) on a
simulated cohort of 4,000 participants.
"""
