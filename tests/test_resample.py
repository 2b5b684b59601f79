"""Slab-average resampling: hand-computed weights, identity, z extent, no false calcium."""

from __future__ import annotations

import numpy as np
import pytest

from cacflow.conventions import CALCIUM_THRESHOLD_HU
from cacflow.resample import slab_resample, slab_weights
from cacflow.volume import Geometry, Volume


def _volume(arr: np.ndarray, increment: float, thickness: float | None = None) -> Volume:
    geom = Geometry(
        origin=(-10.0, 20.0, -100.0),
        spacing=(0.7, 0.7, increment),
        slice_thickness_mm=thickness if thickness is not None else increment,
    )
    return Volume(arr, geom, {"series_uid": "x"})


def test_weights_one_mm_to_three_by_one_and_a_half() -> None:
    # Native cells [k-0.5, k+0.5] mm; first slab [-0.5, 2.5] -> cells 0, 1, 2 equally;
    # second slab [1.0, 4.0] -> half of cell 1, cells 2, 3, half of cell 4.
    offsets, plan = slab_weights(10, 1.0, 3.0, 1.5)
    np.testing.assert_allclose(offsets[:3], [1.0, 2.5, 4.0])
    idx, w = plan[0]
    assert list(idx) == [0, 1, 2]
    np.testing.assert_allclose(w, [1 / 3, 1 / 3, 1 / 3])
    idx, w = plan[1]
    assert list(idx) == [1, 2, 3, 4]
    np.testing.assert_allclose(w, [0.5 / 3, 1 / 3, 1 / 3, 0.5 / 3])
    # Coverage [-0.5, 9.5] mm holds slabs starting every 1.5 mm while they end <= 9.5.
    assert len(offsets) == 5  # slab ends 2.5, 4.0, 5.5, 7.0, 8.5 (10.0 would overrun)


def test_identity_when_native_equals_target() -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 1500, size=(12, 8, 9)).astype(np.int16)
    vol = _volume(arr, 3.0)
    out = slab_resample(vol, 3.0, 3.0)
    np.testing.assert_array_equal(out.array, arr.astype(np.float32))
    assert out.geometry == vol.geometry
    overlapping = _volume(arr, 1.5, thickness=3.0)
    np.testing.assert_array_equal(slab_resample(overlapping, 3.0, 1.5).array, arr)


def test_three_mm_native_to_three_mm_every_three_is_not_shifted() -> None:
    arr = np.arange(6 * 2 * 2, dtype=np.int16).reshape(6, 2, 2)
    vol = _volume(arr, 3.0, thickness=2.0)  # thickness differs: not the identity path
    out = slab_resample(vol, 3.0, 3.0)
    np.testing.assert_allclose(out.array, arr)
    np.testing.assert_allclose(out.geometry.origin, vol.geometry.origin)


def test_values_and_origin_of_resampled_slices() -> None:
    arr = np.zeros((10, 1, 1), dtype=np.float32)
    arr[:, 0, 0] = np.arange(10) * 10.0
    out = slab_resample(_volume(arr, 1.0), 3.0, 1.5)
    # slab 0: mean(0, 10, 20) = 10; slab 1: (0.5*10 + 20 + 30 + 0.5*40)/3 = 25
    np.testing.assert_allclose(out.array[:2, 0, 0], [10.0, 25.0], rtol=1e-6)
    assert out.geometry.spacing[2] == 1.5
    assert out.geometry.slice_thickness_mm == 3.0
    # first output centre is 1 mm above the first native centre, along +z here
    assert out.geometry.origin[2] == pytest.approx(-100.0 + 1.0)


def test_origin_moves_along_the_slice_normal() -> None:
    # Slices stacked along -z (feet first): the normal is (0, 0, -1).
    arr = np.zeros((9, 2, 2), dtype=np.float32)
    geom = Geometry(
        origin=(0.0, 0.0, 50.0),
        spacing=(1.0, 1.0, 1.0),
        direction=(1, 0, 0, 0, 1, 0, 0, 0, -1),
        slice_thickness_mm=1.0,
    )
    out = slab_resample(Volume(arr, geom), 3.0, 1.5)
    assert out.geometry.origin[2] == pytest.approx(49.0)


@pytest.mark.parametrize("native", [0.5, 0.625, 1.0, 1.25, 2.0, 2.5])
def test_noise_below_threshold_never_becomes_calcium(native: float) -> None:
    rng = np.random.default_rng(int(native * 1000))
    arr = rng.uniform(-200, CALCIUM_THRESHOLD_HU - 0.5, size=(int(60 / native), 16, 16))
    out = slab_resample(_volume(arr.astype(np.float32), native), 3.0, 1.5)
    assert out.array.max() < CALCIUM_THRESHOLD_HU
    assert out.array.min() >= arr.min() - 1e-3


def test_mean_is_preserved_for_a_constant_volume() -> None:
    arr = np.full((30, 4, 4), 42.0, dtype=np.float32)
    out = slab_resample(_volume(arr, 0.5), 3.0, 1.5)
    np.testing.assert_allclose(out.array, 42.0, rtol=1e-6)
    assert np.all(np.isfinite(out.array))
