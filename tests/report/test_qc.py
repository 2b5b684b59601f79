"""Scan QC pictures: the slice with most calcium, the outlier rule, the cap, the figure and
the section in the page (real volumes and masks written here)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cacflow.conventions import Label
from cacflow.dicom.discover import assign_batches
from cacflow.report import render_report
from cacflow.report.qc import choose_scans, most_calcium_slice, outliers, qc_section, sample
from cacflow.volume import Geometry, Volume, write_volume

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GEOMETRY = Geometry(origin=(0.0, 0.0, 0.0), spacing=(0.8, 0.8, 1.5), slice_thickness_mm=3.0)


def _scores(rows: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Total rows of ``{series_uid: {source: agatston}}``."""
    out = [
        {"series_uid": uid, "method": m, "artery": "total", "agatston": v}
        for uid, per in rows.items()
        for m, v in per.items()
    ]
    return pd.DataFrame(out)


def _scans(uids: list[str], status: str = "ok", reason: str | None = None) -> pd.DataFrame:
    return pd.DataFrame({"series_uid": uids, "status": status, "reason": reason})


HAND = {
    "1.1": {"reference": 0.0, "hu-threshold": 0.0},  # agree
    "1.2": {"reference": 5.0, "hu-threshold": 50.0},  # category [1,10) vs [10,100)
    "1.3": {"reference": 200.0, "hu-threshold": 250.0},  # same category, 50 <= 100
    "1.4": {"reference": 200.0, "hu-threshold": 350.0},  # same category, 150 > 100
    "1.5": {"reference": 0.5, "hu-threshold": 12.0},  # <1 vs [10,100)
    "1.6": {"reference": 15.0, "hu-threshold": 22.0},  # same category, 7 <= 10
    "1.7": {"reference": 20.0, "hu-threshold": 30.0},  # same category, 10 is not > 10
}


def test_outlier_rule_picks_exactly_the_disagreeing_scans() -> None:
    got = outliers(_scores(HAND))
    assert [c.series_uid for c in got] == ["1.4", "1.2", "1.5"]  # largest difference first
    assert all(c.outlier for c in got)
    assert "hu-threshold 50.0 vs reference 5.0" in got[1].why
    assert "scheme A [10,100) vs [1,10)" in got[1].why
    assert "scheme" not in got[0].why  # same category: the difference made it an outlier


def test_outliers_by_any_method_with_its_largest_difference() -> None:
    rows = {u: {**v, "direct": v["reference"]} for u, v in HAND.items()}
    rows["1.1"]["direct"] = 500.0
    got = outliers(_scores(rows))
    assert [c.series_uid for c in got] == ["1.1", "1.4", "1.2", "1.5"]
    assert got[0].why.startswith("outlier: direct 500.0")


def test_without_reference_only_cross_scored_scans_are_outliers() -> None:
    rows = {
        "2.1": {"a": 450.0, "b": 5.0},  # >= 400 and < 10
        "2.2": {"a": 450.0, "b": 50.0},  # high but agreed on roughly
        "2.3": {"a": 3.0, "b": 900.0},
        "2.4": {"a": 1000.0},  # one source only: nothing to disagree with
    }
    got = outliers(_scores(rows))
    assert [c.series_uid for c in got] == ["2.3", "2.1"]
    assert outliers(_scores({"2.5": {"a": 5000.0}})) == []


def test_sample_is_deterministic_and_spans_the_scores() -> None:
    uids = [f"u{i:02d}" for i in range(10)]
    assert sample(uids, 4) == ["u00", "u03", "u06", "u09"]
    assert sample(uids[:3], 4) == uids[:3]
    assert sample(uids, 0) == []


def test_cap_cuts_outliers_last_and_says_how_many() -> None:
    rows = {f"3.{i}": {"reference": 0.0, "m": 100.0 + i} for i in range(5)}  # 5 outliers
    rows |= {f"4.{i}": {"reference": float(i), "m": float(i)} for i in range(6)}
    scans = _scans(sorted(rows))
    every = choose_scans(scans, _scores(rows), "m", n_sample=2, n_max=24)
    assert [c.series_uid for c in every.chosen] == ["3.4", "3.3", "3.2", "3.1", "3.0", "4.0", "4.5"]
    assert (every.n_outliers, every.cut_outliers, every.cut_sample) == (5, 0, 0)
    cut = choose_scans(scans, _scores(rows), "m", n_sample=2, n_max=3)
    assert [c.series_uid for c in cut.chosen] == ["3.4", "3.3", "3.2"]
    assert (cut.n_outliers, cut.cut_outliers, cut.cut_sample) == (5, 2, 2)
    some = choose_scans(scans, _scores(rows), "m", n_sample=2, n_max=6)
    assert (some.cut_outliers, some.cut_sample) == (0, 1)


