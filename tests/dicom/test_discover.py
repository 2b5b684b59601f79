"""Walking any layout, counting files, the manifest, batches."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cacflow.dicom.discover import MANIFEST_COLUMNS, assign_batches, discover, iter_files


def test_symlink_loop_and_linked_files_are_walked_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f1").write_bytes(b"x")
    (root / "a" / "f2").write_bytes(b"y")
    os.symlink(root, root / "a" / "b" / "loop")  # a -> b -> loop -> root -> a ...
    os.symlink(root / "a" / "f2", root / "f2_link")  # the same file under another name
    os.symlink(root / "missing", root / "dangling")
    files = iter_files(root)
    assert sorted(Path(f).name for f in files) == ["f1", "f2"]


def test_non_ascii_paths(write_series, dicom_dir: Path) -> None:
    _, spec, paths = write_series("Müller, Zoë/患者 1/série #2", name="bild ä {k}.dcm")
    manifest, counts = discover(dicom_dir)
    assert counts["n_dicom"] == len(paths)
    assert manifest.loc[0, "series_uid"] == spec.series_uid
    assert sorted(manifest.loc[0, "files"]) == sorted(str(p) for p in paths)


def test_counts_and_one_row_per_series(write_series, dicom_dir: Path) -> None:
    _, a, _ = write_series("a")
    _, b, pb = write_series("b", n=11)
    (dicom_dir / "README.txt").write_text("not dicom")
    (dicom_dir / "b" / "thumbs.db").write_bytes(bytes(300))
    pb[0].write_bytes(pb[0].read_bytes()[:-10])  # truncated pixel data
    shutil.copy(pb[1], dicom_dir / "b" / "copy_of_slice")  # same SOPInstanceUID
    manifest, counts = discover(dicom_dir)
    assert counts == {
        "n_files": 12 + 11 + 2 + 1,
        "n_dicom": 12 + 10 + 1,
        "n_not_dicom": 2,
        "n_unreadable": 1,
        "n_non_image": 0,
        "n_duplicates": 1,
        "n_series": 2,
    }
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    rows = manifest.set_index("series_uid")
    assert rows.loc[a.series_uid, "status"] == "ok"
    assert rows.loc[a.series_uid, "n_files"] == 12
    assert rows.loc[b.series_uid, ["status", "reason"]].tolist() == ["excluded", "unreadable"]
    assert rows.loc[b.series_uid, "n_files"] == 11  # the copy counts once
    assert rows.loc[b.series_uid, "n_duplicates"] == 1


def test_parallel_discover_equals_serial(write_series, dicom_dir: Path) -> None:
    for i in range(3):
        write_series(f"s{i}", seed=i)
    m1, c1 = discover(dicom_dir, workers=1)
    m2, c2 = discover(dicom_dir, workers=2)
    pd.testing.assert_frame_equal(m1, m2)
    assert c1 == c2


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        discover(tmp_path / "nope")


def test_assign_batches_sorted_and_chunked() -> None:
    manifest = pd.DataFrame({"series_uid": ["1.5", "1.2", "1.9", "1.10", "1.3"]})
    out = assign_batches(manifest, 2)
    assert out["series_uid"].tolist() == ["1.10", "1.2", "1.3", "1.5", "1.9"]
    assert out["batch"].tolist() == ["b0000", "b0000", "b0001", "b0001", "b0002"]
    assert assign_batches(manifest, 10)["batch"].unique().tolist() == ["b0000"]
    with pytest.raises(ValueError):
        assign_batches(manifest, 0)


def test_assign_batches_widens_ids_past_9999() -> None:
    manifest = pd.DataFrame({"series_uid": [f"{i:06d}" for i in range(10001)]})
    assert assign_batches(manifest, 1)["batch"].iloc[-1] == "b10000"


def test_non_utf8_file_names_round_trip_through_parquet(write_series, dicom_dir, tmp_path) -> None:
    from cacflow.dicom.convert import QcConfig, convert_batch
    from cacflow.dicom.discover import decode_path, encode_path
    from cacflow.provenance import write_table
    from cacflow.tables import read_table

    hu, spec, paths = write_series(n=10)
    raw = os.fsdecode(b"latin1_\xe9\xff.dcm")  # not UTF-8: held with surrogate escapes
    paths[0].rename(paths[0].with_name(raw))
    assert decode_path(encode_path(str(dicom_dir / "s" / raw))) == str(dicom_dir / "s" / raw)
    assert encode_path("/data/Müller/1.dcm") == "/data/Müller/1.dcm"
    manifest, _ = discover(dicom_dir)
    write_table(manifest, tmp_path / "manifest.parquet")
    scans = convert_batch(read_table(tmp_path / "manifest.parquet"), tmp_path / "out", QcConfig())
    assert scans.loc[0, "status"] == "ok"
