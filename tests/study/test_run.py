"""cacflow.study.run: the study step on a statistics-only dataset (score table + exam
table with dates + clinical table), through the CLI; no date or identifier leaves it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from cacflow.cli import main
from cacflow.study.run import STUDY_TABLES
from cacflow.study.simulate import simulate_cohort
from cacflow.tables import SCANS_COLUMNS


def _dataset(tmp: Path) -> dict:
    sim = simulate_cohort(600, n_exams=3, seed=4)
    data = tmp / "results" / "cohort"
    data.mkdir(parents=True)
    pq.write_table(
        __import__("pyarrow").Table.from_pandas(pd.DataFrame(columns=list(SCANS_COLUMNS))),
        data / "scans.parquet",
    )
    sim.scores.to_parquet(data / "scores.parquet")
    first = pd.Timestamp("2011-03-14")
    exams = sim.exam_table.assign(
        study_date=(first + pd.to_timedelta(sim.exam_table["days"], unit="D")).dt.strftime("%Y%m%d")
    ).drop(columns=["days"])
    exams.to_csv(tmp / "exams.csv", index=False)
    sim.clinical.to_csv(tmp / "clinical.csv", index=False)
    settings = {
        "dataset": "cohort",
        "exams": str(tmp / "exams.csv"),
        "clinical": str(tmp / "clinical.csv"),
        "study": {"n_boot": 20},
    }
    when = pd.to_datetime(exams["study_date"], format="%Y%m%d")
    dates = set(exams["study_date"]) | set(when.dt.strftime("%Y-%m-%d"))
    return {"data": data, "settings": settings, "sim": sim, "dates": dates}


def test_statistics_only_study_through_the_cli(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    rc = main(["study", "tables", str(ds["data"]), "--settings", json.dumps(ds["settings"])])
    assert rc == 0
    tables = {n: pd.read_parquet(ds["data"] / f"{n}.parquet") for n in STUDY_TABLES}
    exams = tables["exams"]
    sim = ds["sim"]
    assert len(exams) == sim.exam_table["exam_id"].nunique()
    assert exams["series_uid"].notna().all()
    # no scans rows (statistics only): kernel unknown, ties go to the smallest series_uid
    assert exams["series_uid"].str.endswith(".1").all()
    assert (exams.loc[exams["visit"] == 0, "days"] == 0).all()
    assert (exams.loc[exams["visit"] > 0, "days"] > 0).all()
    prog = tables["progression"]
    n_pairs = (exams.groupby("patient_id").size() - 1).sum()
    assert len(prog) == 4 * n_pairs
    out = tables["outcomes"]
    assert {"hr", "ph_test", "c_index", "c_index_gain"} <= set(out["statistic"])
    assert set(out["model"]) >= {"category", "category_adjusted", "ln_cac", "ln_cac_adjusted"}
    # privacy: no date, no path, in any table or its metadata
    for name, df in tables.items():
        text = df.astype(str).to_csv() + json.dumps(
            {
                k.decode(): v.decode()
                for k, v in pq.read_schema(ds["data"] / f"{name}.parquet").metadata.items()
            }
        )
        assert not any(d in text for d in ds["dates"]), name
        assert "study_date" not in text, name
        assert str(tmp_path) not in text, name


def test_bad_clinical_column_is_one_line(tmp_path: Path, capsys) -> None:
    ds = _dataset(tmp_path)
    settings = ds["settings"] | {"study": {"outcome": {"time": "follow_up"}}}
    rc = main(["study", "tables", str(ds["data"]), "--settings", json.dumps(settings)])
    assert rc == 2
    assert "follow_up" in capsys.readouterr().err


def test_report_section_states_rule_counts_and_curves(tmp_path: Path) -> None:
    from cacflow.study.report import add_study_section

    ds = _dataset(tmp_path)
    assert main(["study", "tables", str(ds["data"]), "--settings", json.dumps(ds["settings"])]) == 0
    page = "<html><body><nav><div><a href='#cohort'>Cohort</a></div></nav><main>"
    page += "<footer>f</footer></main></body></html>"
    html = add_study_section(page, ds["data"])
    assert html.index('id="study"') < html.index("<footer>")
    assert 'href="#study"' in html
    assert "soft kernel first" in html and "participants" in html
    assert "Harrell" in html and "data:image/png;base64," in html
    assert not any(d in html for d in ds["dates"])
