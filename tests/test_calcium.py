"""The scoring engine (cacflow.calcium): every convention on analytic phantoms.

Expected values are computed by hand in each test (comments show the arithmetic), or by
an independent implementation (scipy.ndimage) written here for the random phantom.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from cacflow.calcium import (
    LESION_COLUMNS,
    agatston_weight,
    artery_scores,
    increment_factor,
    label_components,
    score_lesions,
    without_metal,
)
from cacflow.conventions import (
    METAL_MIN_HU,
    IncrementFactor,
    Label,
    MinLesion,
    ScoringConventions,
)
from cacflow.volume import Geometry

NO_MIN_AREA = ScoringConventions(min_lesion=MinLesion(area_mm2=0.0))
"""The engine without the 1 mm² minimum area: these hand phantoms have sub-mm² lesions."""

# 1 mm pixels, 3 mm slices every 3 mm: increment factor 1, pixel area 1 mm^2, voxel 3 mm^3.
UNIT = Geometry(origin=(0.0, 0.0, 0.0), spacing=(1.0, 1.0, 3.0), slice_thickness_mm=3.0)
BG_HU = 0.0


def phantom(shape: tuple[int, int, int], voxels: dict[tuple[int, int, int], float]) -> np.ndarray:
    """An HU array (z, y, x) of background 0 HU with the given voxel values."""
    hu = np.full(shape, BG_HU)
    for zyx, v in voxels.items():
        hu[zyx] = v
    return hu


def labelled(hu: np.ndarray, label: Label = Label.LAD) -> np.ndarray:
    """A label mask covering every voxel > background with one label."""
    return np.where(hu > BG_HU, np.uint8(label), np.uint8(0)).astype(np.uint8)


def total(df: pd.DataFrame, col: str = "agatston") -> float:
    return float(artery_scores(df).set_index("artery").loc["total", col])


# --- Agatston weights ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hu", "weight"),
    [
        (129, 0),
        (129.99, 0),
        (130, 1),
        (199, 1),
        (199.99, 1),
        (200, 2),
        (299, 2),
        (300, 3),
        (399, 3),
        (400, 4),
        (3000, 4),
        (-1000, 0),
    ],
)
def test_weight_bands_closed_on_the_left(hu: float, weight: int) -> None:
    w = agatston_weight(hu)
    assert w == weight and isinstance(w, int)


def test_weight_of_an_array_and_custom_edges() -> None:
    got = agatston_weight(np.array([[129, 130], [250, 450]]))
    np.testing.assert_array_equal(got, [[0, 1], [2, 4]])
    # low-kV style edges: bands [100, 150), [150, 250), [250, 350), >= 350
    np.testing.assert_array_equal(
        agatston_weight(np.array([99, 100, 249, 250, 350]), (100, 150, 250, 350)), [0, 1, 2, 3, 4]
    )
    with pytest.raises(ValueError, match="increase"):
        agatston_weight(200, (130, 300, 200, 400))


@pytest.mark.parametrize(
    ("peak", "expected"),
    # one voxel of 1 mm^2 in one 3 mm slice: Agatston = 1 mm^2 x weight x 1
    [(129, None), (130, 1), (199, 1), (200, 2), (299, 2), (300, 3), (399, 3), (400, 4)],
)
def test_weight_band_boundaries_in_a_score(peak: float, expected: int | None) -> None:
    hu = phantom((3, 5, 5), {(1, 2, 2): peak})
    lab = labelled(np.where(hu != BG_HU, 1.0, BG_HU))
    les = score_lesions(hu, UNIT, lab, NO_MIN_AREA)
    if expected is None:
        assert les.empty
    else:
        assert les["agatston"].tolist() == [expected]
        assert les["peak_hu"].tolist() == [peak]


def test_weight_uses_the_peak_of_each_slice() -> None:
    # slice 0: 3 voxels, peak 250 -> 3 x 2 = 6; slice 1: 2 voxels, peak 410 -> 2 x 4 = 8;
    # slice 2: 1 voxel 140 -> 1. One 3D lesion, Agatston 15 (not 6 x 4 = 24).
    vox = {
        (0, 2, 1): 140,
        (0, 2, 2): 250,
        (0, 2, 3): 180,
        (1, 2, 2): 410,
        (1, 2, 3): 135,
        (2, 2, 2): 140,
    }
    hu = phantom((3, 5, 5), vox)
    les = score_lesions(hu, UNIT, labelled(hu), NO_MIN_AREA)
    assert len(les) == 1
    assert les.loc[0, "agatston"] == pytest.approx(15.0)
    assert les.loc[0, "peak_hu"] == 410


# --- threshold ---------------------------------------------------------------------------


def test_threshold_decides_what_is_calcium() -> None:
    # three voxels in a row, 120, 125, 135 HU, in one slice; UNIT voxel = 3 mm^3.
    hu = phantom((1, 3, 5), {(0, 1, 1): 120, (0, 1, 2): 125, (0, 1, 3): 135})
    lab = labelled(hu)
    at130 = score_lesions(hu, UNIT, lab, NO_MIN_AREA)
    # only 135 HU: area 1 mm^2 x weight 1 = 1; volume 3 mm^3
    assert at130[["agatston", "volume_mm3", "n_voxels"]].values.tolist() == [[1.0, 3.0, 1]]
    at120 = score_lesions(hu, UNIT, lab, ScoringConventions(threshold_hu=120))
    # all three, one lesion: area 3 mm^2 x weight(peak 135) 1 = 3; volume 9 mm^3.
    # Voxels between the threshold and the first weight edge count in volume and mass.
    assert at120[["agatston", "volume_mm3", "n_voxels"]].values.tolist() == [[3.0, 9.0, 3]]
    assert at120.loc[0, "mass_mg"] == pytest.approx(0.001 * (120 + 125 + 135) * 3.0)


def test_labelled_voxels_below_threshold_are_not_scored() -> None:
    hu = phantom((1, 4, 4), {(0, 1, 1): 300, (0, 2, 2): 100})
    lab = np.ones(hu.shape, dtype=np.uint8)  # the whole image labelled LAD
    les = score_lesions(hu, UNIT, lab, NO_MIN_AREA)
    assert les["n_voxels"].tolist() == [1] and les["agatston"].tolist() == [3.0]


# --- connectivity ------------------------------------------------------------------------

# A and B touch along an in-plane diagonal (slice 0); C touches B only at a corner
# (one slice up, one row, one column); D is C's in-plane face neighbour; E sits on C in the
# next slice (face neighbour across slices).
CONN_VOXELS = {
    (0, 0, 0): 150,  # A, weight 1
    (0, 1, 1): 450,  # B, weight 4
    (1, 2, 2): 250,  # C, weight 2
    (1, 2, 3): 350,  # D, weight 3
    (2, 2, 2): 180,  # E, weight 1
}


@pytest.mark.parametrize(
    ("connectivity", "n_lesions", "agatston"),
    [
        # 6: {A} 1x1 + {B} 1x4 + {C,D,E}: slice 1 2x3 + slice 2 1x1 = 1 + 4 + 7 = 12
        (6, 3, 12.0),
        # 18: {A,B}: 2 mm^2 x w(450)=4 -> 8, + {C,D,E} 7 = 15
        (18, 2, 15.0),
        # 26: one lesion: slice 0 2x4 + slice 1 2x3 + slice 2 1x1 = 15
        (26, 1, 15.0),
        # 2D 4: {A} 1 + {B} 4 + {C,D} 2x3=6 + {E} 1 = 12
        (4, 4, 12.0),
        # 2D 8: {A,B} 8 + {C,D} 6 + {E} 1 = 15
        (8, 3, 15.0),
    ],
)
def test_connectivity_6_18_26_and_2d(connectivity: int, n_lesions: int, agatston: float) -> None:
    hu = phantom((3, 4, 5), CONN_VOXELS)
    les = score_lesions(hu, UNIT, labelled(hu), ScoringConventions(connectivity=connectivity))
    assert len(les) == n_lesions
    assert les["agatston"].sum() == pytest.approx(agatston)
    # volume and mass do not depend on how voxels are grouped: 5 voxels x 3 mm^3
    assert les["volume_mm3"].sum() == pytest.approx(15.0)
    assert les["mass_mg"].sum() == pytest.approx(0.001 * sum(CONN_VOXELS.values()) * 3.0)


def test_2d_lesions_stay_in_one_slice() -> None:
    hu = phantom((3, 4, 5), CONN_VOXELS)
    cc = label_components(hu > 0, 8)
    for c in np.unique(cc[cc > 0]):
        assert np.unique(np.nonzero(cc == c)[0]).size == 1
    assert np.unique(cc[cc > 0]).size == 3


def test_unsupported_connectivity_is_refused() -> None:
    hu = phantom((1, 3, 3), {(0, 1, 1): 300})
    with pytest.raises(ValueError, match="connectivity"):
        score_lesions(hu, UNIT, labelled(hu), ScoringConventions(connectivity=10))


@pytest.mark.parametrize("connectivity", [4, 8, 6, 18, 26])
def test_touching_voxels_of_different_labels_are_separate_lesions(connectivity: int) -> None:
    hu = phantom((1, 3, 4), {(0, 1, 1): 300, (0, 1, 2): 300})
    lab = labelled(hu)
    lab[0, 1, 2] = Label.LCX
    les = score_lesions(hu, UNIT, lab, ScoringConventions(connectivity=connectivity))
    assert les["label"].tolist() == ["LAD", "LCX"]
    assert les["agatston"].tolist() == [3.0, 3.0]


# --- minimum lesion size -----------------------------------------------------------------

# 1 x 1 mm pixels, increment 1.5 mm (voxel 1.5 mm^3), thickness 3 mm.
FINE = Geometry(origin=(0.0, 0.0, 0.0), spacing=(1.0, 1.0, 1.5), slice_thickness_mm=3.0)
SIZE_VOXELS = {
    # L1: 2 voxels side by side in slice 1 -> max area 2 mm^2, volume 3 mm^3
    (1, 1, 1): 300,
    (1, 1, 2): 300,
    # L2: 3 voxels stacked over slices 0-2 -> max area 1 mm^2, volume 4.5 mm^3
    (0, 5, 5): 300,
    (1, 5, 5): 300,
    (2, 5, 5): 300,
    # L3: a single voxel -> area 1 mm^2, volume 1.5 mm^3
    (1, 8, 1): 300,
}


@pytest.mark.parametrize(
    ("min_lesion", "connectivity", "kept_sizes"),
    [
        (MinLesion(), 26, [1, 2, 3]),
        (MinLesion(voxels=3), 26, [3]),  # only L2 has >= 3 voxels
        (MinLesion(voxels=2), 26, [2, 3]),
        (MinLesion(area_mm2=1.5), 26, [2]),  # only L1 reaches 2 mm^2 in a slice
        (MinLesion(area_mm2=2.0), 26, [2]),  # bounds are inclusive
        (MinLesion(volume_mm3=3.0), 26, [2, 3]),  # L1 3.0 (inclusive) and L2 4.5
        (MinLesion(volume_mm3=3.1), 26, [3]),
        (MinLesion(voxels=3, area_mm2=1.5), 26, []),  # every bound must hold
        # 2D: L2 becomes three 1-voxel lesions, each below 2 voxels
        (MinLesion(voxels=2), 8, [2]),
    ],
)
def test_min_lesion_size_per_lesion(
    min_lesion: MinLesion, connectivity: int, kept_sizes: list[int]
) -> None:
    hu = phantom((3, 10, 10), SIZE_VOXELS)
    conv = ScoringConventions(min_lesion=min_lesion, connectivity=connectivity)
    les = score_lesions(hu, FINE, labelled(hu), conv)
    assert sorted(les["n_voxels"].tolist()) == kept_sizes


def test_min_area_on_anisotropic_pixels() -> None:
    # 0.7 x 0.7 mm pixels: 2 pixels = 0.98 mm^2 < 1 mm^2, 3 pixels = 1.47 mm^2 >= 1
    g = Geometry((0.0, 0.0, 0.0), (0.7, 0.7, 3.0), slice_thickness_mm=3.0)
    hu = phantom((1, 6, 6), {(0, 1, 1): 300, (0, 1, 2): 300, (0, 4, 1): 300, (0, 4, 2): 300})
    hu[0, 4, 3] = 300
    les = score_lesions(hu, g, labelled(hu), ScoringConventions(min_lesion=MinLesion(area_mm2=1)))
    assert les["n_voxels"].tolist() == [3]
    assert les.loc[0, "agatston"] == pytest.approx(3 * 0.49 * 3)


# --- increment factor, volume, mass --------------------------------------------------------


@pytest.mark.parametrize(
    ("thickness", "increment", "mode", "factor"),
    [
        (3.0, 1.5, IncrementFactor.INCREMENT_OVER_3, 0.5),
        (3.0, 1.5, IncrementFactor.INCREMENT_OVER_THICKNESS, 0.5),
        (3.0, 3.0, IncrementFactor.INCREMENT_OVER_3, 1.0),
        (2.5, 1.25, IncrementFactor.INCREMENT_OVER_3, 1.25 / 3.0),
        (2.5, 1.25, IncrementFactor.INCREMENT_OVER_THICKNESS, 0.5),
        (1.0, 1.0, IncrementFactor.INCREMENT_OVER_3, 1.0 / 3.0),
        (1.0, 1.0, IncrementFactor.INCREMENT_OVER_THICKNESS, 1.0),
    ],
)
def test_increment_factor_modes(
    thickness: float, increment: float, mode: IncrementFactor, factor: float
) -> None:
    g = Geometry((0.0, 0.0, 0.0), (0.5, 0.5, increment), slice_thickness_mm=thickness)
    conv = ScoringConventions(increment_factor=mode)
    assert increment_factor(g, conv) == pytest.approx(factor)
    # 4 slices x 4 pixels of 0.25 mm^2 at 320 HU (weight 3): 4 x 1 mm^2 x 3 = 12, x factor
    hu = np.zeros((6, 6, 6))
    hu[1:5, 2:4, 2:4] = 320
    les = score_lesions(hu, g, labelled(hu), conv)
    assert les["agatston"].tolist() == pytest.approx([12.0 * factor])
    # volume uses the increment as z size: 16 voxels x 0.25 mm^2 x increment
    assert les["volume_mm3"].tolist() == pytest.approx([16 * 0.25 * increment])


def test_increment_over_thickness_needs_a_thickness() -> None:
    g = Geometry((0.0, 0.0, 0.0), (0.5, 0.5, 1.5))  # thickness unknown (0)
    conv = ScoringConventions(increment_factor=IncrementFactor.INCREMENT_OVER_THICKNESS)
    with pytest.raises(ValueError, match="thickness"):
        increment_factor(g, conv)


@pytest.mark.parametrize(("calibration", "mass"), [(0.001, 0.375), (0.0008, 0.3)])
def test_mass_calibration(calibration: float, mass: float) -> None:
    # voxels 200 + 300 + 500 = 1000 HU; voxel 0.5 x 0.5 x 1.5 = 0.375 mm^3
    g = Geometry((0.0, 0.0, 0.0), (0.5, 0.5, 1.5), slice_thickness_mm=3.0)
    hu = phantom((3, 4, 4), {(1, 1, 1): 200, (1, 1, 2): 300, (1, 2, 2): 500})
    conv = replace(NO_MIN_AREA, mass_calibration=calibration)  # 0.75 mm^2 lesion
    les = score_lesions(hu, g, labelled(hu), conv)
    assert les["mass_mg"].tolist() == pytest.approx([mass])
    assert les["volume_mm3"].tolist() == pytest.approx([3 * 0.375])
    # Agatston: one slice, 3 x 0.25 mm^2 x w(500)=4 = 3, x 1.5/3
    assert les["agatston"].tolist() == pytest.approx([1.5])


# --- arteries ----------------------------------------------------------------------------


def _artery_phantom() -> tuple[np.ndarray, np.ndarray]:
    """LAD 2 voxels 250 HU, LM 1 voxel 450, LCX 1 voxel 150, RCA none, AV 3 voxels 600."""
    hu = np.zeros((2, 10, 10))
    lab = np.zeros(hu.shape, dtype=np.uint8)
    for zyx, v, label in [
        ((0, 1, 1), 250, Label.LAD),
        ((0, 1, 2), 250, Label.LAD),
        ((1, 5, 5), 450, Label.LM),
        ((0, 8, 8), 150, Label.LCX),
        ((0, 3, 7), 600, Label.AV),
        ((0, 3, 8), 600, Label.AV),
        ((1, 3, 8), 600, Label.AV),
    ]:
        hu[zyx] = v
        lab[zyx] = label
    return hu, lab


def test_lm_counts_to_lad_and_valves_stay_out_of_totals() -> None:
    hu, lab = _artery_phantom()
    les = score_lesions(hu, UNIT, lab, NO_MIN_AREA)
    assert list(les.columns) == list(LESION_COLUMNS)
    # sorted by Label value (LAD 1, LCX 2, LM 4, AV 5)
    assert les["label"].tolist() == ["LAD", "LCX", "LM", "AV"]
    assert les["artery"].tolist() == ["LAD", "LCX", "LAD", "AV"]
    assert les["coronary"].tolist() == [True, True, True, False]
    # AV: slice 0 2 mm^2 x 4 = 8, slice 1 1 x 4 = 4 -> 12; scored, but not in totals
    assert les.loc[3, "agatston"] == 12.0
    art = artery_scores(les).set_index("artery")
    # LAD = LAD lesion 2 x 2 = 4 + LM lesion 1 x 4 = 4 -> 8; LCX 1 x 1 = 1
    assert art["agatston"].to_dict() == {"LAD": 8.0, "LCX": 1.0, "RCA": 0.0, "total": 9.0}
    assert art["n_lesions"].to_dict() == {"LAD": 2, "LCX": 1, "RCA": 0, "total": 3}
    assert art.loc["total", "volume_mm3"] == 4 * 3.0
    assert art.loc["total", "mass_mg"] == pytest.approx(0.001 * (250 + 250 + 450 + 150) * 3.0)


def test_artery_groups_are_configurable() -> None:
    hu, lab = _artery_phantom()
    groups = {"LAD": ("LAD",), "LCX": ("LCX", "LM"), "RCA": ("RCA",)}
    les = score_lesions(hu, UNIT, lab, ScoringConventions(artery_groups=groups))
    art = artery_scores(les).set_index("artery")["agatston"].to_dict()
    assert art == {"LAD": 4.0, "LCX": 5.0, "RCA": 0.0, "total": 9.0}
    with pytest.raises(ValueError, match="artery_groups"):
        score_lesions(hu, UNIT, lab, ScoringConventions(artery_groups={"LM": ("LM",)}))


def test_no_lesions_gives_four_zero_rows() -> None:
    hu = np.full((2, 4, 4), 500.0)  # calcium everywhere, nothing labelled
    les = score_lesions(hu, UNIT, np.zeros(hu.shape, np.uint8), NO_MIN_AREA)
    assert les.empty and list(les.columns) == list(LESION_COLUMNS)
    art = artery_scores(les)
    assert art["artery"].tolist() == ["LAD", "LCX", "RCA", "total"]
    assert (art[["agatston", "volume_mm3", "mass_mg", "n_lesions"]].to_numpy() == 0).all()


def test_unknown_label_values_and_shapes_are_refused() -> None:
    hu = phantom((1, 3, 3), {(0, 1, 1): 300})
    lab = labelled(hu)
    lab[0, 1, 1] = 9
    with pytest.raises(ValueError, match="not cacflow Labels"):
        score_lesions(hu, UNIT, lab, NO_MIN_AREA)
    with pytest.raises(ValueError, match="shape"):
        score_lesions(hu, UNIT, lab[:, :2], NO_MIN_AREA)


# --- positions ---------------------------------------------------------------------------


def test_position_is_the_peak_voxel_in_patient_mm() -> None:
    # rows run along -y (anterior), origin offset; peak voxel at index (z, y, x) = (2, 3, 4)
    g = Geometry(
        origin=(-10.0, 20.0, -300.0),
        spacing=(0.5, 0.8, 1.5),
        direction=(1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0),
        slice_thickness_mm=3.0,
    )
    hu = phantom((4, 6, 6), {(2, 3, 4): 700, (2, 3, 3): 300, (1, 3, 4): 700})
    les = score_lesions(hu, g, labelled(hu), NO_MIN_AREA)
    # two voxels share the peak 700: the first in (z, y, x) order, (1, 3, 4), is reported
    x, y, z = les.loc[0, ["x", "y", "z"]]
    assert (x, y, z) == pytest.approx((-10.0 + 4 * 0.5, 20.0 - 3 * 0.8, -300.0 + 1 * 1.5))


def test_integer_and_float_images_score_alike() -> None:
    hu, lab = _artery_phantom()
    a = score_lesions(hu, UNIT, lab, NO_MIN_AREA)
    b = score_lesions(hu.astype(np.int16), UNIT, lab, NO_MIN_AREA)
    pd.testing.assert_frame_equal(a, b)


# --- an independent implementation on a random phantom -------------------------------------


def _independent_agatston(hu: np.ndarray, lab: np.ndarray, g: Geometry) -> dict[str, float]:
    """Per-artery Agatston via scipy.ndimage.label and explicit loops (26-connected)."""
    structure = np.ones((3, 3, 3), dtype=bool)
    out = {"LAD": 0.0, "LCX": 0.0, "RCA": 0.0}
    for value, artery in [(1, "LAD"), (4, "LAD"), (2, "LCX"), (3, "RCA")]:
        comps, n = ndimage.label((lab == value) & (hu >= 130), structure=structure)
        for c in range(1, n + 1):
            for k in range(hu.shape[0]):
                in_slice = comps[k] == c
                if in_slice.any():
                    peak = hu[k][in_slice].max()
                    w = 0 if peak < 130 else 1 if peak < 200 else 2 if peak < 300 else 3
                    w = 4 if peak >= 400 else w
                    out[artery] += in_slice.sum() * g.pixel_area_mm2 * w
    return {a: v * g.increment_mm / 3.0 for a, v in out.items()}


def test_random_phantom_matches_an_independent_implementation() -> None:
    rng = np.random.default_rng(7)
    g = Geometry((0.0, 0.0, 0.0), (0.6, 0.6, 1.5), slice_thickness_mm=3.0)
    hu = rng.normal(60, 120, size=(12, 40, 40))
    lab = rng.choice([0, 1, 2, 3, 4, 5], size=hu.shape, p=[0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    lab = ndimage.median_filter(lab, size=3).astype(np.uint8)  # blobs of one label
    les = score_lesions(hu, g, lab, NO_MIN_AREA)
    art = artery_scores(les).set_index("artery")
    expected = _independent_agatston(hu, lab, g)
    for artery, value in expected.items():
        assert art.loc[artery, "agatston"] == pytest.approx(value)
    assert art.loc["total", "agatston"] == pytest.approx(sum(expected.values()))
    for col in ("agatston", "volume_mm3", "mass_mg", "n_lesions"):
        assert art.loc["total", col] == pytest.approx(art.loc[["LAD", "LCX", "RCA"], col].sum())
    coronary = np.isin(lab, [1, 2, 3, 4]) & (hu >= 130)
    assert art.loc["total", "volume_mm3"] == pytest.approx(coronary.sum() * 0.6 * 0.6 * 1.5)
    assert art.loc["total", "mass_mg"] == pytest.approx(0.001 * hu[coronary].sum() * 0.54)


# --- a published reference implementation ------------------------------------------------


def test_reproduces_calciumscoring_jl_documented_example() -> None:
    """CalciumScoring.jl (MolloiLab/CalciumScoring.jl, test/agatston.jl, testset "Agatston").

    Its test builds ``hcat(ones(4, 2, 2), zeros(4, 2, 2)) * 400``: a 4 x 4 x 2 volume whose
    two slices each hold 4 x 2 voxels of 400 HU, spacing 0.5 mm in every axis, and expects
    Agatston 16, volume 2 mm^3 and, with mass calibration 0.00075 mg/(HU mm^3), mass
    0.6 mg. Its Agatston has no slice-spacing factor (= increment/thickness with equal
    thickness and increment) and its mass is calibration x mean HU x volume (= ours).
    The same test's 120 kV case (3 columns x 4 rows of 280 HU, two slices) expects 12.
    """
    g = Geometry((0.0, 0.0, 0.0), (0.5, 0.5, 0.5), slice_thickness_mm=0.5)
    conv = ScoringConventions(
        increment_factor=IncrementFactor.INCREMENT_OVER_THICKNESS, mass_calibration=0.00075
    )
    hu = np.zeros((2, 4, 4))  # (z, y, x): Julia's (x, y, z) = (4, 4, 2)
    hu[:, :, :2] = 400
    art = artery_scores(score_lesions(hu, g, labelled(hu), conv)).set_index("artery")
    assert art.loc["total", "agatston"] == pytest.approx(16.0)
    assert art.loc["total", "volume_mm3"] == pytest.approx(2.0)
    assert art.loc["total", "mass_mg"] == pytest.approx(0.6)

    hu = np.zeros((2, 4, 7))
    hu[:, :, 1:4] = 280
    les = score_lesions(hu, g, labelled(hu), conv)
    assert total(les) == pytest.approx(12.0)


def test_without_metal_clears_components_reaching_the_metal_peak() -> None:
    """A stent-like component (one voxel at the metal peak, its blooming >= 130 HU round
    it) loses its labels, calcium of 1,900 HU beside it keeps them."""
    hu = np.zeros((3, 8, 8), dtype=np.int16)
    hu[1, 1:4, 1:4] = 300
    hu[1, 2, 2] = METAL_MIN_HU
    hu[1, 5:7, 5:7] = 1900
    mask = (hu >= 130).astype(np.uint8) * int(Label.LAD)
    out = without_metal(mask, hu, 130.0)
    assert not out[1, 1:4, 1:4].any()
    assert (out[1, 5:7, 5:7] == int(Label.LAD)).all()
    assert out.dtype == mask.dtype
    np.testing.assert_array_equal(without_metal(mask, np.minimum(hu, 1999), 130.0), mask)
