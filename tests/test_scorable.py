"""Not-scorable checks on real series, and how the verdicts reach scans.parquet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cacflow.conventions import Reason
from cacflow.heart import find_heart
from cacflow.insert import crop_fov
from cacflow.resample import slab_resample
from cacflow.scorable import ScorableConfig, assess, assessment_table
from cacflow.tables import apply_scorability
from cacflow.volume import Geometry, Volume

CFG = ScorableConfig()


def _analysis(vol: Volume) -> Volume:
    return slab_resample(vol, 3.0, 1.5)


def test_soft_kernel_thin_slices_are_scorable(real_series) -> None:
    v = assess(_analysis(real_series("lidc_1mm_D").volume), CFG, "s", 3.0)
    assert v.reason is None and v.status == "ok"
    assert 5.0 < v.noise_hu < CFG.max_noise_hu and 30 < v.blood_pool_hu < 55


def test_five_mm_slices_are_scored_natively_with_a_note(real_series) -> None:
    vol = _analysis(real_series("a0001_5mm_B").volume)
    assert vol.geometry.slice_thickness_mm == pytest.approx(5.0)  # not re-sliced to 3 mm
    v = assess(vol, CFG, "s", 3.0)
    assert v.reason is None
    assert "native 5 mm slices thicker than the analysis 3 mm" in v.detail


def test_lung_kernel_is_not_scorable_for_noise(real_series) -> None:
    v = assess(_analysis(real_series("a0001_5mm_L").volume), CFG, "s", 3.0)
    assert v.reason is Reason.NOISE and v.status == "not_scorable"
    assert "kernel L" in v.detail and v.noise_hu > 30


def test_eight_mm_slices_are_not_scorable(real_series) -> None:
    v = assess(_analysis(real_series("a0002_8mm_B40f").volume), CFG, "s", 3.0)
    assert v.reason is Reason.THICK_SLICES
    looser = ScorableConfig(max_slice_thickness_mm=8.0)
    assert assess(_analysis(real_series("a0002_8mm_B40f").volume), looser, "s", 3.0).reason is None


def test_contrast_enhanced_blood_is_not_scorable(real_series) -> None:
    """Iodine in the blood pool, painted into the heart's chambers of a real scan."""
    vol = real_series("lidc_1mm_D").volume
    heart = find_heart(vol)
    blood = heart.full_mask(vol.array.shape) & (vol.array > 0) & (vol.array < 90)
    enhanced = Volume(np.where(blood, vol.array + 250.0, vol.array), vol.geometry, vol.meta)
    v = assess(_analysis(enhanced), CFG, "s", 3.0)
    assert v.reason is Reason.CONTRAST and v.blood_pool_hu > CFG.max_blood_pool_hu


def test_heart_cut_by_the_field_of_view_is_not_scorable(real_series) -> None:
    series = real_series("a0001_5mm_B")
    small = crop_fov(series, find_heart(series.volume), 90.0).volume
    v = assess(small, CFG, "s", 3.0)
    assert v.reason in (Reason.HEART_NOT_IN_FOV, Reason.HEART_NOT_FOUND)
    whole = crop_fov(series, find_heart(series.volume), 200.0).volume
    assert assess(whole, CFG, "s", 3.0).reason is None


def test_no_heart_found_in_a_water_phantom() -> None:
    water = Volume(
        np.zeros((20, 64, 64), np.float32),
        Geometry((0, 0, 0), (3.0, 3.0, 3.0), slice_thickness_mm=3.0),
    )
    assert assess(water, CFG, "s", 3.0).reason is Reason.HEART_NOT_FOUND


def test_unknown_key_is_named() -> None:
    with pytest.raises(ValueError, match="scorable.max_noise"):
        ScorableConfig.from_config({"max_noise": 3})


def test_verdicts_turn_ok_series_not_scorable_and_keep_notes() -> None:
    from cacflow.scorable import Assessment

    scans = pd.DataFrame(
        {
            "series_uid": ["a", "b", "c"],
            "status": ["ok", "ok", "excluded"],
            "reason": [None, None, "localizer"],
            "reason_detail": ["axial primary reformat", None, "one image"],
        }
    )
    verdicts = assessment_table(
        [
            Assessment("a", None, "native 5 mm slices ...", 7.0, 40.0),
            Assessment("b", Reason.NOISE, "noise 40 HU > 25", 40.0, 41.0),
        ]
    )
    out = apply_scorability(scans, verdicts).set_index("series_uid")
    assert out.loc["a", "status"] == "ok"
    assert out.loc["a", "reason_detail"] == "axial primary reformat; native 5 mm slices ..."
    assert out.loc["b", "status"] == "not_scorable" and out.loc["b", "reason"] == "noise"
    assert out.loc["c", "status"] == "excluded" and np.isnan(out.loc["c", "noise_hu"])
    assert out.loc["b", "noise_hu"] == 40.0


def test_metal_near_the_heart_is_noted_and_the_scan_stays_scorable(real_series) -> None:
    """A stent-like rod (2,500 HU) painted on the surface of a real scan's heart: status
    ok, and reason_detail says the score leaves metal out; without it, no note."""
    vol = _analysis(real_series("a0001_5mm_B").volume)
    plain = assess(vol, CFG, "s", 3.0)
    assert plain.reason is None and "metal" not in plain.detail
    heart = find_heart(vol)
    surface = heart.full_mask(vol.array.shape)
    edge = surface & ~np.roll(surface, 1, axis=2)  # the heart's left-to-right edge voxels
    z, y, x = np.argwhere(edge)[len(np.argwhere(edge)) // 2]
    stented = np.array(vol.array, copy=True)
    stented[z, y - 2 : y + 2, x - 1 : x + 1] = 2500.0
    v = assess(Volume(stented, vol.geometry, vol.meta), CFG, "s", 3.0)
    assert v.reason is None
    assert "metal near the heart (peak 2500 HU" in v.detail
