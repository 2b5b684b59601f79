"""Decision-feedback figures: the right slice, the right numbers, in the page only when
there are maps."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cacflow.report import render_report
from cacflow.report.feedback import feedback_examples, feedback_pairs
from cacflow.report.plots import FEEDBACK_MARGIN_PX, crop_box
from cacflow.volume import HEATMAP_SUFFIX, Geometry, Volume, write_volume

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GEOMETRY = Geometry(origin=(0.0, 0.0, 0.0), spacing=(0.8, 0.8, 1.5), slice_thickness_mm=3.0)


def _series(root: Path, uid: str, blob_slice: int | None) -> None:
    """A 6 x 64 x 64 volume; its map holds 2 x 2 pixels of 0.5 on ``blob_slice``."""
    ct = np.full((6, 64, 64), -50, dtype=np.int16)
    heat = np.zeros(ct.shape, dtype=np.float32)
    if blob_slice is not None:
        ct[blob_slice, 30:32, 40:42] = 400
        heat[blob_slice, 30:32, 40:42] = 0.5
        heat[blob_slice - 1, 30, 40] = 0.1  # less on a neighbouring slice
    write_volume(Volume(ct, GEOMETRY), root / "img" / f"{uid}.nii")
    write_volume(Volume(heat, GEOMETRY), root / "maps" / f"{uid}{HEATMAP_SUFFIX}.nii")


def _scores(uids: list[str]) -> pd.DataFrame:
    rows = []
    for i, uid in enumerate(uids):
        rows.append(
            {"series_uid": uid, "method": "direct", "artery": "total", "agatston": 10.0 * i}
        )
        rows.append({"series_uid": uid, "method": "reference", "artery": "total", "agatston": i})
    return pd.DataFrame(rows, columns=["series_uid", "method", "artery", "agatston"])


@pytest.fixture()
def maps(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    (tmp_path / "maps").mkdir()
    _series(tmp_path, "1.2.1", None)  # calcium-free: comes last
    _series(tmp_path, "1.2.2", 3)
    _series(tmp_path, "1.2.3", 4)
    (tmp_path / "maps" / f"1.2.9{HEATMAP_SUFFIX}.nii").write_bytes(b"")  # no image: skipped
    return tmp_path


def test_examples_pick_the_slice_with_most_feedback(maps: Path) -> None:
    pairs = feedback_pairs(maps / "img", maps / "maps")
    assert [p[0].stem for p in pairs] == ["1.2.1", "1.2.2", "1.2.3"]
    got = feedback_examples(pairs, _scores(["1.2.1", "1.2.2", "1.2.3"]), limit=2)
    assert [g["series_uid"] for g in got] == ["1.2.2", "1.2.3"]  # maps with calcium first
    assert [g["slice"] for g in got] == [3, 4]
    assert got[0]["predicted"] == pytest.approx(4 * 0.5)
    assert (got[0]["score"], got[0]["reference"]) == (10.0, 1.0)
    assert got[0]["method"] == "direct"
    png = base64.b64decode(got[0]["uri"].split(",", 1)[1])
    assert png.startswith(PNG_SIGNATURE)
    every = feedback_examples(pairs, _scores([]))
    assert every[-1]["series_uid"] == "1.2.1"
    assert every[-1]["slice"] == 3 and every[-1]["predicted"] == 0.0  # middle slice
    assert every[-1]["score"] is None


def test_crop_box_holds_the_feedback_plus_margin() -> None:
    heat = np.zeros((200, 300))
    heat[100:110, 5:20] = 1.0
    rows, cols = crop_box(heat)
    assert (rows.start, rows.stop) == (100 - FEEDBACK_MARGIN_PX, 110 + FEEDBACK_MARGIN_PX)
    assert (cols.start, cols.stop) == (0, 20 + FEEDBACK_MARGIN_PX)
    assert crop_box(np.zeros((5, 7))) == (slice(0, 5), slice(0, 7))


def test_section_only_with_figures(maps: Path, report_inputs: dict) -> None:
    plain = render_report(**report_inputs)
    assert 'id="feedback"' not in plain
    pairs = feedback_pairs(maps / "img", maps / "maps")
    figures = feedback_examples(pairs, _scores(["1.2.1", "1.2.2", "1.2.3"]))
    page = render_report(**report_inputs, feedback=figures)
    section = page[page.index('<section id="feedback">') :]
    section = section[: section.index("</section>")]
    assert section.count("<img ") == 3
    assert "Series <code>1.2.2</code>, slice 3: 2.0 mm² × weight" in section
    assert "scan total 10.0 Agatston (direct) vs 1.0 (reference)" in section
    assert 'href="#feedback"' in page
