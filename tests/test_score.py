"""Series and batch scoring (cacflow.score) on volumes written to disk."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cacflow.conventions import Label, MinLesion, ScoringConventions
from cacflow.reference import reference_labels
from cacflow.score import score_batch, score_volume, write_labels
from cacflow.tables import LESIONS_COLUMNS, SCORES_COLUMNS
from cacflow.volume import Geometry, Volume, read_volume, write_volume

NO_MIN_AREA = ScoringConventions(min_lesion=MinLesion(area_mm2=0.0))
"""The engine without the 1 mm² minimum area: these hand phantoms have sub-mm² lesions."""

# 0.5 mm pixels, 3 mm slices every 1.5 mm: pixel 0.25 mm^2, voxel 0.375 mm^3, factor 0.5
GEOM = Geometry(origin=(-30.0, -40.0, -200.0), spacing=(0.5, 0.5, 1.5), slice_thickness_mm=3.0)
CONV = NO_MIN_AREA


def phantom() -> tuple[Volume, np.ndarray]:
    """LAD lesion: 2 slices x 4 pixels of 500 HU; RCA lesion: 1 slice x 2 pixels of 250 HU;
    AV lesion: 1 pixel 900 HU; bone (unlabelled) 700 HU."""
    hu = np.full((6, 20, 20), 30, dtype=np.int16)
    lab = np.zeros(hu.shape, dtype=np.uint8)
    hu[2:4, 5:7, 5:7] = 500
    lab[2:4, 5:7, 5:7] = Label.LAD
    hu[1, 12, 3:5] = 250
    lab[1, 12, 3:5] = Label.RCA
    hu[4, 15, 15] = 900
    lab[4, 15, 15] = Label.AV
    hu[:, 18:, :] = 700
    return Volume(hu, GEOM, {"series_uid": "1.2.3"}), lab


# LAD: 2 slices x 1 mm^2 x 4 = 8, x 0.5 = 4; volume 8 x 0.375 = 3; mass 0.001 x 4000 x 0.375
# RCA: 0.5 mm^2 x 2 = 1, x 0.5 = 0.5; volume 0.75; mass 0.001 x 500 x 0.375
EXPECTED = {
    "LAD": (4.0, 3.0, 1.5, 1),
    "LCX": (0.0, 0.0, 0.0, 0),
    "RCA": (0.5, 0.75, 0.1875, 1),
    "total": (4.5, 3.75, 1.6875, 2),
    "TAC": (0.0, 0.0, 0.0, 0),
    "AV": (0.0, 0.0, 0.0, 0),
    "MV": (0.0, 0.0, 0.0, 0),
}
# with the phantom's AV label: 0.25 mm^2 x 4 x 0.5 = 0.5; volume 0.375; mass
# 0.001 x 900 x 0.375; not in total
WITH_AV = EXPECTED | {"AV": (0.5, 0.375, 0.3375, 1)}


def check_scores(scores: pd.DataFrame, expected: dict[str, tuple[float, ...]]) -> None:
    assert scores["artery"].tolist() == ["LAD", "LCX", "RCA", "total", "TAC", "AV", "MV"]
    got = scores.set_index("artery")[["agatston", "volume_mm3", "mass_mg", "n_lesions"]]
    for artery, values in expected.items():
        assert got.loc[artery].tolist() == pytest.approx(list(values))


def test_score_volume_tables() -> None:
    vol, lab = phantom()
    scores, lesions = score_volume(
        vol, lab, CONV, series_uid="1.2.3", method="reference", patient_id="p7"
    )
    assert list(scores.columns) == list(SCORES_COLUMNS)
    assert list(lesions.columns) == list(LESIONS_COLUMNS)
    check_scores(scores, WITH_AV)
    assert set(scores["series_uid"]) == {"1.2.3"} and set(scores["patient_id"]) == {"p7"}
    assert set(scores["method"]) == {"reference"}
    assert lesions["label"].tolist() == ["LAD", "RCA", "AV"]
    # AV (non-coronary): its own row and lesion, never in total
    av = lesions.iloc[2]
    assert (av["artery"], av["agatston"], av["peak_hu"]) == ("AV", 0.5, 900)
    assert (av["x"], av["y"], av["z"]) == (-30.0 + 7.5, -40.0 + 7.5, -200.0 + 6.0)


def test_score_volume_refuses_another_grid() -> None:
    vol, lab = phantom()
    with pytest.raises(ValueError, match="1.2.3"):
        score_volume(vol, lab[:-1], CONV, series_uid="1.2.3", method="m", patient_id=None)


def test_reference_mask_path_scores_like_the_hand_values() -> None:
    vol, _ = phantom()
    pts = pd.DataFrame(
        {
            "x": [-30.0 + 2.5, -30.0 + 1.5],  # LAD blob corner voxel; RCA lesion column
            "y": [-40.0 + 2.5, -40.0 + 6.5],  # RCA point 0.5 mm beside its lesion
            "z": [-200.0 + 3.0, -200.0 + 1.5],
            "label": ["LM", "RCA"],
        }
    )
    mask, rep = reference_labels(vol, pts, CONV)
    assert rep["matched"].tolist() == [True, True]
    assert rep["snapped_distance_mm"].tolist() == pytest.approx([0.0, 0.5])
    scores, lesions = score_volume(
        vol, mask, CONV, series_uid="1.2.3", method="reference", patient_id=None
    )
    check_scores(scores, EXPECTED)  # LM counts to LAD; bone never labelled
    assert lesions["label"].tolist() == ["RCA", "LM"]


def write_series(images: Path, labels: Path | None, uid: str, vol: Volume, lab: np.ndarray) -> None:
    write_volume(replace(vol, meta={"series_uid": uid}), images / f"{uid}.nii")
    if labels is not None:
        write_labels(lab, vol, labels / f"{uid}.nii")


def test_score_batch(tmp_path: Path) -> None:
    images, labels = tmp_path / "img", tmp_path / "lab"
    vol, lab = phantom()
    write_series(images, labels, "a", vol, lab)
    write_series(images, None, "b", vol, lab)  # no mask: zeros
    write_series(images, labels, "c", vol, lab)  # excluded: not scored
    scans = pd.DataFrame(
        {
            "series_uid": ["a", "b", "c"],
            "patient_id": ["p1", None, "p3"],
            "status": ["ok", "ok", "excluded"],
        }
    )
    scores, lesions = score_batch(images, labels, CONV, method="m1", scans=scans)
    assert list(scores.columns) == list(SCORES_COLUMNS)
    assert scores["series_uid"].tolist() == ["a"] * 7 + ["b"] * 7
    check_scores(scores[scores["series_uid"] == "a"], WITH_AV)
    zeros = dict.fromkeys(EXPECTED, (0.0, 0.0, 0.0, 0))
    check_scores(scores[scores["series_uid"] == "b"], zeros)
    assert scores["patient_id"].tolist() == ["p1"] * 7 + [None] * 7
    assert set(scores["method"]) == {"m1"} and set(lesions["method"]) == {"m1"}
    assert lesions["series_uid"].tolist() == ["a"] * 3


def test_score_batch_refuses_an_ok_series_without_image(tmp_path: Path) -> None:
    images, labels = tmp_path / "img", tmp_path / "lab"
    vol, lab = phantom()
    write_series(images, labels, "a", vol, lab)
    scans = pd.DataFrame({"series_uid": ["a", "d"], "patient_id": ["p", "q"], "status": "ok"})
    with pytest.raises(FileNotFoundError, match="d.nii"):
        score_batch(images, labels, CONV, method="m1", scans=scans)


def test_score_batch_refuses_a_mask_on_another_grid(tmp_path: Path) -> None:
    images, labels = tmp_path / "img", tmp_path / "lab"
    vol, lab = phantom()
    write_series(images, None, "a", vol, lab)
    shifted = replace(vol, geometry=replace(GEOM, origin=(-30.0, -40.0, -198.5)))
    write_labels(lab, shifted, labels / "a.nii")
    scans = pd.DataFrame({"series_uid": ["a"], "patient_id": ["p"], "status": ["ok"]})
    with pytest.raises(ValueError, match="grid"):
        score_batch(images, labels, CONV, method="m", scans=scans)


def test_score_batch_with_nothing_to_score(tmp_path: Path) -> None:
    scans = pd.DataFrame({"series_uid": ["a"], "patient_id": ["p"], "status": ["excluded"]})
    scores, lesions = score_batch(tmp_path, tmp_path, CONV, method="m", scans=scans)
    assert scores.empty and lesions.empty
    assert list(scores.columns) == list(SCORES_COLUMNS)


def test_write_labels_round_trip_without_identifiers(tmp_path: Path) -> None:
    vol, lab = phantom()
    like = replace(vol, meta={"series_uid": "1.2.3", "patient_name": "DOE^JANE"})
    path = tmp_path / "m.nii"
    write_labels(lab, like, path)
    back = read_volume(path)
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, lab)
    assert np.allclose(back.geometry.origin, GEOM.origin)
    assert np.allclose(back.geometry.spacing, GEOM.spacing)
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["series_uid"] == "1.2.3" and "patient_name" not in side
    assert side["labels"]["LM"] == 4
    with pytest.raises(ValueError, match="shape"):
        write_labels(lab[1:], vol, tmp_path / "x.nii")
