"""The reference standard (cacflow.reference): points -> label masks, input tables.

Distances are hand-computed from the phantom geometry (mm, LPS).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from cacflow.calcium import artery_scores, score_lesions
from cacflow.conventions import ConflictRule, Label, ScoringConventions
from cacflow.reference import (
    REPORT_COLUMNS,
    read_annotations,
    read_score_table,
    reference_labels,
)
from cacflow.volume import Geometry, Volume

# 0.5 x 0.5 mm pixels, 1.5 mm increment, origin shifted so that index != mm.
GEOM = Geometry(origin=(-20.0, 10.0, -100.0), spacing=(0.5, 0.5, 1.5), slice_thickness_mm=3.0)
SHAPE = (10, 40, 40)


def world(z: float, y: float, x: float) -> tuple[float, float, float]:
    """LPS mm of a (possibly fractional) voxel index (z, y, x) of GEOM."""
    return (-20.0 + 0.5 * x, 10.0 + 0.5 * y, -100.0 + 1.5 * z)


def points(*rows: tuple[tuple[float, float, float], str]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"x": p[0], "y": p[1], "z": p[2], "label": lab} for p, lab in rows],
        columns=["x", "y", "z", "label"],
    )


def volume(voxels: dict[tuple[int, int, int], float] | None = None) -> Volume:
    hu = np.full(SHAPE, 20.0)
    for zyx, v in (voxels or {}).items():
        hu[zyx] = v
    return Volume(hu, GEOM, {"series_uid": "1.2.3"})


def blob(z: int, y: int, x: int, hu: float = 400.0) -> dict[tuple[int, int, int], float]:
    """A 2 x 2 x 2 voxel calcification with corner (z, y, x)."""
    return {(z + a, y + b, x + c): hu for a in (0, 1) for b in (0, 1) for c in (0, 1)}


CONV = ScoringConventions()


def test_point_on_calcium_labels_its_whole_component() -> None:
    vol = volume(blob(4, 10, 10) | blob(4, 30, 30))
    mask, rep = reference_labels(vol, points((world(4.2, 10.9, 11.1), "RCA")), CONV)
    assert mask.dtype == np.uint8 and mask.shape == SHAPE
    assert np.count_nonzero(mask) == 8 and set(np.unique(mask)) == {0, int(Label.RCA)}
    assert mask[4:6, 10:12, 10:12].all()  # the other blob stays unlabelled
    assert list(rep.columns) == list(REPORT_COLUMNS)
    r = rep.iloc[0]
    assert r["matched"] and r["snapped_distance_mm"] == 0 and r["nearest_calcium_mm"] == 0
    assert r["component_voxels"] == 8 and not r["conflict"] and r["resolved_label"] == "RCA"


@pytest.mark.parametrize(
    ("offset_zyx", "distance", "matched"),
    [
        ((0, 0, -2), 1.0, True),  # 2 pixels of 0.5 mm left of the blob: 1.0 mm
        ((0, 0, -3), 1.5, True),  # exactly the snap radius: inclusive
        ((1, 0, 0), 1.5, True),  # one slice above (increment 1.5 mm)
        ((1, 0, -1), math.hypot(1.5, 0.5), False),  # 1.58 mm: one slice and one pixel
        ((0, -3, -2), math.hypot(1.5, 1.0), False),  # 1.80 mm in plane
    ],
)
def test_snapping_within_and_beyond_the_radius(
    offset_zyx: tuple[int, int, int], distance: float, matched: bool
) -> None:
    # blob occupies z 4-5, y 10-11, x 10-11; offsets are from its corner voxel, moving away
    # (a positive z offset starts above the blob's top slice 5)
    dz, dy, dx = offset_zyx
    z = 5 + dz if dz > 0 else 4 + dz
    vol = volume(blob(4, 10, 10))
    p = world(z, 10 + dy, 10 + dx)
    mask, rep = reference_labels(vol, points((p, "LAD")), CONV)
    r = rep.iloc[0]
    assert r["nearest_calcium_mm"] == pytest.approx(distance)
    assert bool(r["matched"]) is matched
    if matched:
        assert r["snapped_distance_mm"] == pytest.approx(distance)
        assert np.count_nonzero(mask == Label.LAD) == 8 and r["component"] > 0
    else:
        assert math.isnan(r["snapped_distance_mm"])
        assert not mask.any() and r["component"] == 0 and pd.isna(r["resolved_label"])


def test_snap_radius_is_configurable() -> None:
    vol = volume(blob(4, 10, 10))
    p = world(4, 10, 6)  # 4 pixels = 2.0 mm away
    _, rep = reference_labels(vol, points((p, "LAD")), CONV)
    assert not rep.loc[0, "matched"]
    _, rep = reference_labels(vol, points((p, "LAD")), ScoringConventions(snap_radius_mm=2.0))
    assert rep.loc[0, "matched"] and rep.loc[0, "snapped_distance_mm"] == pytest.approx(2.0)


def test_nearest_calcium_distance_is_exact_far_away_and_outside() -> None:
    vol = volume(blob(4, 10, 10))
    # 30 mm to the left in x (60 pixels; beyond the image, so also outside the grid)
    _, rep = reference_labels(vol, points((world(4, 10, -50), "LAD")), CONV)
    assert rep.loc[0, "nearest_calcium_mm"] == pytest.approx(30.0)
    assert not rep.loc[0, "matched"]
    # blob in slices 0-1, point in slice 9: 8 slices of 1.5 mm = 12 mm
    _, rep = reference_labels(volume(blob(0, 10, 10)), points((world(9, 10, 10), "LAD")), CONV)
    assert rep.loc[0, "nearest_calcium_mm"] == pytest.approx(12.0)
    # no calcium at all
    _, rep = reference_labels(volume(), points((world(4, 10, 10), "LAD")), CONV)
    assert math.isnan(rep.loc[0, "nearest_calcium_mm"]) and not rep.loc[0, "matched"]


def test_a_point_without_coordinates_is_unmatched() -> None:
    _, rep = reference_labels(volume(blob(4, 10, 10)), points(((np.nan, 0.0, 0.0), "LAD")), CONV)
    assert not rep.loc[0, "matched"] and math.isnan(rep.loc[0, "nearest_calcium_mm"])


def test_snapping_picks_the_nearest_of_two_components() -> None:
    # blob A ends at x = 11; blob B starts at x = 16; point at x = 13 -> A is 1.0 mm away,
    # B 1.5 mm: A is labelled, B is not.
    vol = volume(blob(4, 10, 10) | blob(4, 10, 16))
    mask, rep = reference_labels(vol, points((world(4, 10, 13), "LCX")), CONV)
    assert rep.loc[0, "snapped_distance_mm"] == pytest.approx(1.0)
    assert mask[4, 10, 10] == Label.LCX and mask[4, 10, 16] == 0


@pytest.mark.parametrize(("connectivity", "n_labelled"), [(26, 16), (18, 8), (6, 8)])
def test_reference_connectivity(connectivity: int, n_labelled: int) -> None:
    # two blobs touching only at a corner voxel: (5, 11, 11) and (6, 12, 12)
    vol = volume(blob(4, 10, 10) | blob(6, 12, 12))
    conv = ScoringConventions(reference_connectivity=connectivity)
    mask, rep = reference_labels(vol, points((world(4, 10, 10), "LAD")), conv)
    assert np.count_nonzero(mask) == n_labelled == rep.loc[0, "component_voxels"]


def test_conflicting_labels_majority() -> None:
    vol = volume(blob(4, 10, 10) | blob(4, 30, 30))
    pts = points(
        (world(4, 10, 10), "LAD"),
        (world(5, 11, 11), "LCX"),
        (world(4, 11, 10), "lad"),  # case-insensitive
        (world(4, 30, 30), "RCA"),  # another component: no conflict
    )
    mask, rep = reference_labels(vol, pts, CONV)
    assert rep["conflict"].tolist() == [True, True, True, False]
    assert rep["resolved_label"].tolist() == ["LAD", "LAD", "LAD", "RCA"]
    assert rep["component"].iloc[0] == rep["component"].iloc[1] != rep["component"].iloc[3]
    assert np.count_nonzero(mask == Label.LAD) == 8 and np.count_nonzero(mask == Label.RCA) == 8


@pytest.mark.parametrize(
    ("labels", "winner"),
    [
        (("RCA", "LCX"), "LCX"),  # tie -> the first in LABEL_PRIORITY (lowest Label value)
        (("LM", "LAD"), "LAD"),
        (("AV", "RCA"), "RCA"),
        (("AV", "AV", "RCA"), "AV"),  # a majority beats the priority
    ],
)
def test_conflict_ties_follow_the_priority_order(labels: tuple[str, ...], winner: str) -> None:
    vol = volume(blob(4, 10, 10))
    corners = [(4, 10, 10), (5, 11, 11), (4, 11, 10)]
    pts = points(*[(world(*c), lab) for c, lab in zip(corners, labels, strict=False)])
    mask, rep = reference_labels(vol, pts, CONV)
    assert set(rep["resolved_label"]) == {winner} and rep["conflict"].all()
    assert np.count_nonzero(mask == Label[winner]) == 8


def test_conflicting_labels_nearest_splits_the_component() -> None:
    # a bar of 10 voxels along x (x = 10..19) in one slice and row; LAD point at x = 10,
    # LCX point at x = 17: voxels x <= 13 are nearer LAD (13 is 3 from 10, 4 from 17),
    # x >= 14 nearer LCX -> 4 LAD voxels, 6 LCX voxels.
    vol = volume({(4, 20, x): 300.0 for x in range(10, 20)})
    pts = points((world(4, 20, 10), "LAD"), (world(4, 20, 17), "LCX"))
    conv = ScoringConventions(conflict_rule=ConflictRule.NEAREST)
    mask, rep = reference_labels(vol, pts, conv)
    assert rep["conflict"].tolist() == [True, True]
    assert rep["resolved_label"].tolist() == ["LAD", "LCX"]
    np.testing.assert_array_equal(mask[4, 20, 10:20], [1] * 4 + [2] * 6)
    # scored as two lesions: 4 and 6 pixels of 0.25 mm^2, weight 3, x 1.5/3
    les = score_lesions(vol.array, GEOM, mask, CONV)
    assert les["agatston"].tolist() == pytest.approx([4 * 0.25 * 3 * 0.5, 6 * 0.25 * 3 * 0.5])


def test_nearest_rule_equal_distance_goes_to_priority() -> None:
    # 3-voxel bar, points at both ends (RCA at x=10, LCX at x=12): the middle voxel is
    # 0.5 mm from both -> LCX (before RCA in the priority order)
    vol = volume({(4, 20, x): 300.0 for x in (10, 11, 12)})
    pts = points((world(4, 20, 10), "RCA"), (world(4, 20, 12), "LCX"))
    mask, _ = reference_labels(vol, pts, ScoringConventions(conflict_rule="nearest"))
    np.testing.assert_array_equal(mask[4, 20, 10:13], [3, 2, 2])


def test_other_labels_are_kept_as_non_coronary() -> None:
    vol = volume(blob(4, 10, 10) | blob(4, 30, 30))
    pts = points((world(4, 10, 10), "AV"), (world(4, 30, 30), "aorta"))
    mask, rep = reference_labels(vol, pts, CONV)
    assert rep["resolved_label"].tolist() == ["AV", "OTHER"]
    les = score_lesions(vol.array, GEOM, mask, CONV)
    assert les["coronary"].tolist() == [False, False]
    assert artery_scores(les)["agatston"].sum() == 0


def test_no_points_gives_an_empty_mask_and_report() -> None:
    mask, rep = reference_labels(volume(blob(4, 10, 10)), points(), CONV)
    assert not mask.any() and rep.empty
    assert set(REPORT_COLUMNS) <= set(rep.columns)


def test_report_keeps_the_points_columns() -> None:
    pts = points((world(4, 10, 10), "LAD")).assign(series_uid="9.9", lesion_id=3)
    _, rep = reference_labels(volume(blob(4, 10, 10)), pts, CONV)
    assert rep.loc[0, "series_uid"] == "9.9" and rep.loc[0, "lesion_id"] == 3


# --- annotation tables -------------------------------------------------------------------


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_read_annotations_csv_and_parquet(tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "a.csv",
        "series_uid,x,y,z,label,patient_id\n0012,1.5,-2,30,LAD ,007\n1.2.3,0,0,0,AV,008\n",
    )
    df = read_annotations(csv)
    assert df["series_uid"].tolist() == ["0012", "1.2.3"]  # leading zeros kept
    assert df["patient_id"].tolist() == ["007", "008"]
    assert df["label"].tolist() == ["LAD", "AV"]
    assert df[["x", "y", "z"]].to_numpy().tolist() == [[1.5, -2.0, 30.0], [0.0, 0.0, 0.0]]
    pq = tmp_path / "a.parquet"
    df.to_parquet(pq)
    pd.testing.assert_frame_equal(read_annotations(pq), df)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("series_uid,x,y,z\n1,0,0,0\n", "missing column(s) label"),
        ("series_uid,x,z,label\n1,0,0,LAD\n", "missing column(s) y"),
        ("series_uid,x,y,z,label\n1,0,abc,0,LAD\n", "column y row 1: not a number"),
        ("series_uid,x,y,z,label\n1,0,0,0,LAD\n2,0,0,,LAD\n", "column z row 2"),
        ("series_uid,x,y,z,label\n1,0,0,0,\n", "column label row 1: empty"),
    ],
)
def test_read_annotations_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError) as err:
        read_annotations(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_read_annotations_missing_file_and_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        read_annotations(tmp_path / "none.csv")
    with pytest.raises(ValueError, match="unknown table format"):
        read_annotations(write_csv(tmp_path / "a.xlsx", "x"))


# --- score tables ------------------------------------------------------------------------


def test_read_score_table_total_only(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", "series_uid,agatston\n1.1,12.5\n1.2,0\n")
    df = read_score_table(path)
    assert df["artery"].tolist() == ["total", "total"]
    assert df["agatston"].tolist() == [12.5, 0.0]
    assert df[["volume_mm3", "mass_mg", "n_lesions"]].isna().all().all()
    assert df["patient_id"].isna().all()


def test_read_score_table_per_artery(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "s.csv",
        "series_uid,patient_id,agatston,LAD,LCX,RCA,volume_mm3,mass_mg\n"
        "1.1,p1,30,10,20,0,40.5,8.25\n"
        "1.2,p2,5,,,5,,\n",
    )
    df = read_score_table(path)
    assert list(df.columns) == [
        "series_uid",
        "patient_id",
        "artery",
        "agatston",
        "volume_mm3",
        "mass_mg",
        "n_lesions",
    ]
    assert df["artery"].tolist() == ["LAD", "LCX", "RCA", "total"] * 2
    assert df["series_uid"].tolist() == ["1.1"] * 4 + ["1.2"] * 4
    np.testing.assert_array_equal(df["agatston"], [10, 20, 0, 30, np.nan, np.nan, 5, 5])
    total = df[df["artery"] == "total"]
    np.testing.assert_array_equal(total["volume_mm3"], [40.5, np.nan])
    np.testing.assert_array_equal(total["mass_mg"], [8.25, np.nan])
    assert df.loc[df["artery"] != "total", "volume_mm3"].isna().all()
    assert df["patient_id"].tolist() == ["p1"] * 4 + ["p2"] * 4


def test_read_score_table_some_arteries(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", "series_uid,agatston,LAD\n1.1,30,10\n")
    assert read_score_table(path)["artery"].tolist() == ["LAD", "total"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("series_uid,LAD\n1,3\n", "missing column(s) agatston"),
        ("series_uid,agatston\n1,3\n1,4\n", "series_uid 1 appears more than once"),
        ("series_uid,agatston\n1,-3\n", "negative"),
        ("series_uid,agatston,RCA\n1,3,x\n", "column RCA row 1: not a number"),
    ],
)
def test_read_score_table_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write_csv(tmp_path / "s.csv", text)
    with pytest.raises(ValueError) as err:
        read_score_table(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_local_labelling_equals_whole_image_labelling() -> None:
    # random calcifications plus a long bar crossing the whole image (forces the labelling
    # box to grow); reference components must equal scipy's whole-image components.
    rng = np.random.default_rng(3)
    hu = np.where(rng.random(SHAPE) < 0.12, 300.0, 20.0)
    hu[5, 20, :] = 500.0
    hu[:, 20, 39] = 500.0
    vol = Volume(hu, GEOM)
    comps, _ = ndimage.label(hu >= 130, structure=np.ones((3, 3, 3)))
    seeds = [(5, 20, 0), *map(tuple, rng.integers(0, SHAPE, size=(25, 3)))]
    seeds = [s for s in seeds if hu[s] >= 130]
    labs = ["LAD", "LCX", "RCA"]
    pts = points(*[(world(*s), labs[i % 3]) for i, s in enumerate(seeds)])
    mask, rep = reference_labels(vol, pts, CONV)
    expected = np.zeros(SHAPE, dtype=np.uint8)
    for c in np.unique([comps[s] for s in seeds]):
        votes = [Label[labs[i % 3]] for i, s in enumerate(seeds) if comps[s] == c]
        counts = {v: votes.count(v) for v in votes}
        best = max(counts.values())
        expected[comps == c] = min(v for v, n in counts.items() if n == best)
    np.testing.assert_array_equal(mask, expected)
    sizes = np.bincount(comps.ravel())
    assert rep["component_voxels"].tolist() == [int(sizes[comps[s]]) for s in seeds]
    assert rep.loc[0, "component_voxels"] > 100  # the bar and what touches it
