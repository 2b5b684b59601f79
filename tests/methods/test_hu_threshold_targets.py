"""Issue 13 targets for the best method, `hu-threshold`, read from the workflow's own
tables (``agreement.parquet``) of the held-out runs of tests/methods/conftest.py:

- ``heldout_v2`` (synthetic v2, chest and cardiac FOV, several kernels, some stents):
  ICC >= 0.95 and kappa (A) >= 0.90;
- ``inserted`` (calcium inserted into the shared real CAC-free series, seeds 101-105,
  never used to set a rule): ICC >= 0.95, kappa (A) >= 0.90, per-artery ICC >= 0.90.

The real CAC-free series are tested in test_hu_threshold_real.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _agreement(run: Path) -> pd.Series:
    ag = pd.read_parquet(run / "agreement.parquet")
    return ag[ag["method"] == "hu-threshold"].set_index(["artery", "statistic"])["value"]


def test_hu_threshold_targets_on_heldout_v2(heldout_v2_run: Path) -> None:
    ag = _agreement(heldout_v2_run)
    assert ag[("total", "icc")] >= 0.95, ag[("total", "icc")]
    assert ag[("total", "kappa_linear:A")] >= 0.90, ag[("total", "kappa_linear:A")]


def test_hu_threshold_targets_on_held_out_inserted_calcium(inserted_run: Path) -> None:
    ag = _agreement(inserted_run)
    assert ag[("total", "icc")] >= 0.95, ag[("total", "icc")]
    assert ag[("total", "kappa_linear:A")] >= 0.90, ag[("total", "kappa_linear:A")]
    for artery in ("LAD", "LCX", "RCA"):
        assert ag[(artery, "icc")] >= 0.90, (artery, ag[(artery, "icc")])
