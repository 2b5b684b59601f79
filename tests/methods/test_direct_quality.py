"""Issue 7's quality targets for the shipped `direct` model, read from the workflow's own
tables: a fresh synthetic dataset (the usual mix, a seed used neither for training nor for
the model card) goes DICOM -> convert -> 3/1.5 mm -> reference -> direct -> stats.

The kappa is recomputed here from the confusion table with the textbook formula, so the
check does not lean on the statistics code it reads from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from wf import copy_config, run_snakemake

N_SCANS = 24
SEED = 3003


def _linear_kappa(table: np.ndarray) -> float:
    """Cohen's linearly weighted kappa of a square confusion table (own arithmetic)."""
    k = table.shape[0]
    n = table.sum()
    i, j = np.indices((k, k))
    w = 1.0 - np.abs(i - j) / (k - 1)
    observed = (w * table).sum() / n
    expected = (w * np.outer(table.sum(axis=1), table.sum(axis=0))).sum() / n**2
    return float((observed - expected) / (1.0 - expected))


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("quality")
    copy_config(workdir)
    user = {
        "datasets": {"quality": {"synthetic": {"n_scans": N_SCANS, "seed": SEED}}},
        "run": ["quality"],
        "methods": ["direct"],
        "stats": {"n_boot": 50},
    }
    (workdir / "quality.yaml").write_text(yaml.safe_dump(user))
    run_snakemake(workdir, "--cores", "2", "--configfile", "quality.yaml")
    return workdir / "results" / "quality"


@pytest.mark.slow
def test_direct_meets_the_quality_targets(quality_run: Path) -> None:
    agreement = pd.read_parquet(quality_run / "agreement.parquet")
    direct = agreement[agreement["method"] == "direct"].set_index(["artery", "statistic"])
    assert direct.loc[("total", "icc"), "n"] == N_SCANS
    assert direct.loc[("total", "icc"), "value"] >= 0.95
    for artery in ("LAD", "LCX", "RCA"):
        assert direct.loc[(artery, "icc"), "value"] >= 0.90, artery

    confusion = pd.read_parquet(quality_run / "confusion.parquet")
    a = confusion[(confusion["method"] == "direct") & (confusion["scheme"] == "A")]
    order = list(dict.fromkeys(a["reference_category"]))
    table = (
        a.pivot_table(index="reference_category", columns="method_category", values="count")
        .reindex(index=order, columns=order)
        .to_numpy()
    )
    assert table.sum() == N_SCANS
    kappa = _linear_kappa(table)
    assert kappa == pytest.approx(direct.loc[("total", "kappa_linear:A"), "value"], abs=1e-9)
    assert kappa >= 0.90, table
