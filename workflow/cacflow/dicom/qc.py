"""Geometry QC of one series: slice order, spacing, gaps, duplicates, tilt.

Slices are ordered by the projection of ImagePositionPatient on the slice normal
(row direction x column direction), never by InstanceNumber or file name, so a series
stored in reverse order gives the same volume. Checks, first failure wins:

1. ``too_few_slices``: fewer than ``min_slices`` images.
2. ``inconsistent_geometry``: missing or invalid orientation, position, spacing or matrix
   (orientation, matrix and pixel spacing are equal within a series by construction).
3. ``not_axial``: the slice normal is more than :data:`AXIAL_MAX_ANGLE_DEG` from the
   patient's head-foot axis (coronal and sagittal series; Agatston is defined on axial
   slices). Oblique axial series within that angle are kept with their true direction
   matrix.
4. ``duplicate_position``: two images (different SOPInstanceUIDs) closer than
   :data:`DUPLICATE_POSITION_MM` along the normal.
5. ``gap``: a distance between neighbours above ``max_gap_factor`` x the median one.
6. ``inconsistent_geometry``: irregular spacing: an image farther than
   :data:`GRID_TOLERANCE` x increment from the uniform grid through the first and last
   image (the volume needs one increment).
7. ``gantry_tilt``: the angle between the slice normal and the direction in which the
   positions advance exceeds ``max_tilt_deg``; with ``gantry_tilt: resample`` the series
   is kept and resampled onto an orthogonal grid instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from cacflow.conventions import Reason

AXIAL_MAX_ANGLE_DEG = 45.0
"""A slice normal farther than this from the patient z axis makes the series not axial."""
DUPLICATE_POSITION_MM = 0.01
"""Two images closer than this along the slice normal (mm) share one position."""
GRID_TOLERANCE = 0.2
"""Largest distance of an image from the uniform slice grid, as a fraction of the increment."""
UNIT_TOLERANCE = 1e-2
"""Largest deviation of the direction cosines from unit length / orthogonality."""

TILT_MODES = ("exclude", "resample")
REFORMAT_MODES = ("keep", "exclude")


@dataclass(frozen=True)
class QcConfig:
    """Conversion QC thresholds (config section ``qc``, same key names)."""

    min_slices: int = 10
    max_gap_factor: float = 1.5
    max_tilt_deg: float = 0.5
    gantry_tilt: str = "exclude"  # 'exclude' | 'resample'
    reformats: str = "keep"  # axial primary reformats (DERIVED\\PRIMARY\\MPR): 'keep' | 'exclude'

    def __post_init__(self) -> None:
        if self.reformats not in REFORMAT_MODES:
            raise ValueError(
                f"qc.reformats must be one of {REFORMAT_MODES}, got {self.reformats!r}"
            )
        if self.gantry_tilt not in TILT_MODES:
            raise ValueError(
                f"qc.gantry_tilt must be one of {TILT_MODES}, got {self.gantry_tilt!r}"
            )
        if self.min_slices < 1:
            raise ValueError(f"qc.min_slices must be >= 1, got {self.min_slices}")
        if self.max_gap_factor <= 1.0:
            raise ValueError(f"qc.max_gap_factor must be > 1, got {self.max_gap_factor}")
        if self.max_tilt_deg < 0.0:
            raise ValueError(f"qc.max_tilt_deg must be >= 0, got {self.max_tilt_deg}")

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> QcConfig:
        """Build from the ``qc`` config mapping; missing keys take the defaults."""
        cfg = dict(cfg or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ValueError(f"config key 'qc.{unknown[0]}' is not a known key")
        return cls(**cfg)


class QcFailure(Exception):
    """A series fails QC: ``reason`` (a :class:`Reason` code) and a detail without identifiers."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Stack:
    """The ordered slice stack of a series that passed QC (LPS, mm).

    ``order[i]`` is the input index of output slice i. ``normal`` = row_dir x col_dir;
    ``step_dir`` the unit direction from the first to the last position. ``increment_mm``
    is the slice distance along the normal (along ``step_dir`` when tilted).
    """

    order: np.ndarray
    origin: np.ndarray
    row_dir: np.ndarray
    col_dir: np.ndarray
    normal: np.ndarray
    step_dir: np.ndarray
    increment_mm: float
    tilt_deg: float


