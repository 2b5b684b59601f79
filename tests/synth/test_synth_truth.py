"""Exact per-lesion and per-artery scores (cacflow.synth.truth), hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from cacflow.synth.truth import LesionTruth, artery_rows, density_weight, lesion_truth


@pytest.mark.parametrize(
    ("hu", "weight"),
    [(129, 0), (130, 1), (199, 1), (200, 2), (299, 2), (300, 3), (399, 3), (400, 4), (1500, 4)],
)
def test_density_weight_bands_closed_on_the_left(hu: int, weight: int) -> None:
    assert density_weight(hu) == weight


def test_lesion_truth_by_hand() -> None:
    # slice 0: 150, 250 -> peak 250, weight 2, area 2 x 0.5 mm^2 -> 2.0
    # slice 1: 130       -> weight 1, area 0.5 -> 0.5
    # slice 3: 400, 131, 199 -> weight 4, area 1.5 -> 6.0
    # sum 8.5 x (1.5 / 3) = 4.25; volume 6 x 0.5 x 1.5 = 4.5; mass 0.001 x 1260 x 0.75
    k = np.array([0, 0, 1, 3, 3, 3])
    hu = np.array([150, 250, 130, 400, 131, 199])
    t = lesion_truth(k, hu, pixel_area_mm2=0.5, increment_mm=1.5)
    assert t.agatston == pytest.approx(4.25)
    assert t.volume_mm3 == pytest.approx(4.5)
    assert t.mass_mg == pytest.approx(0.945)
    assert (t.peak_hu, t.n_voxels) == (400, 6)


def test_lesion_truth_weight_is_per_slice_peak() -> None:
    # One 400 HU voxel must not raise the weight of the other slice (130 HU, weight 1).
    t = lesion_truth(np.array([0, 1]), np.array([400, 130]), 1.0, 3.0)
    assert t.agatston == pytest.approx(4.0 + 1.0)


def _t(a: float, v: float, m: float) -> LesionTruth:
    return LesionTruth(agatston=a, volume_mm3=v, mass_mg=m, peak_hu=300, n_voxels=3)


def test_artery_rows_lm_counts_to_lad_and_tac_nowhere() -> None:
    rows = {
        r["artery"]: r
        for r in artery_rows(
            [
                ("LM", _t(1.0, 2.0, 3.0)),
                ("LAD", _t(10.0, 20.0, 30.0)),
                ("RCA", _t(100.0, 200.0, 300.0)),
                ("TAC", _t(1000.0, 2000.0, 3000.0)),
                ("AV", _t(5000.0, 1.0, 1.0)),
            ]
        )
    }
    assert list(rows) == ["LAD", "LCX", "RCA", "total"]
    assert (rows["LAD"]["agatston"], rows["LAD"]["n_lesions"]) == (11.0, 2)
    assert (rows["LCX"]["agatston"], rows["LCX"]["n_lesions"]) == (0.0, 0)
    assert rows["RCA"]["mass_mg"] == 300.0
    assert rows["total"]["agatston"] == 111.0
    assert rows["total"]["volume_mm3"] == 222.0
    assert rows["total"]["n_lesions"] == 3


def test_artery_rows_empty_scan_has_four_zero_rows() -> None:
    rows = artery_rows([])
    assert [r["artery"] for r in rows] == ["LAD", "LCX", "RCA", "total"]
    assert all(r["agatston"] == 0 and r["n_lesions"] == 0 for r in rows)
