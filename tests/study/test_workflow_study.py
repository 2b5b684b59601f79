"""The study rule as a workflow: a statistics-only dataset (score table, exam table with
dates, clinical table) ends with the study tables and a report section."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cacflow.study.simulate import simulate_cohort
from wf import copy_config, run_snakemake


def test_demo_plans_the_study(tmp_path: Path) -> None:
    copy_config(tmp_path)
    proc = run_snakemake(tmp_path, "-n", "--cores", "1")
    assert "simulate_clinical" in proc.stdout and "\nstudy " in proc.stdout.replace("  ", " ")


@pytest.mark.slow
def test_statistics_only_study_dataset(tmp_path: Path) -> None:
    copy_config(tmp_path)
    sim = simulate_cohort(400, n_exams=2, seed=9)
    total = sim.scores.pivot_table(
        index=["series_uid", "patient_id"], columns="artery", values="agatston"
    ).reset_index()
    total = total.rename(columns={"total": "agatston"})
    total.to_csv(tmp_path / "scores.csv", index=False)
    first = pd.Timestamp("2009-06-01")
    exams = sim.exam_table.assign(
        study_date=(first + pd.to_timedelta(sim.exam_table["days"], unit="D")).dt.strftime(
            "%Y-%m-%d"
        )
    ).drop(columns=["days"])
    exams.to_csv(tmp_path / "exams.csv", index=False)
    sim.clinical.to_csv(tmp_path / "clinical.csv", index=False)
    user = {
        "datasets": {
            "cohort": {
                "reference_scores": str(tmp_path / "scores.csv"),
                "exams": str(tmp_path / "exams.csv"),
                "clinical": str(tmp_path / "clinical.csv"),
            }
        },
        "run": ["cohort"],
        "study": {"n_boot": 50},
        "stats": {"n_boot": 0},
    }
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(user))
    run_snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    res = tmp_path / "results" / "cohort"
    exams_out = pd.read_parquet(res / "exams.parquet")
    assert len(exams_out) == sim.exam_table["exam_id"].nunique()
    out = pd.read_parquet(res / "outcomes.parquet")
    assert (out["statistic"] == "hr").any() and (out["statistic"] == "c_index").any()
    html = (res / "report.html").read_text()
    assert 'id="study"' in html and "Kaplan" in html and "Harrell" in html
    assert "2009-06-01" not in html and "2009-06-01" not in exams_out.astype(str).to_csv()
