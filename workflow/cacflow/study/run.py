"""The ``study`` workflow step: a dataset's scans and scores → the study tables.

Reads ``scans.parquet`` and ``scores.parquet`` of ``results/<ds>/`` and the dataset's
optional exam, timepoints and clinical tables; writes ``exams.parquet``,
``progression.parquet``, ``cac_drs.parquet``, ``table1.parquet``, ``outcomes.parquet`` and
``km.parquet`` (Kaplan–Meier curves for the report). Dates are turned into days since each
participant's first exam before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cacflow.config import default_of
from cacflow.conventions import Status, schemes_from_config
from cacflow.study.cacdrs import cacdrs_a, cacdrs_table
from cacflow.study.exams import SelectionRule, select_exams
from cacflow.study.outcomes import OutcomeSpec, kaplan_meier, outcome_table
from cacflow.study.progression import ProgressionRule, consecutive_pairs, progression_table
from cacflow.study.table1 import table1
from cacflow.study.timepoints import assign_timepoints, series_exams

CAC_DRS = "cac_drs"
CAC_DRS_LABELS = ["0", "1-99", "100-299", ">=300"]
STUDY_KEYS = ("exams", "timepoints", "clinical", "simulate_clinical")
"""Dataset keys that switch the study tables on."""
SIMULATED_DIR = "study"
"""Folder under data/<ds>/ where ``simulate_clinical`` writes its tables."""
STUDY_TABLES = ("exams", "progression", "cac_drs", "table1", "outcomes", "km")


def study_enabled(settings: dict[str, Any]) -> bool:
    """Whether the dataset asks for study tables (an exam, timepoints or clinical table)."""
    return any(k in settings for k in STUDY_KEYS)


def study_inputs(settings: dict[str, Any]) -> dict[str, str]:
    """Paths of the dataset's exam / timepoints / clinical tables (simulated ones under
    ``data/<ds>/study/`` when ``simulate_clinical`` is set)."""
    paths = {k: settings[k] for k in ("exams", "timepoints", "clinical") if k in settings}
    if "simulate_clinical" in settings:
        root = f"data/{settings['dataset']}/{SIMULATED_DIR}"
        paths.setdefault("exams", f"{root}/exams.csv")
        paths.setdefault("clinical", f"{root}/clinical.csv")
    return paths


@dataclass(frozen=True)
class StudyConfig:
    """Config section ``study`` plus the dataset's ``exam_select``."""

    source: str
    categories: str
    selection: SelectionRule
    progression: ProgressionRule
    outcome: OutcomeSpec
    ph_check: bool

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> StudyConfig:
        st = default_of("study") | (settings.get("study") or {})
        geometry = settings.get("resample") or {}
        outcome = dict(st.get("outcome") or {})
        outcome.setdefault("n_boot", st["n_boot"])
        outcome.setdefault("seed", st["seed"])
        return cls(
            source=st["source"],
            categories=st["categories"],
            selection=SelectionRule.from_config(
                settings.get("exam_select"), geometry.get("thickness_mm")
            ),
            progression=ProgressionRule.from_config(st.get("progression")),
            outcome=OutcomeSpec.from_config(outcome),
            ph_check=bool(st["ph_check"]),
        )


def categorize_cac(agatston: np.ndarray, categories: str, schemes: dict) -> tuple[np.ndarray, list]:
    """Category index and labels: CAC-DRS A0–A3 or a configured risk scheme."""
    if categories == CAC_DRS:
        return cacdrs_a(agatston), list(CAC_DRS_LABELS)
    from cacflow.stats.categories import categorize

    scheme = schemes[categories]
    return categorize(agatston, scheme), scheme.labels()


def exam_scores(exams: pd.DataFrame, scores: pd.DataFrame, drs: pd.DataFrame) -> pd.DataFrame:
    """Chosen series' scores per exam: ``agatston`` (total), per-artery Agatston,
    ``volume_mm3``, ``mass_mg`` (total) and CAC-DRS."""
    wide = scores.pivot_table(
        index="series_uid", columns="artery", values="agatston", aggfunc="sum"
    )
    total = scores[scores["artery"] == "total"].set_index("series_uid")
    out = exams.copy()
    out["agatston"] = out["series_uid"].map(wide["total"]) if "total" in wide else np.nan
    for art in ("LAD", "LCX", "RCA"):
        out[art] = out["series_uid"].map(wide[art]) if art in wide else np.nan
    for col in ("volume_mm3", "mass_mg"):
        out[col] = out["series_uid"].map(total[col]) if col in total else np.nan
    d = drs.set_index("series_uid")
    for col in ("cac_drs_a", "cac_drs_n", "cac_drs"):
        out[col] = out["series_uid"].map(d[col])
    return out


