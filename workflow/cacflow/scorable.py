"""Can this analysis image be scored reliably? The ``not_scorable`` checks (CONTRACT §5).

A series that was read correctly (``ok`` after conversion) may still be one that no
threshold-based calcium score should be trusted on. Each check below is measured on the
analysis image (after resampling) inside the heart found by :func:`cacflow.heart.find_heart`;
the first that fails gives the ``reason`` (a :class:`~cacflow.conventions.Reason` code) and a
``reason_detail`` with the measured value and the limit. Limits are the config section
``scorable`` (defaults in the schema; :class:`ScorableConfig` mirrors them):

1. ``thick_slices``: native slices thicker than ``max_slice_thickness_mm`` (default 5 mm).
   Slices up to that limit but thicker than the analysis thickness are scored on their
   native slices (slab averaging cannot make them thinner) with the usual Agatston factor
   increment / 3, and ``reason_detail`` says so: partial volume lowers the peak HU of small
   lesions, so such scores are biased low for small plaques.
2. ``heart_not_found``: no heart (no lungs, or no mediastinal soft tissue).
3. ``heart_not_in_fov``: the heart reaches the image border, the reconstruction circle or
   a top slice through the heart's body (section >= 80 % of the largest:
   :data:`cacflow.heart.TOP_CUT_AREA_FRACTION`; a gated scan that starts at or just above
   the heart's upper border is in view) (``require_heart_in_fov``, default true).
4. ``contrast``: median HU of the heart's core above ``max_blood_pool_hu`` (default 100 HU;
   non-contrast blood is 30-55 HU, iodinated blood 150-400 HU): contrast medium above the
   130 HU threshold would be counted as calcium.
5. ``noise``: image noise (SD in a 7 mm in-plane window, median over the heart's core) above
   ``max_noise_hu`` (default 30 HU). The 130 HU threshold lies (130 - 40) / SD standard
   deviations above non-contrast blood: at 30 HU that is 3 SD, about the noise of a low-dose
   gated calcium scan (15-25 HU at 3 mm), which the threshold was made for; sharp and lung
   kernels (SD 37-45 HU at 3-5 mm, measured on the shared real series) put thousands of
   noise voxels above it, so they are not scored rather than given a confident number.

A scorable image with metal round the heart (a voxel at or above
:data:`cacflow.conventions.METAL_MIN_HU` within :data:`METAL_NEAR_HEART_MM` of it, inside
the mediastinum: a stent, wire, clip or lead) keeps status ``ok`` with a note in
``reason_detail``: the voxel methods leave metal components out, and calcium hidden in
the metal's blooming is not counted, so their score is a lower bound there (``direct``
scores slices and may count the metal).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cacflow.conventions import Reason, Status
from cacflow.volume import Volume

METAL_NEAR_HEART_MM = 8.0
"""Distance (mm) from the heart within which metal earns the note (the coronary arteries
run on the heart's surface)."""

SCORABLE_FILE = "scorable.parquet"
"""Written by ``cacflow resample`` beside the analysis images of a batch."""
SCORABLE_COLUMNS = ("series_uid", "status", "reason", "reason_detail", "noise_hu", "blood_pool_hu")


@dataclass(frozen=True)
class ScorableConfig:
    """Limits of the not-scorable checks (config section ``scorable``, same key names)."""

    max_slice_thickness_mm: float = 5.0
    require_heart_in_fov: bool = True
    max_blood_pool_hu: float = 100.0
    max_noise_hu: float = 30.0

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> ScorableConfig:
        """Build from the ``scorable`` config mapping; missing keys take the defaults."""
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"config key 'scorable.{unknown[0]}' is not a known key")
        return cls(**cfg)


@dataclass(frozen=True)
class Assessment:
    """The verdict on one analysis image; ``reason`` is None when it is scorable."""

    series_uid: str
    reason: Reason | None
    detail: str
    noise_hu: float = float("nan")
    blood_pool_hu: float = float("nan")

    @property
    def status(self) -> str:
        return str(Status.OK if self.reason is None else Status.NOT_SCORABLE)

    def row(self) -> dict[str, Any]:
        return {
            "series_uid": self.series_uid,
            "status": self.status,
            "reason": None if self.reason is None else str(self.reason),
            "reason_detail": self.detail,
            "noise_hu": self.noise_hu,
            "blood_pool_hu": self.blood_pool_hu,
        }


