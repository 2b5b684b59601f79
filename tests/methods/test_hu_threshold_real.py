"""hu-threshold on real anatomy: the shared real CAC-free chest CTs, and real backgrounds
with inserted calcium (chest and cardiac field of view). Seeds here are not those of the
`inserted` evaluation dataset (101-105)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from cacflow.conventions import ScoringConventions
from cacflow.insert import insert_cohort, read_series
from cacflow.methods.hu_threshold import predict_mask
from cacflow.reference import reference_labels
from cacflow.resample import slab_resample
from cacflow.score import score_volume
from wf import REAL_SERIES, REPO

CONV = ScoringConventions.from_config(
    yaml.safe_load((REPO / "config" / "config.yaml").read_text())["scoring"]
)


def _total(vol) -> float:
    scores, _ = score_volume(
        vol, predict_mask(vol), CONV, series_uid="s", method="m", patient_id=None
    )
    return float(scores.set_index("artery").loc["total", "agatston"])


@pytest.mark.parametrize(
    "name",
    [
        "a0001_5mm_B",
        pytest.param(
            "lidc_1mm_D",
            marks=pytest.mark.xfail(
                strict=True,
                raises=AssertionError,  # a setup or fixture error is a failure, not the known miss
                reason="scores 11.0: three small spots at coronary positions (6.4: 275 HU in "
                "the left AV groove fat; 3.1: 183 HU, posterior groove; 1.5: 175 HU, LAD "
                "origin); the review called the scan CAC-free",
            ),
        ),
    ],
)
def test_cac_free_real_series_score_below_10(real_series, name: str) -> None:
    analysis = slab_resample(real_series(name).volume, 3.0, 1.5)
    assert _total(analysis) < 10.0


@pytest.fixture(scope="module")
def inserted(tmp_path_factory, real_series):
    real_series("a0001_5mm_B")
    out = tmp_path_factory.mktemp("inserted_hu")
    insert_cohort([str(REAL_SERIES["a0001_5mm_B"])], out, [41, 42], 8, [None, 200.0], CONV)
    return out


def test_inserted_calcium_is_found_and_little_else(inserted) -> None:
    ann = pd.read_csv(inserted / "annotations.csv")
    found = truth = outside = 0.0
    for folder in sorted((inserted / "dicom").iterdir()):
        series = read_series(folder)
        vol = slab_resample(series.volume, 3.0, 1.5)
        uid = str(series.datasets[0].SeriesInstanceUID)
        ref, _ = reference_labels(vol, ann[ann["series_uid"] == uid], CONV)
        pred = predict_mask(vol)
        truth += float((ref > 0).sum())
        found += float(((ref > 0) & (pred > 0)).sum())
        outside += float(((pred > 0) & (ref == 0)).sum())
    assert truth > 0
    assert found / truth >= 0.8  # inserted calcium voxels labelled coronary
    assert outside <= 0.1 * truth  # voxels labelled coronary that were not inserted