def _unit_frame(orientation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, c = orientation[:3], orientation[3:]
    if (
        abs(np.linalg.norm(r) - 1.0) > UNIT_TOLERANCE
        or abs(np.linalg.norm(c) - 1.0) > UNIT_TOLERANCE
        or abs(float(r @ c)) > UNIT_TOLERANCE
    ):
        raise QcFailure(Reason.INCONSISTENT_GEOMETRY, "ImageOrientationPatient is not orthonormal")
    r = r / np.linalg.norm(r)
    c = c / np.linalg.norm(c)
    n = np.cross(r, c)
    return r, c, n / np.linalg.norm(n)


def angle_deg(u: np.ndarray, v: np.ndarray) -> float:
    """Angle between two lines (unsigned directions), degrees in [0, 90]."""
    cos = abs(float(u @ v)) / (np.linalg.norm(u) * np.linalg.norm(v))
    return math.degrees(math.acos(min(1.0, cos)))


def check_present(
    orientation: Any, positions: np.ndarray, pixel_spacing: Any, rows: Any, columns: Any
) -> None:
    """Every image has the geometry a volume needs (positions (n, 3), NaN when absent).

    Orientation, matrix and pixel spacing are shared by construction (they are part of
    the series grouping key, :mod:`cacflow.dicom.grouping`).
    """
    missing = int(np.isnan(positions).any(axis=1).sum())
    if missing:
        raise QcFailure(
            Reason.INCONSISTENT_GEOMETRY,
            f"ImagePositionPatient missing in {missing} of {len(positions)} images",
        )
    for name, value in (
        ("ImageOrientationPatient", orientation),
        ("PixelSpacing", pixel_spacing),
        ("Rows", rows),
        ("Columns", columns),
    ):
        if value is None:
            raise QcFailure(Reason.INCONSISTENT_GEOMETRY, f"{name} missing")


def order_stack(orientation: np.ndarray, positions: np.ndarray, qc: QcConfig) -> Stack:
    """Order ``positions`` (n, 3; LPS mm) of images with ``orientation`` (6,) and check them.

    Raises :class:`QcFailure` (checks 1 and 3-7 of the module docstring).
    """
    n = len(positions)
    if n < qc.min_slices:
        raise QcFailure(Reason.TOO_FEW_SLICES, f"{n} images < qc.min_slices {qc.min_slices}")
    r, c, normal = _unit_frame(np.asarray(orientation, dtype=float))
    off_axis = angle_deg(normal, np.array([0.0, 0.0, 1.0]))
    if off_axis > AXIAL_MAX_ANGLE_DEG:
        raise QcFailure(Reason.NOT_AXIAL, f"slice normal {off_axis:.1f} deg from the z axis")
    proj = positions @ normal
    order = np.argsort(proj, kind="stable")
    proj = proj[order]
    pos = positions[order]
    if n < 2:
        return Stack(order, pos[0], r, c, normal, normal, 0.0, 0.0)
    d = np.diff(proj)
    n_dup = int(np.sum(d < DUPLICATE_POSITION_MM))
    if n_dup:
        raise QcFailure(Reason.DUPLICATE_POSITION, f"{n_dup} positions hold more than one image")
    step = pos[-1] - pos[0]
    step_dir = step / np.linalg.norm(step)
    along = (pos - pos[0]) @ step_dir
    gaps = np.diff(along)
    median = float(np.median(gaps))
    worst = float(gaps.max())
    if worst > qc.max_gap_factor * median:
        raise QcFailure(
            Reason.GAP,
            f"{int(np.sum(gaps > qc.max_gap_factor * median))} gap(s), largest {worst:.3g} mm "
            f"> {qc.max_gap_factor:g} x median spacing {median:.3g} mm",
        )
    grid = pos[0] + np.outer(np.arange(n), step / (n - 1))
    deviation = float(np.linalg.norm(pos - grid, axis=1).max())
    increment_along = float(np.linalg.norm(step)) / (n - 1)
    if deviation > GRID_TOLERANCE * increment_along:
        raise QcFailure(
            Reason.INCONSISTENT_GEOMETRY,
            f"irregular slice spacing: an image is {deviation:.3g} mm off the uniform grid",
        )
    tilt = angle_deg(step_dir, normal)
    if tilt > qc.max_tilt_deg and qc.gantry_tilt == "exclude":
        raise QcFailure(
            Reason.GANTRY_TILT, f"gantry tilt {tilt:.2f} deg > qc.max_tilt_deg {qc.max_tilt_deg:g}"
        )
    increment = increment_along if tilt > qc.max_tilt_deg else (proj[-1] - proj[0]) / (n - 1)
    return Stack(order, pos[0], r, c, normal, step_dir, float(increment), tilt)
