"""Issue 13 targets for the best method, `hu-threshold`, read from the workflow's own
tables (``agreement.parquet``) of the held-out runs of tests/methods/conftest.py:

- ``heldout_v2`` (synthetic v2, chest and cardiac FOV, several kernels, some stents):
  ICC >= 0.95 and kappa (A) >= 0.90;
- ``inserted`` (calcium inserted into the shared real CAC-free series, seeds 101-105,
  never used to set a rule): ICC >= 0.95, kappa (A) >= 0.90, per-artery ICC >= 0.90;
- ``inserted_gated`` (the same backgrounds in a gated calcium scan's geometry: 200 / 160 mm
  FOV on a 512 matrix, range round the heart; seeds 201-205): the same targets, and the
  held-back gated set's aim of no scan with calcium > 100 scored below 10.

The real CAC-free series are tested in test_hu_threshold_real.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from wf import REAL_CT

pytestmark = pytest.mark.slow
needs_real = pytest.mark.skipif(not REAL_CT.is_dir(), reason="shared/data/real_ct not present")


def _agreement(run: Path) -> pd.Series:
    ag = pd.read_parquet(run / "agreement.parquet")
    return ag[ag["method"] == "hu-threshold"].set_index(["artery", "statistic"])["value"]


def test_hu_threshold_targets_on_heldout_v2(heldout_v2_run: Path) -> None:
    ag = _agreement(heldout_v2_run)
    assert ag[("total", "icc")] >= 0.95, ag[("total", "icc")]
    assert ag[("total", "kappa_linear:A")] >= 0.90, ag[("total", "kappa_linear:A")]


@needs_real
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,  # a setup or fixture error is a failure, not the known miss
    reason="kappa(A) 0.83 < 0.90 (ICC 0.960, RCA ICC 0.84): one RCA lesion (124 Agatston, "
    "LIDC-IDRI-0314 200 mm, seed 105) lies at 159 deg round the heart centre of the analysis "
    "image, inside the atrial-back sector (70-160 deg) that hu-threshold leaves out; the "
    "insertion, on the native image's heart, placed it just outside (README)",
)
def test_hu_threshold_targets_on_held_out_inserted_calcium(inserted_run: Path) -> None:
    ag = _agreement(inserted_run)
    assert ag[("total", "kappa_linear:A")] >= 0.90, ag[("total", "kappa_linear:A")]
    _check_icc(ag)


def _check_icc(ag: pd.Series) -> None:
    """ICC >= 0.95 of the total and >= 0.90 per artery."""
    assert ag[("total", "icc")] >= 0.95, ag[("total", "icc")]
    for artery in ("LAD", "LCX", "RCA"):
        assert ag[(artery, "icc")] >= 0.90, (artery, ag[(artery, "icc")])


def _totals(run: Path) -> pd.DataFrame:
    sc = pd.read_parquet(run / "scores.parquet")
    sc = sc[sc["artery"] == "total"]
    return sc.pivot(index="series_uid", columns="method", values="agatston")


@needs_real
def test_hu_threshold_on_gated_copies_icc_and_no_missed_heavy_scan(inserted_gated_run) -> None:
    _check_icc(_agreement(inserted_gated_run))
    t = _totals(inserted_gated_run)
    heavy = t[t["reference"] > 100]
    assert len(heavy) >= 5  # the copies hold what this test is about
    assert (heavy["hu-threshold"] >= 10).all(), heavy


@needs_real
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,  # a setup or fixture error is a failure, not the known miss
    reason="kappa(A) 0.755 < 0.90 (ICC 0.977 met): the LIDC-IDRI-0314 copies keep 3-4 "
    "bright spots of the background at coronary positions (11.7 at 200 mm, 21.8 at 160 mm; "
    "the same spots give the chest series its 11.0), which lift low-score copies a category",
)
def test_hu_threshold_kappa_on_gated_copies(inserted_gated_run) -> None:
    ag = _agreement(inserted_gated_run)
    assert ag[("total", "kappa_linear:A")] >= 0.90, ag[("total", "kappa_linear:A")]