def build_study(
    scans: pd.DataFrame,
    scores: pd.DataFrame,
    cfg: StudyConfig,
    schemes: dict,
    exam_table: pd.DataFrame | None = None,
    timepoints: pd.DataFrame | None = None,
    clinical: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """All study tables from in-memory inputs (see the module docstring)."""
    src = scores[scores["method"] == cfg.source]
    if src.empty and len(scores):
        have = ", ".join(sorted(scores["method"].astype(str).unique()))
        raise ValueError(f"config key 'study.source': no method '{cfg.source}' (have: {have})")
    series = _series(scans, src)
    series, exam_source = series_exams(series, exam_table)
    exams = select_exams(series, cfg.selection)
    keys = ["patient_id", "exam_id"]
    agg = {"days": ("days", "min")}
    if "timepoint" in series.columns:
        agg["timepoint"] = ("timepoint", "first")
    per_exam = series.groupby(keys, sort=False).agg(**agg).reset_index()
    exams = exams.merge(per_exam, on=keys, how="left", validate="one_to_one")
    exams = assign_timepoints(exams, timepoints)
    drs = cacdrs_table(src) if len(src) else pd.DataFrame(columns=["series_uid"])
    exams = exam_scores(exams, src, drs)
    scored = exams["agatston"].notna()
    cat = np.full(len(exams), -1)
    cat[scored.to_numpy()], labels = categorize_cac(
        exams.loc[scored, "agatston"].to_numpy(float), cfg.categories, schemes
    )
    exams["category"] = pd.Series(
        np.where(cat >= 0, np.array(labels, dtype=object)[np.maximum(cat, 0)], None)
    )
    pairs = consecutive_pairs(exams)
    progression = progression_table(pairs, src, cfg.progression)
    out = _exam_columns(exams)
    out.attrs["exam_source"] = exam_source
    tables = {"exams": out, "progression": progression, "cac_drs": drs}
    tables |= outcome_tables(exams, cat, labels, clinical, cfg)
    return tables


def outcome_tables(
    exams: pd.DataFrame,
    cat: np.ndarray,
    labels: list[str],
    clinical: pd.DataFrame | None,
    cfg: StudyConfig,
) -> dict[str, pd.DataFrame]:
    """Baseline table, Cox/C-index table and KM curves (empty without a clinical table)."""
    from cacflow.study.outcomes import OUTCOME_COLUMNS
    from cacflow.study.table1 import TABLE1_COLUMNS

    if clinical is None:
        return {
            "table1": pd.DataFrame(columns=list(TABLE1_COLUMNS)),
            "outcomes": pd.DataFrame(columns=list(OUTCOME_COLUMNS)),
            "km": pd.DataFrame(columns=["category", "time", "survival"]),
        }
    spec = cfg.outcome
    missing = [c for c in (spec.time, spec.event, *spec.covariates) if c not in clinical]
    if missing:
        raise ValueError(f"clinical table: no column {missing[0]!r} (config study.outcome)")
    base = exams.assign(_cat=cat)
    base = base[base["_cat"] >= 0].sort_values(["patient_id", "visit"])
    base = base.drop_duplicates("patient_id", keep="first")
    clinical = clinical.assign(patient_id=clinical["patient_id"].astype(str))
    cohort = clinical.merge(
        base[["patient_id", "agatston", "_cat"]].rename(columns={"_cat": "category"}),
        on="patient_id",
        how="inner",
    )
    covs = [*spec.covariates, spec.event, spec.time]
    shown = cohort.assign(**{spec.event: cohort[spec.event].map(_event_text)})
    return {
        "table1": table1(shown, covs, labels),
        "outcomes": outcome_table(cohort, spec, labels, cfg.ph_check),
        "km": kaplan_meier(cohort, spec, labels),
    }


def _event_text(value: Any) -> Any:
    """Event indicator as a level of table 1 (``event = 1`` rows give n (%))."""
    return None if pd.isna(value) else str(int(value))


def _series(scans: pd.DataFrame, src: pd.DataFrame) -> pd.DataFrame:
    """Every series of the scans table, plus series only known from the score table
    (statistics-only datasets: usable, geometry unknown)."""
    cols = [c for c in ("series_uid", "patient_id", "status", "kernel") if c in scans]
    cols += [c for c in ("slice_thickness_mm", "n_slices", "study_uid", "study_days") if c in scans]
    known = scans[cols].copy()
    extra = src.drop_duplicates("series_uid")[["series_uid", "patient_id"]]
    extra = extra[~extra["series_uid"].isin(known["series_uid"])].assign(status=str(Status.OK))
    out = pd.concat([known, extra], ignore_index=True) if len(extra) else known
    out["series_uid"] = out["series_uid"].astype(str)
    out["patient_id"] = out["patient_id"].astype(str)
    return out


EXAMS_OUT = (
    "patient_id",
    "exam_id",
    "timepoint",
    "visit",
    "days",
    "series_uid",
    "n_candidates",
    "n_usable",
    "kernel_family",
    "slice_thickness_mm",
    "why",
    "agatston",
    "LAD",
    "LCX",
    "RCA",
    "volume_mm3",
    "mass_mg",
    "category",
    "cac_drs_a",
    "cac_drs_n",
    "cac_drs",
)


def _exam_columns(exams: pd.DataFrame) -> pd.DataFrame:
    out = exams[list(EXAMS_OUT)].sort_values(["patient_id", "visit"], kind="stable")
    out = out.reset_index(drop=True)
    out["days"] = pd.to_numeric(out["days"], errors="coerce").astype("Int64")
    return out


def flow_counts(exams: pd.DataFrame) -> dict[str, int]:
    """Counts at each step: participants → exams → exams with a chosen series."""
    return {
        "participants": int(exams["patient_id"].nunique()),
        "exams": len(exams),
        "series_considered": int(exams["n_candidates"].sum()),
        "series_usable": int(exams["n_usable"].sum()),
        "exams_with_series": int(exams["series_uid"].notna().sum()),
        "participants_with_followup": int(
            (exams["visit"] > 0).groupby(exams["patient_id"]).any().sum()
        ),
    }


def _optional(path: str | None) -> pd.DataFrame | None:
    from cacflow.tables import read_table

    return None if path is None else read_table(path)


def with_study_keys(scans: pd.DataFrame, manifest: Path | None) -> pd.DataFrame:
    """Scans rows with the manifest's ``study_uid`` and ``study_days`` (when it has them)."""
    import pyarrow.parquet as pq

    if manifest is None or not str(manifest).endswith((".parquet", ".pq")):
        return scans
    names = set(pq.read_schema(manifest).names)
    if not {"study_uid", "study_days"} <= names:
        return scans
    keys = pd.read_parquet(manifest, columns=["series_uid", "study_uid", "study_days"])
    return scans.drop(columns=["study_uid", "study_days"], errors="ignore").merge(
        keys, on="series_uid", how="left"
    )


def run_study(
    data_dir: Path,
    settings: dict[str, Any],
    out_dir: Path | None = None,
    manifest: Path | None = None,
) -> None:
    """Read ``data_dir``'s scans/scores and the dataset's tables; write the study tables.

    ``manifest``: the series manifest, whose StudyInstanceUID and days since the patient's
    first study key the exams when the dataset has no exam table."""
    import json

    from cacflow.provenance import write_table
    from cacflow.tables import read_table, table_meta

    out_dir = out_dir or data_dir
    cfg = StudyConfig.from_settings(settings)
    paths = study_inputs(settings)
    tables = build_study(
        with_study_keys(read_table(data_dir / "scans.parquet"), manifest),
        read_table(data_dir / "scores.parquet"),
        cfg,
        schemes_from_config(settings.get("schemes")),
        _optional(paths.get("exams")),
        _optional(paths.get("timepoints")),
        _optional(paths.get("clinical")),
    )
    meta = table_meta(settings)
    meta["study"] = json.dumps(
        {"selection": cfg.selection.describe(), "study": settings.get("study") or {}},
        sort_keys=True,
        default=str,
    )
    meta["exam_source"] = tables["exams"].attrs.get("exam_source", "")
    meta |= {f"count.{k}": str(v) for k, v in flow_counts(tables["exams"]).items()}
    for name in STUDY_TABLES:
        write_table(tables[name].reset_index(drop=True), out_dir / f"{name}.parquet", meta)
    print(
        f"study: {meta['count.participants']} participants, {meta['count.exams']} exams, "
        f"{meta['count.exams_with_series']} with a chosen series",
        flush=True,
    )


def write_simulated_study(data_dir: Path, settings: dict[str, Any], out_dir: Path) -> None:
    """The demo's study: exam table, clinical table and a README stating the true hazard
    ratios, from the dataset's scans and its ``study.source`` total scores."""
    from cacflow.provenance import atomic_path
    from cacflow.study import simulate
    from cacflow.tables import read_table

    cfg = StudyConfig.from_settings(settings)
    scans = read_table(data_dir / "scans.parquet")
    scores = read_table(data_dir / "scores.parquet")
    total = scores[(scores["method"] == cfg.source) & (scores["artery"] == "total")]
    seed = int((settings.get("simulate_clinical") or {}).get("seed", 0))
    exams, clinical = simulate.demo_study_tables(
        scans, total.set_index("series_uid")["agatston"], seed
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, df in (("exams", exams), ("clinical", clinical)):
        with atomic_path(out_dir / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
    with atomic_path(out_dir / "README.md") as tmp:
        tmp.write_text(simulate.demo_readme(len(clinical), int(clinical["event"].sum())))