def native_thickness_mm(vol: Volume) -> float:
    """Native slice thickness (mm) of an analysis image: the sidecar's record of the
    converted series, else the image's own."""
    return float(vol.meta.get("native_thickness_mm") or vol.geometry.slice_thickness_mm)


def assess(
    vol: Volume,
    cfg: ScorableConfig,
    series_uid: str,
    analysis_mm: float | None,
    heart_cache: Path | None = None,
) -> Assessment:
    """Run checks 1-5 of the module docstring on the analysis image ``vol`` (HU).

    ``analysis_mm``: the configured analysis slice thickness (None: native slices kept).
    ``heart_cache``: where the heart found here is saved for the methods
    (:func:`cacflow.heart.save_heart`); not written for series that fail check 1.
    """
    from cacflow.heart import blood_pool_hu, find_heart, noise_hu, save_heart

    native = native_thickness_mm(vol)
    if native > cfg.max_slice_thickness_mm + 1e-6:
        return Assessment(
            series_uid,
            Reason.THICK_SLICES,
            f"native slices {native:g} mm > scorable.max_slice_thickness_mm "
            f"{cfg.max_slice_thickness_mm:g}",
        )
    notes = []
    if analysis_mm is not None and native > analysis_mm + 1e-6:
        notes.append(
            f"native {native:g} mm slices thicker than the analysis {analysis_mm:g} mm: "
            "scored on the native slices, Agatston x increment/3"
        )
    heart = find_heart(vol)
    if heart_cache is not None:
        save_heart(heart, tuple(vol.array.shape), heart_cache)
    if heart is None:
        return Assessment(series_uid, Reason.HEART_NOT_FOUND, "no lungs or mediastinum found")
    noise, blood = noise_hu(vol, heart), blood_pool_hu(vol, heart)
    measured = {"noise_hu": round(noise, 2), "blood_pool_hu": round(blood, 2)}
    if cfg.require_heart_in_fov and heart.touches_fov_edge():
        detail = "the heart reaches the edge of the field of view, or the top slice cuts its body"
        return Assessment(series_uid, Reason.HEART_NOT_IN_FOV, detail, **measured)
    if blood > cfg.max_blood_pool_hu:
        detail = f"blood pool {blood:.0f} HU > scorable.max_blood_pool_hu {cfg.max_blood_pool_hu:g}"
        return Assessment(series_uid, Reason.CONTRAST, detail, **measured)
    if noise > cfg.max_noise_hu:
        kernel = vol.meta.get("kernel")
        detail = f"noise {noise:.1f} HU > scorable.max_noise_hu {cfg.max_noise_hu:g}" + (
            f" (kernel {kernel})" if kernel else ""
        )
        return Assessment(series_uid, Reason.NOISE, detail, **measured)
    metal = metal_near_heart(vol, heart)
    if metal is not None:
        notes.append(
            f"metal near the heart (peak {metal:.0f} HU: stent, wire or clip?): voxel "
            "methods leave it out, calcium under its blooming is not counted"
        )
    return Assessment(series_uid, None, "; ".join(notes), **measured)


def metal_near_heart(vol: Volume, heart: Any) -> float | None:
    """The peak HU of the metal (>= :data:`cacflow.conventions.METAL_MIN_HU`) within
    :data:`METAL_NEAR_HEART_MM` of ``heart`` (a :class:`cacflow.heart.Heart` of ``vol``)
    inside its mediastinal region; None when there is none."""
    import numpy as np

    from cacflow.conventions import METAL_MIN_HU
    from cacflow.heart import dilate, upsample

    hu = np.asarray(vol.array)
    if float(hu.max()) < METAL_MIN_HU:
        return None
    near = dilate(heart.mask, METAL_NEAR_HEART_MM, heart.coarse_mm) & heart.region
    peak = float(hu[upsample(near, heart.factors, hu.shape)].max(initial=-np.inf))
    return peak if peak >= METAL_MIN_HU else None


def assessment_table(rows: list[Assessment]) -> Any:
    """The batch's assessments as a DataFrame with :data:`SCORABLE_COLUMNS`."""
    import pandas as pd

    df = pd.DataFrame([r.row() for r in rows], columns=list(SCORABLE_COLUMNS))
    for c in ("noise_hu", "blood_pool_hu"):
        df[c] = df[c].astype(float)
    return df
