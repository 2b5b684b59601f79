"""Agatston after slab resampling to 3 mm / 1.5 mm is stable across native slice thickness.

Phantom: a sphere of uniform density in 40 HU soft tissue, sampled analytically at each
native geometry (contiguous slices, thickness = increment = t): a native voxel holds the
volume fraction of the sphere inside it, exact along z (chord overlap) and supersampled
4 x 4 in plane. Native slices tile the same z range for every t, and the sphere centre is
placed at several phases relative to the slices. Each volume is resampled with
:func:`cacflow.resample.slab_resample` to 3 mm / 1.5 mm and scored with
:func:`cacflow.calcium.score_lesions` (Agatston including the increment factor 1.5 / 3).

Stated tolerances, relative to the score from 0.5 mm native slices:
- t in {0.5, 0.75, 1.5} mm (native cells tile the 3 mm slabs exactly): equal to float
  precision, since a slab average of contiguous slab averages is the 3 mm slab average;
- t <= 1.25 mm: within 10 %;
- t <= 3 mm: within 20 % (thick native slices blur the sphere beyond the 3 mm slab, so the
  area above 130 HU grows; Agatston's weight steps amplify it).
And noise that stays below 130 HU never becomes calcium after resampling.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cacflow.calcium import score_lesions
from cacflow.conventions import CALCIUM_THRESHOLD_HU, ScoringConventions
from cacflow.resample import slab_resample
from cacflow.volume import Geometry, Volume

TARGET_THICKNESS_MM, TARGET_INCREMENT_MM = 3.0, 1.5
NATIVE_MM = (0.5, 0.625, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
ALIGNED_MM = (0.5, 0.75, 1.5)
PIXEL_MM, MATRIX, SUPERSAMPLE = 0.5, 40, 4
Z_START_MM, Z_EXTENT_MM = -30.0, 60.0
SOFT_TISSUE_HU = 40.0
SPHERES = ((3.0, 600.0), (4.0, 800.0))  # (radius mm, HU)
PHASES_MM = (0.0, 0.4, 0.75, 1.1)  # sphere centre z relative to the first slab edges
TOL_FINE, TOL_ALL, FINE_MAX_MM = 0.10, 0.20, 1.25


def sphere_volume(t: float, radius: float, hu: float, centre_z: float) -> Volume:
    """The sphere (centre (0, 0, centre_z) mm) on contiguous native slices of ``t`` mm."""
    n = round(Z_EXTENT_MM / t)
    c = (np.arange(MATRIX) - (MATRIX - 1) / 2) * PIXEL_MM
    sub = ((np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5) * PIXEL_MM
    xs = (c[:, None] + sub[None, :]).ravel()
    half_chord = np.sqrt(np.clip(radius**2 - xs[:, None] ** 2 - xs[None, :] ** 2, 0, None))
    lo = (Z_START_MM + t * np.arange(n))[:, None, None]
    overlap = np.minimum(lo + t, centre_z + half_chord) - np.maximum(lo, centre_z - half_chord)
    frac = (np.clip(overlap, 0, None) / t).reshape(n, MATRIX, SUPERSAMPLE, MATRIX, SUPERSAMPLE)
    arr = SOFT_TISSUE_HU + (hu - SOFT_TISSUE_HU) * frac.mean(axis=(2, 4))
    g = Geometry((c[0], c[0], Z_START_MM + t / 2), (PIXEL_MM, PIXEL_MM, t), slice_thickness_mm=t)
    return Volume(arr.astype(np.float32), g)


def resampled_agatston(t: float, radius: float, hu: float, centre_z: float) -> float:
    vol = slab_resample(
        sphere_volume(t, radius, hu, centre_z), TARGET_THICKNESS_MM, TARGET_INCREMENT_MM
    )
    assert vol.geometry.slice_thickness_mm == TARGET_THICKNESS_MM
    labels = np.ones(vol.array.shape, dtype=np.uint8)
    les = score_lesions(vol.array, vol.geometry, labels, ScoringConventions())
    assert len(les) == 1
    return float(les.loc[0, "agatston"])


def test_phantom_volume_fraction_is_exact() -> None:
    # the voxel volumes sum to the sphere volume (in-plane supersampling error < 1 %)
    for t in (0.5, 3.0):
        vol = sphere_volume(t, 3.0, 1040.0, 0.4)
        excess = (vol.array - SOFT_TISSUE_HU) / 1000.0
        measured = excess.sum() * PIXEL_MM * PIXEL_MM * t
        assert measured == pytest.approx(4 / 3 * np.pi * 27, rel=0.01)


@pytest.mark.parametrize(("radius", "hu"), SPHERES)
@pytest.mark.parametrize("centre_z", PHASES_MM)
def test_agatston_stable_across_native_thickness(radius: float, hu: float, centre_z: float) -> None:
    scores = {t: resampled_agatston(t, radius, hu, centre_z) for t in NATIVE_MM}
    ref = scores[0.5]
    assert ref > 0
    for t, s in scores.items():
        if t in ALIGNED_MM:
            assert s == pytest.approx(ref, rel=1e-6), t
        tol = TOL_FINE if t <= FINE_MAX_MM else TOL_ALL
        assert abs(s / ref - 1) <= tol, (t, s, ref)


@pytest.mark.parametrize("t", NATIVE_MM)
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_noise_below_threshold_never_becomes_calcium(t: float, dtype: type) -> None:
    rng = np.random.default_rng(round(t * 1000))
    n = round(Z_EXTENT_MM / t)
    ceiling = CALCIUM_THRESHOLD_HU - (1 if dtype is np.int16 else 1e-3)
    arr = np.clip(rng.normal(90.0, 60.0, size=(n, 24, 24)), -1024, ceiling).astype(dtype)
    assert (arr >= ceiling).mean() > 0.2  # a large share of voxels sits right at the ceiling
    g = Geometry((0.0, 0.0, 0.0), (PIXEL_MM, PIXEL_MM, t), slice_thickness_mm=t)
    out = slab_resample(Volume(arr, g), TARGET_THICKNESS_MM, TARGET_INCREMENT_MM)
    assert out.array.max() < CALCIUM_THRESHOLD_HU
    labels = np.ones(out.array.shape, dtype=np.uint8)
    assert score_lesions(out.array, out.geometry, labels, ScoringConventions()).empty


def test_the_noise_check_can_fail_cubic_interpolation_creates_calcium() -> None:
    # The same kind of noise resampled by cubic interpolation (what slab averaging replaces)
    # overshoots the threshold: the property above is not trivially true.
    rng = np.random.default_rng(1)
    arr = np.clip(rng.normal(90.0, 60.0, size=(60, 24, 24)), -1024, 129.0)
    cubic = ndimage.zoom(arr, (1 / 3, 1, 1), order=3)
    assert cubic.max() >= CALCIUM_THRESHOLD_HU
