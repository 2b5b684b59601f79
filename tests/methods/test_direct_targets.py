"""Training targets of the direct method: per-slice pseudo-Agatston scores per artery."""

from __future__ import annotations

import numpy as np
import pytest

from cacflow.calcium import artery_scores, increment_factor, score_lesions
from cacflow.conventions import Label, MinLesion, ScoringConventions
from cacflow.methods.direct.targets import (
    CODE_STRIDE,
    code_targets,
    slice_targets,
    weight_codes,
)
from cacflow.volume import Geometry

NO_MIN_AREA = ScoringConventions(min_lesion=MinLesion(area_mm2=0.0))
"""The engine without the 1 mm² minimum area: these hand phantoms have sub-mm² lesions."""

GEOM = Geometry((0.0, 0.0, 0.0), (0.5, 0.5, 1.5), slice_thickness_mm=3.0)


def _hand_case() -> tuple[np.ndarray, np.ndarray]:
    """4 slices of 8 x 8; lesions written voxel by voxel (HU, label)."""
    hu = np.full((4, 8, 8), 40.0, dtype=np.float32)
    lab = np.zeros(hu.shape, dtype=np.uint8)

    def put(z, y, x, value, label):
        hu[z, y, x] = value
        lab[z, y, x] = label

    # LAD lesion over slices 0-1: slice 0 voxels 150 and 250 HU (peak 250 -> weight 2),
    # slice 1 one voxel of 450 HU (weight 4) and one labelled voxel below 130 HU (not calcium)
    put(0, 1, 1, 150.0, Label.LAD)
    put(0, 1, 2, 250.0, Label.LAD)
    put(1, 1, 2, 450.0, Label.LAD)
    put(1, 1, 3, 100.0, Label.LAD)
    # LM lesion (counts to LAD), slice 2: three voxels, peak 330 -> weight 3
    for x, v in ((5, 140.0), (6, 330.0), (7, 200.0)):
        put(2, 6, x, v, Label.LM)
    # RCA lesion, slice 3: two voxels, peak 199.9 -> weight 1
    put(3, 0, 0, 131.0, Label.RCA)
    put(3, 0, 1, 199.9, Label.RCA)
    # aortic valve calcium (not coronary) and unlabelled calcium: no target
    put(2, 0, 0, 500.0, Label.AV)
    hu[3, 7, 7] = 900.0
    return hu, lab


def test_hand_computed_slice_targets() -> None:
    hu, lab = _hand_case()
    t = slice_targets(hu, lab, GEOM, NO_MIN_AREA)
    expected = np.array(
        [
            [2 * 2, 0, 0],  # 2 voxels x weight 2
            [1 * 4, 0, 0],  # 1 calcium voxel x weight 4
            [3 * 3, 0, 0],  # LM -> LAD: 3 voxels x weight 3
            [0, 0, 2 * 1],  # RCA: 2 voxels x weight 1
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(t, expected)


def test_codes_hold_artery_and_weight() -> None:
    hu, lab = _hand_case()
    codes = weight_codes(hu, lab, GEOM, NO_MIN_AREA)
    assert codes[0, 1, 2] == 1 * CODE_STRIDE + 2  # LAD (index 0), weight 2
    assert codes[0, 1, 1] == 1 * CODE_STRIDE + 2  # weight of the lesion's slice peak
    assert codes[3, 0, 0] == 3 * CODE_STRIDE + 1  # RCA (index 2), weight 1
    assert codes[1, 1, 3] == 0 and codes[2, 0, 0] == 0 and codes[3, 7, 7] == 0
    # a crop of slice 0 holding only the 150 HU voxel still carries weight 2
    np.testing.assert_array_equal(code_targets(codes[0, 0:2, 0:2]), [2.0, 0.0, 0.0])


def test_min_lesion_size_follows_the_engine() -> None:
    hu, lab = _hand_case()
    conv = ScoringConventions(min_lesion=MinLesion(voxels=3, area_mm2=0.0))
    t = slice_targets(hu, lab, GEOM, conv)
    # LAD lesion over slices 0-1 has 3 calcium voxels (kept); RCA has 2 (dropped); LM 3 (kept)
    np.testing.assert_array_equal(t[:, 2], 0.0)
    np.testing.assert_array_equal(t[:, 0], [4.0, 4.0, 9.0, 0.0])


@pytest.mark.parametrize("connectivity", [26, 6, 8])
def test_targets_sum_to_the_engine_scores(connectivity: int) -> None:
    """sum(targets) x pixel area x increment factor == the engine's Agatston per artery."""
    rng = np.random.default_rng(3)
    hu = rng.normal(40.0, 60.0, size=(12, 40, 40)).astype(np.float32)
    lab = np.zeros(hu.shape, dtype=np.uint8)
    for label in (Label.LAD, Label.LCX, Label.RCA, Label.LM, Label.MV):
        for _ in range(3):
            z, y, x = rng.integers(0, 10), rng.integers(0, 36), rng.integers(0, 36)
            hu[z : z + 2, y : y + 4, x : x + 3] = rng.uniform(120.0, 700.0, size=(2, 4, 3))
            lab[z : z + 2, y : y + 4, x : x + 3] = label
    conv = ScoringConventions(connectivity=connectivity)
    t = slice_targets(hu, lab, GEOM, conv)
    ours = t.sum(axis=0) * GEOM.pixel_area_mm2 * increment_factor(GEOM, conv)
    ref = artery_scores(score_lesions(hu, GEOM, lab, conv)).set_index("artery")["agatston"]
    assert ref["total"] > 0
    np.testing.assert_allclose(ours, ref[["LAD", "LCX", "RCA"]].to_numpy(), rtol=1e-6)


def test_no_labels_no_targets() -> None:
    hu = np.full((3, 5, 5), 600.0, dtype=np.float32)
    lab = np.zeros(hu.shape, dtype=np.uint8)
    assert not weight_codes(hu, lab, GEOM, NO_MIN_AREA).any()
    with pytest.raises(ValueError, match="differ in shape"):
        weight_codes(hu, lab[:2], GEOM, NO_MIN_AREA)