def test_outliers_and_sample_are_ok_scans_not_scorable_ones_come_last() -> None:
    scans = pd.concat(
        [
            _scans(["1.2", "1.4"]),
            _scans(["1.5", "1.8", "1.9"], "not_scorable", "noise"),
            _scans(["1.6"], "excluded", "localizer"),
        ]
    )
    sel = choose_scans(scans, _scores(HAND), "hu-threshold", n_sample=4, n_not_scorable=2)
    assert [c.series_uid for c in sel.chosen] == ["1.4", "1.2", "1.5", "1.9"]
    assert [c.reason for c in sel.chosen] == [None, None, "noise", "noise"]
    none = choose_scans(scans, _scores(HAND), "hu-threshold", n_not_scorable=0)
    assert [c.series_uid for c in none.chosen] == ["1.4", "1.2"]
    cut = choose_scans(scans, _scores(HAND), "hu-threshold", n_max=3, n_not_scorable=2)
    assert (cut.cut_outliers, cut.cut_sample, cut.cut_not_scorable) == (0, 0, 1)


def test_most_calcium_slice_falls_back_to_the_reference() -> None:
    method = np.zeros((6, 8, 8), np.uint8)
    method[1, 0, :2] = Label.LAD
    method[4, 2:4, 2:5] = Label.RCA  # 6 voxels: the most
    method[5, 0, :5] = Label.AV
    ref = np.zeros_like(method)
    ref[2, :3, :3] = Label.LCX
    assert most_calcium_slice(method, ref) == 4
    assert most_calcium_slice(np.zeros_like(method), ref) == 2
    assert most_calcium_slice(None, np.zeros_like(ref)) is None


def _work(tmp_path: Path, blobs: dict[str, int]) -> tuple[Path, Path]:
    """A work folder (batches of 2) with a volume, hu-threshold and reference masks per
    series; each has calcium on slice ``blobs[uid]`` (most) and one voxel elsewhere."""
    manifest = pd.DataFrame({"series_uid": sorted(blobs)})
    path = tmp_path / "manifest.parquet"
    manifest.to_parquet(path)
    work = tmp_path / "work"
    for uid, b in assign_batches(manifest, 2)[["series_uid", "batch"]].itertuples(index=False):
        z = blobs[uid]
        ct = np.full((8, 48, 48), 40, dtype=np.int16)
        labels = np.zeros(ct.shape, np.uint8)
        ct[z, 20:24, 20:24] = 500
        labels[z, 20:24, 20:24] = Label.LAD
        ct[(z + 3) % 8, 10, 10] = 300
        labels[(z + 3) % 8, 10, 10] = Label.AV
        write_volume(Volume(ct, GEOMETRY), work / "resampled" / b / f"{uid}.nii")
        write_volume(Volume(labels, GEOMETRY), work / "labels" / "hu-threshold" / b / f"{uid}.nii")
        ref = np.where(labels == Label.LAD, Label.LAD, 0).astype(np.uint8)
        write_volume(Volume(ref, GEOMETRY), work / "labels" / "reference" / b / f"{uid}.nii")
    return work, path


SETTINGS = {"methods": ["direct", "hu-threshold"], "batch_size": 2, "report": {"qc_sample": 1}}


@pytest.fixture()
def section(tmp_path: Path) -> dict:
    blobs = {"1.1": 2, "1.2": 5, "1.4": 3, "1.5": 6, "1.9": 1}
    work, manifest = _work(tmp_path, blobs)
    scans = pd.concat(
        [_scans(["1.1", "1.2", "1.4", "1.5"]), _scans(["1.9"], "not_scorable", "noise")]
    )
    return qc_section(work, manifest, SETTINGS, scans, _scores(HAND))


