"""Annotation keys -> series (issue 14, item 3): a point keyed by a SeriesInstanceUID that
holds several series goes to the series whose volume holds it, ambiguity is flagged, and
every annotation row appears in reference_points.parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cacflow.dicom.convert import QcConfig, convert_dir
from cacflow.dicom.discover import discover
from cacflow.dicom.write import SeriesSpec, phantom, write_ct_series
from cacflow.reference import (
    POINTS_FILE,
    PointStatus,
    read_series_boxes,
    reference_batch,
    resolve_series,
)
from cacflow.tables import build_tables, read_table

INSIDE = (-90.0, -110.0, -45.0)  # in the 32 x 32 x 12 stack at (-100, -120, -50), 0.7 mm
OUTSIDE = (-90.0, -110.0, 40.0)  # 85 mm above it


def _cohort(root: Path) -> dict[str, str]:
    """An axial stack sharing its UID with a scout, two recons sharing another UID, and a
    series of 3 images (too_few_slices)."""
    ax = SeriesSpec()
    hu = phantom(12)
    hu[5, 13:17, 13:17] = 400  # one lesion around INSIDE (voxel z 5, y 14, x 14)
    write_ct_series(hu, root / "ax", ax)
    scout = SeriesSpec(
        series_uid=ax.series_uid,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        col_dir=(0.0, 0.0, -1.0),
    )
    write_ct_series(phantom(1), root / "ax", scout, name="scout{k}.dcm")
    soft = SeriesSpec(kernel="B30f")
    write_ct_series(hu, root / "soft", soft)
    write_ct_series(hu, root / "sharp", SeriesSpec(kernel="B70f", series_uid=soft.series_uid))
    short = SeriesSpec()
    write_ct_series(phantom(3), root / "short", short)
    return {"ax": ax.series_uid, "recons": soft.series_uid, "short": short.series_uid}


def _annotations(path: Path, uids: dict[str, str]) -> Path:
    rows = [
        (uids["ax"], *INSIDE, "LAD"),  # 0 -> the axial stack, not the scout
        (uids["ax"], *OUTSIDE, "LAD"),  # 1 -> outside every volume of the UID
        (uids["recons"], *INSIDE, "RCA"),  # 2 -> both recons: ambiguous
        (uids["short"], *INSIDE, "LCX"),  # 3 -> an excluded series
        ("1.2.3.999", *INSIDE, "LAD"),  # 4 -> unknown
    ]
    pd.DataFrame(rows, columns=["series_uid", "x", "y", "z", "label"]).to_csv(path, index=False)
    return path


def test_points_resolve_to_the_group_holding_them(tmp_path: Path) -> None:
    uids = _cohort(tmp_path / "dicom")
    manifest, _ = discover(tmp_path / "dicom")
    manifest.to_parquet(tmp_path / "manifest.parquet")
    points = pd.read_csv(_annotations(tmp_path / "a.csv", uids), dtype={"series_uid": str})
    boxes = read_series_boxes(tmp_path / "manifest.parquet", set(points["series_uid"]))
    res = resolve_series(points.assign(annotation_row=range(len(points))), boxes)
    axial = manifest[(manifest["dicom_series_uid"] == uids["ax"]) & (manifest["n_files"] == 12)]
    first = res[res["annotation_row"] == 0]
    assert first["series_uid"].tolist() == axial["series_uid"].tolist()
    assert not first["ambiguous"].any()
    assert res.loc[res["annotation_row"] == 1, "n_candidate_series"].tolist() == [0]
    recons = res[res["annotation_row"] == 2]
    assert sorted(recons["series_uid"]) == [f"{uids['recons']}_1", f"{uids['recons']}_2"]
    assert recons["ambiguous"].all()
    assert (recons["annotation_series_uid"] == uids["recons"]).all()


def test_every_annotation_row_reaches_reference_points(tmp_path: Path) -> None:
    uids = _cohort(tmp_path / "dicom")
    manifest, counts = discover(tmp_path / "dicom")
    manifest.to_parquet(tmp_path / "manifest.parquet")
    native = tmp_path / "native"
    convert_dir(tmp_path / "dicom", native, QcConfig())
    ann = _annotations(tmp_path / "a.csv", uids)
    labels = tmp_path / "labels"
    reference_batch(native, ann, labels, {}, manifest=tmp_path / "manifest.parquet")
    out = tmp_path / "results"
    out.mkdir()
    settings = {"dataset": "t", "annotations": str(ann), "sources": ["reference"]}
    build_tables(
        settings,
        None,
        [native / "scans.parquet"],
        [],
        [],
        [labels / POINTS_FILE],
        out,
    )
    pts = read_table(out / "reference_points.parquet")
    for name in ("scans", "scores", "lesions", "reference_points"):  # no file paths
        data = (out / f"{name}.parquet").read_bytes()
        assert str(tmp_path).encode() not in data, name
    assert sorted(set(pts["annotation_row"])) == [0, 1, 2, 3, 4]
    status = pts.groupby("annotation_row")["point_status"].agg(sorted).to_dict()
    assert status[0] == [PointStatus.MATCHED]
    assert status[1] == [PointStatus.OUTSIDE_VOLUME]
    assert status[2] == [PointStatus.MATCHED, PointStatus.MATCHED]
    assert status[3] == [PointStatus.EXCLUDED_SERIES]
    assert status[4] == [PointStatus.UNKNOWN_SERIES]
    ambiguous = pts[pts["annotation_row"] == 2]
    assert ambiguous["ambiguous"].astype(bool).all()
    # the resolved point gave the axial stack its lesion
    axial = pts[pts["annotation_row"] == 0]["series_uid"].iloc[0]
    assert axial.startswith(f"{uids['ax']}_")
    assert np.isfinite(pts.loc[pts["annotation_row"] == 0, "component_voxels"]).all()
