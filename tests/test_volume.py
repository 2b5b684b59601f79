"""NIfTI round trip keeps the array, the LPS geometry and the sidecar (no identifiers)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cacflow.volume import Geometry, Volume, read_volume, write_volume


def test_round_trip_preserves_geometry_and_values(tmp_path) -> None:
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 50
    # oblique-free but flipped axes: x along -L, z along -S
    geom = Geometry(
        origin=(12.5, -30.0, 101.0),
        spacing=(0.75, 0.8, 2.5),
        direction=(-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
        slice_thickness_mm=3.0,
    )
    path = tmp_path / "s.nii"
    write_volume(Volume(arr, geom, {"series_uid": "1.2.3", "kernel": "B30f"}), path)
    back = read_volume(path)
    np.testing.assert_array_equal(back.array, arr)
    np.testing.assert_allclose(back.geometry.origin, geom.origin)
    np.testing.assert_allclose(back.geometry.spacing, geom.spacing)
    np.testing.assert_allclose(back.geometry.direction, geom.direction)
    assert back.geometry.slice_thickness_mm == 3.0
    assert back.meta == {"series_uid": "1.2.3", "kernel": "B30f"}
    assert json.loads(path.with_suffix(".json").read_text())["kernel"] == "B30f"
    assert not list(tmp_path.glob("*.tmp*"))


def test_index_world_mapping_is_inverse() -> None:
    geom = Geometry(
        origin=(1.0, 2.0, 3.0),
        spacing=(0.5, 0.6, 1.5),
        direction=(0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    )
    ijk = np.array([[2, 3, 4], [0, 0, 0]], dtype=float)
    xyz = geom.index_to_world(ijk)
    # voxel (2,3,4): x-axis is +P (0.5 mm), y-axis is +L (0.6 mm), z-axis is -S (1.5 mm)
    assert xyz[0] == pytest.approx([1.0 + 3 * 0.6, 2.0 + 2 * 0.5, 3.0 - 4 * 1.5])
    np.testing.assert_allclose(geom.world_to_index(xyz), ijk)


def test_read_geometry_matches_read_volume(tmp_path) -> None:
    from cacflow.volume import read_geometry

    geom = Geometry(origin=(1.0, 2.0, 3.0), spacing=(0.5, 0.5, 1.5), slice_thickness_mm=3.0)
    path = tmp_path / "g.nii"
    write_volume(Volume(np.zeros((3, 4, 5), np.float32), geom), path)
    assert read_geometry(path) == read_volume(path).geometry


def test_full_precision_spacing_survives_float32_nifti(tmp_path) -> None:
    # 0.7 mm and 1/3 mm are not representable in float32; areas must not drift by ~1e-8.
    geom = Geometry(
        origin=(-174.3, -174.3, -60.123456789),
        spacing=(0.7, 0.7, 1.0 / 3.0),
        slice_thickness_mm=1.0,
    )
    assert float(np.float32(0.7)) != 0.7
    path = tmp_path / "p.nii"
    write_volume(Volume(np.zeros((2, 3, 4), np.int16), geom), path)
    back = read_volume(path).geometry
    assert back.spacing == geom.spacing
    assert back.origin == geom.origin
    # a sidecar that does not describe the file is not trusted: the header wins
    side = json.loads(path.with_suffix(".json").read_text())
    side["geometry"]["spacing"] = [2.5, 2.5, 3.0]
    path.with_suffix(".json").write_text(json.dumps(side))
    assert read_volume(path).geometry.spacing[0] == pytest.approx(0.7, rel=1e-6)