def test_section_reads_the_chosen_scans_across_batches(section: dict) -> None:
    assert section["method"] == "hu-threshold"  # the first method with voxel labels
    items = section["pictures"]
    assert [f["series_uid"] for f in items] == ["1.4", "1.2", "1.5", "1.1", "1.9"]
    # the slice with most calcium (the method's; for the not-scorable scan the reference's)
    assert [f["slice"] for f in items] == [3, 5, 6, 2, 1]
    assert [f["outlier"] for f in items] == [True, True, True, False, False]
    assert [f["status"] for f in items][-2:] == ["ok", "not_scorable"]
    assert items[-1]["reason"] == "noise" and items[-1]["score"] is None
    assert (items[0]["score"], items[0]["reference"]) == (350.0, 200.0)
    assert items[0]["n_slices"] == 8 and items[0]["heart"] is False  # no chest: no heart
    png = base64.b64decode(items[0]["uri"].removeprefix("data:image/png;base64,"))
    assert png.startswith(PNG_SIGNATURE)


def test_page_has_the_section_without_paths(section: dict, report_inputs, tmp_path: Path) -> None:
    cut = {**section, "cut_outliers": 2, "cut_sample": 1, "cut_not_scorable": 0}
    page = render_report(**report_inputs, qc=cut)
    body = page[page.index('<section id="qc">') :]
    body = body[: body.index("</section>")]
    assert body.count("<img ") == 5
    assert "3 outliers, 1 sampled, 1 not scorable" in body
    assert "not scorable: image noise above" in body
    assert 'href="#qc"' in page
    assert "Series <code>1.4</code>, slice 3 of 8" in body
    assert "hu-threshold 350.0 Agatston vs reference 200.0" in body
    assert "The list was cut at 24 pictures" in body
    assert "2 outliers, 1 sampled and 0 not-scorable scans not shown" in body
    assert str(tmp_path) not in page and "/work" not in body and ".nii" not in page
    plain = render_report(**report_inputs, qc=section)
    assert "was cut" not in plain
    assert '<section id="qc">' not in render_report(**report_inputs)


def test_defaults_are_the_schema_defaults() -> None:
    from cacflow.config import load_schema
    from cacflow.report import qc

    keys = load_schema()["properties"]["report"]["properties"]
    assert keys["qc_sample"]["default"] == qc.QC_SAMPLE
    assert keys["qc_max"]["default"] == qc.QC_MAX
    assert keys["qc_not_scorable"]["default"] == qc.QC_NOT_SCORABLE


def test_missing_volumes_are_said_not_hidden(tmp_path: Path, report_inputs) -> None:
    work, _ = _work(tmp_path, {"1.2": 1})
    scans = _scans(["1.2"])
    got = qc_section(work, tmp_path / "gone.parquet", SETTINGS, scans, _scores(HAND))
    assert got["pictures"] == [] and got["missing"] == 1
    page = render_report(**report_inputs, qc=got)
    assert "1 chosen scan could not be pictured" in page


def test_pictures_link_their_seg_files_relatively(
    section: dict, report_inputs, tmp_path: Path
) -> None:
    """A SEG index beside the page: each pictured scan's caption links its SEG files by a
    relative link (no absolute path) and says which source labelled nothing."""
    from cacflow.report.qc import SEG_INDEX_FILE, add_seg_links

    seg_dir = tmp_path / "results" / "ds" / "seg"
    seg_dir.mkdir(parents=True)
    index = pd.DataFrame(
        {
            "series_uid": ["1.4", "1.4"],
            "source": ["reference", "hu-threshold"],
            "why": ["outlier", "outlier"],
            "file": ["reference/1.4.dcm", None],
            "n_voxels": [16, 0],
            "segments": ["LAD", ""],
        }
    )
    index.to_parquet(seg_dir / SEG_INDEX_FILE)
    linked = add_seg_links(section, seg_dir, seg_dir.parent)
    assert linked["seg_dir"] == "seg"
    assert [f["segs"] for f in linked["pictures"]][:2] == [
        [("reference", "seg/reference/1.4.dcm"), ("hu-threshold", None)],
        [],
    ]
    page = render_report(**report_inputs, qc=linked)
    assert 'DICOM SEG: <a href="seg/reference/1.4.dcm">reference</a>,' in page
    assert "hu-threshold (no labelled voxel, no file)." in page
    assert "<code>seg/&lt;source&gt;/&lt;series_uid&gt;.dcm</code>" in page
    assert str(tmp_path) not in page
    assert "DICOM SEG" not in render_report(**report_inputs, qc=section)
