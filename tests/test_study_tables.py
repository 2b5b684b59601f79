"""Reproducing a study's tables from its score tables (a dataset without DICOM)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cacflow.conventions import DEFAULT_SCHEMES
from cacflow.stats import scores_from_confusion
from published import (
    DEVOS_ACCURACY,
    DEVOS_KAPPA,
    DEVOS_TABLE_III_CARDIAC,
    DEVOS_TABLE_III_CHEST,
)
from wf import copy_config, run_snakemake


def _write_score_tables(root: Path, name: str, matrix) -> dict:
    scores = scores_from_confusion(matrix, DEFAULT_SCHEMES["A"], method="convnet")
    total = scores[scores["artery"] == "total"]
    paths = {}
    for method in ("reference", "convnet"):
        table = total[total["method"] == method][["series_uid", "patient_id", "agatston"]]
        paths[method] = root / f"{name}_{method}.csv"
        table.to_csv(paths[method], index=False)
    return {
        "reference_scores": str(paths["reference"]),
        "external_scores": {"convnet": str(paths["convnet"])},
    }


@pytest.mark.slow
def test_statistics_only_datasets_reproduce_published_kappa(tmp_path: Path) -> None:
    copy_config(tmp_path)
    user = {
        "datasets": {
            "devos_cardiac": _write_score_tables(tmp_path, "cardiac", DEVOS_TABLE_III_CARDIAC),
            "devos_chest": _write_score_tables(tmp_path, "chest", DEVOS_TABLE_III_CHEST),
        },
        "run": ["devos_cardiac", "devos_chest"],
        "stats": {"n_boot": 200},
    }
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(user))
    run_snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    for name, matrix in (("cardiac", DEVOS_TABLE_III_CARDIAC), ("chest", DEVOS_TABLE_III_CHEST)):
        res = tmp_path / "results" / f"devos_{name}"
        agreement = pd.read_parquet(res / "agreement.parquet").set_index("statistic")
        kappa = agreement.loc["kappa_linear:A"]
        assert round(kappa["value"], 4) == DEVOS_KAPPA[name]
        assert round(agreement.loc["accuracy:A", "value"], 2) == DEVOS_ACCURACY[name]
        assert kappa["n"] == matrix.sum()
        assert kappa["ci_low"] <= kappa["value"] <= kappa["ci_high"]
        confusion = pd.read_parquet(res / "confusion.parquet")
        a = confusion[confusion["scheme"] == "A"]
        counts = a.pivot_table(
            index="reference_category", columns="method_category", values="count", sort=False
        )
        assert counts.to_numpy().tolist() == matrix.tolist()
        scans = pd.read_parquet(res / "scans.parquet")
        assert scans.empty  # no DICOM: nothing to account for
        assert (res / "report.html").read_text().count("convnet") >= 1
