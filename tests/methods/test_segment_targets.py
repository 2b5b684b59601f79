"""Issue 16 targets for the shipped `segment` model, read from the workflow's own tables
(``agreement``, ``confusion``, ``detection``, ``lesions``, ``triage``) of the session's
workflow runs on the held-out datasets of config/config.yaml (tests/methods/conftest.py;
same seeds, so the same scans as the model card's figures):

- ``heldout_v2``: 24 synthetic v2 scans (seed 2003), never trained on;
- ``inserted``: the two real backgrounds with calcium inserted under seeds 101-105;
- the real CAC-free chest CTs of shared/data/real_ct: every scorable series < 10 and
  called CAC-negative by the triage.

Targets: coronary lesion F1 >= 0.90, ICC >= 0.95, kappa (A) >= 0.90, per-artery ICC >= 0.90,
TAC lesion F1 >= 0.85. A target the shipped model misses is a strict xfail naming the
measured figure (resources/models/MODEL_CARD_segment.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cacflow.methods.segment.evaluate import region_detection
from wf import REAL_CT

pytestmark = pytest.mark.slow
needs_real = pytest.mark.skipif(not REAL_CT.is_dir(), reason="shared/data/real_ct not present")
CAC_FREE_MAX = 10.0


def _figures(run: Path) -> dict[str, float]:
    ag = pd.read_parquet(run / "agreement.parquet")
    ag = ag[ag["method"] == "segment"].set_index(["artery", "statistic"])["value"]
    det = pd.read_parquet(run / "detection.parquet")
    det = det[det["method"] == "segment"].set_index(["artery", "statistic"])["value"]
    tac = region_detection(pd.read_parquet(run / "lesions.parquet"), "segment", ("TAC",))
    return {
        "f1": float(det[("total", "lesion_f1")]),
        "icc": float(ag[("total", "icc")]),
        "kappa_A": float(ag[("total", "kappa_linear:A")]),
        **{f"icc_{a}": float(ag[(a, "icc")]) for a in ("LAD", "LCX", "RCA")},
        "tac_f1": float(tac["f1"].iloc[0]),
    }


def _check(fig: dict[str, float]) -> None:
    assert fig["f1"] >= 0.90, fig
    assert fig["icc"] >= 0.95, fig
    assert fig["kappa_A"] >= 0.90, fig
    for a in ("LAD", "LCX", "RCA"):
        assert fig[f"icc_{a}"] >= 0.90, fig
    assert fig["tac_f1"] >= 0.85, fig


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,  # a setup or fixture error is a failure, not the known miss
    reason="issue 16 targets not met by the shipped model on heldout_v2: lesion F1 0.864, "
    "ICC LAD 0.81 / LCX 0.45, TAC F1 0 (MODEL_CARD_segment.md); ICC 0.976, kappa(A) 0.94 met",
)
def test_segment_targets_on_heldout_v2(heldout_v2_run: Path) -> None:
    _check(_figures(heldout_v2_run))


@needs_real
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,  # a setup or fixture error is a failure, not the known miss
    reason="issue 16 targets not met on held-out inserted calcium: lesion F1 0.766 "
    "(sensitivity 0.686), ICC 0.723, per-artery ICC 0.63-0.68, kappa(A) 0.49, no TAC "
    "reference lesion (MODEL_CARD_segment.md)",
)
def test_segment_targets_on_held_out_inserted_calcium(inserted_run: Path) -> None:
    _check(_figures(inserted_run))


def test_triage_has_no_false_negative_on_heldout_v2(heldout_v2_run: Path) -> None:
    tri = pd.read_parquet(heldout_v2_run / "triage.parquet").set_index("statistic")["value"]
    assert tri["false_negatives"] == 0


@needs_real
def test_triage_has_no_false_negative_on_held_out_inserted_calcium(inserted_run: Path) -> None:
    tri = pd.read_parquet(inserted_run / "triage.parquet").set_index("statistic")["value"]
    assert tri["false_negatives"] == 0


@needs_real
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,  # a setup or fixture error is a failure, not the known miss
    reason="the triage calls LIDC-IDRI-0314 CAC-positive (its total 6.4 and A0001 B's 0.0 "
    "meet < 10; MODEL_CARD_segment.md)",
)
def test_real_cac_free_series_below_10_and_called_negative(real_run: Path) -> None:
    scans = pd.read_parquet(real_run / "scans.parquet")
    ok = set(scans.loc[scans["status"] == "ok", "series_uid"])
    assert ok, "no scorable real series"
    scores = pd.read_parquet(real_run / "scores.parquet")
    seg = scores[(scores["method"] == "segment") & (scores["artery"] == "total")]
    totals = seg.set_index("series_uid")["agatston"]
    assert set(totals.index) == ok
    assert (totals < CAC_FREE_MAX).all(), totals.to_dict()
    tri = pd.read_parquet(real_run / "triage.parquet").set_index("statistic")["value"]
    assert tri["called_negative_fraction"] == 1.0
