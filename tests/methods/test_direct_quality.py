"""Quality targets for the shipped `direct` model, read from the workflow's own tables
(issues 7 and 13):

- a fresh synthetic v1 dataset (the usual mix, a seed used neither for training nor for
  the model card) goes DICOM -> convert -> 3/1.5 mm -> reference -> direct -> stats;
- the held-out inserted-calcium dataset (``inserted`` of config/config.yaml: the two real
  backgrounds of shared/data/real_ct with calcium inserted under seeds 101-105, chest and
  200 mm cardiac FOV; training used other seeds of the same backgrounds) through the same
  stages;
- the real CAC-free chest CTs of shared/data/real_ct: every scorable series scores < 10.

The last two are the session's runs of tests/methods/conftest.py (shared with the
`segment` targets).

The kappa is recomputed here from the confusion table with the textbook formula, so the
check does not lean on the statistics code it reads from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from wf import REAL_CT, REPO, run_dataset

N_SCANS = 24
SEED = 3003
_INSERT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["datasets"]["inserted"]
N_INSERTED = len(_INSERT["inserted"]["backgrounds"]) * len(_INSERT["inserted"]["seeds"]) * 2
"""Copies in the held-out inserted-calcium dataset: per background and seed, chest and
cardiac FOV."""
CAC_FREE_MAX = 10.0
needs_real = pytest.mark.skipif(not REAL_CT.is_dir(), reason="shared/data/real_ct not present")


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
    spec = {"synthetic": {"n_scans": N_SCANS, "seed": SEED}}
    workdir = tmp_path_factory.mktemp("quality")
    return run_dataset(workdir, "quality", spec, methods=["direct"], targets=["agreement.parquet"])


def _check_targets(run: Path, n: int) -> None:
    agreement = pd.read_parquet(run / "agreement.parquet")
    direct = agreement[agreement["method"] == "direct"].set_index(["artery", "statistic"])
    assert direct.loc[("total", "icc"), "n"] == n
    assert direct.loc[("total", "icc"), "value"] >= 0.95
    for artery in ("LAD", "LCX", "RCA"):
        assert direct.loc[(artery, "icc"), "value"] >= 0.90, artery

    confusion = pd.read_parquet(run / "confusion.parquet")
    a = confusion[(confusion["method"] == "direct") & (confusion["scheme"] == "A")]
    order = list(dict.fromkeys(a["reference_category"]))
    table = (
        a.pivot_table(index="reference_category", columns="method_category", values="count")
        .reindex(index=order, columns=order)
        .to_numpy()
    )
    assert table.sum() == n
    kappa = _linear_kappa(table)
    assert kappa == pytest.approx(direct.loc[("total", "kappa_linear:A"), "value"], abs=1e-9)
    assert kappa >= 0.90, table


@pytest.mark.slow
def test_direct_meets_the_quality_targets(quality_run: Path) -> None:
    _check_targets(quality_run, N_SCANS)


@pytest.mark.slow
@needs_real
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,  # a setup or fixture error is a failure, not the known miss
    reason="issue 13 target not met by the shipped model: held-out inserted calcium ICC 0.77, "
    "per-artery ICC 0.52-0.79, kappa(A) 0.31 (MODEL_CARD.md)",
)
def test_direct_meets_the_targets_on_held_out_inserted_calcium(inserted_run: Path) -> None:
    _check_targets(inserted_run, N_INSERTED)


@pytest.mark.slow
@needs_real
def test_direct_scores_the_real_cac_free_series_below_10(real_run: Path) -> None:
    scans = pd.read_parquet(real_run / "scans.parquet")
    scores = pd.read_parquet(real_run / "scores.parquet")
    ok = set(scans.loc[scans["status"] == "ok", "series_uid"])
    assert ok, "no scorable real series"
    direct = scores[(scores["method"] == "direct") & (scores["artery"] == "total")]
    totals = direct.set_index("series_uid")["agatston"]
    assert set(totals.index) == ok
    assert (totals < CAC_FREE_MAX).all(), totals.to_dict()
