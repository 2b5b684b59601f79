"""Exact scores of the painted calcifications at native geometry (CONTRACT §4 definitions).

Computed from each calcification's own voxel set and HU values, not by labelling the
image: the phantom guarantees (see :mod:`cacflow.synth.phantom`) that each set is exactly
one 26-connected component of voxels >= 130 HU, so a correct connected-component pipeline
on the native image finds the same numbers.

Per lesion, with pixel area A (mm^2) and slice increment d (mm):

- Agatston = (d / 3 mm) x sum over slices of (voxels in the slice x A) x weight(peak HU of
  the lesion in that slice), weights 1..4 for [130, 200), [200, 300), [300, 400), >= 400 HU;
- volume = voxels x A x d (mm^3);
- mass = 0.001 x sum(HU) x A x d (mg).

LM lesions count to LAD; ``total`` = LAD + LCX + RCA; TAC (aortic) lesions count nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cacflow.conventions import (
    AGATSTON_REFERENCE_THICKNESS_MM,
    AGATSTON_WEIGHT_EDGES_HU,
    ARTERIES,
    MASS_CALIBRATION,
    TOTAL,
)

ARTERY_OF_LABEL = {"LM": "LAD", "LAD": "LAD", "LCX": "LCX", "RCA": "RCA"}
"""Reported artery of each coronary label; other labels (TAC) are not coronary."""


@dataclass(frozen=True)
class LesionTruth:
    agatston: float
    volume_mm3: float
    mass_mg: float
    peak_hu: int
    n_voxels: int


def density_weight(peak_hu: int) -> int:
    """Agatston weight of a peak HU (bands closed on the left); 0 below 130 HU."""
    return sum(1 for edge in AGATSTON_WEIGHT_EDGES_HU if peak_hu >= edge)


def lesion_truth(
    slice_index: np.ndarray, hu: np.ndarray, pixel_area_mm2: float, increment_mm: float
) -> LesionTruth:
    """Scores of one lesion from its voxels' slice indices and integer HU values."""
    slice_index = np.asarray(slice_index)
    hu = np.asarray(hu, dtype=np.int64)
    agatston = 0.0
    for k in np.unique(slice_index):
        in_slice = hu[slice_index == k]
        agatston += in_slice.size * pixel_area_mm2 * density_weight(int(in_slice.max()))
    agatston *= increment_mm / AGATSTON_REFERENCE_THICKNESS_MM
    voxel_mm3 = pixel_area_mm2 * increment_mm
    return LesionTruth(
        agatston=agatston,
        volume_mm3=hu.size * voxel_mm3,
        mass_mg=MASS_CALIBRATION * float(hu.sum()) * voxel_mm3,
        peak_hu=int(hu.max()),
        n_voxels=int(hu.size),
    )


def artery_rows(lesions: list[tuple[str, LesionTruth]]) -> list[dict[str, float | int | str]]:
    """Per-artery sums (LAD, LCX, RCA, total) of (label, truth) pairs; non-coronary skipped.

    Every artery gets a row, with zeros when it holds no lesion.
    """
    rows: dict[str, dict[str, float | int | str]] = {
        a: {"artery": a, "agatston": 0.0, "volume_mm3": 0.0, "mass_mg": 0.0, "n_lesions": 0}
        for a in (*ARTERIES, TOTAL)
    }
    for label, t in lesions:
        artery = ARTERY_OF_LABEL.get(label)
        if artery is None:
            continue
        r = rows[artery]
        r["agatston"] = float(r["agatston"]) + t.agatston
        r["volume_mm3"] = float(r["volume_mm3"]) + t.volume_mm3
        r["mass_mg"] = float(r["mass_mg"]) + t.mass_mg
        r["n_lesions"] = int(r["n_lesions"]) + 1
    for key in ("agatston", "volume_mm3", "mass_mg", "n_lesions"):
        rows[TOTAL][key] = sum(rows[a][key] for a in ARTERIES)  # type: ignore[misc]
    return list(rows.values())
