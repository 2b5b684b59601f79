"""The scoring engine: calcium, lesions, Agatston / volume / mass (CONTRACT §4).

One code path scores the reference standard and every method alike: a label mask
(uint8, :class:`cacflow.conventions.Label` values, 0 background) on the grid of an HU
image. Arrays are in axis order (z, y, x); positions are mm in the DICOM patient frame
(LPS); HU are Hounsfield units.

Definitions (each a field of :class:`~cacflow.conventions.ScoringConventions`):

- **Calcium**: voxels with HU >= ``threshold_hu``.
- **Lesion**: for each label value present, a connected component of
  ``(labels == value) & calcium``. With a 3D connectivity (6, 18, 26) a lesion spans
  slices. With an in-slice connectivity (4, 8) each slice is labelled on its own, so a
  lesion is one 2D component in one slice (a calcification crossing three slices counts
  as three lesions; totals are unchanged, only per-lesion sizes, the minimum lesion size
  and lesion counts differ).
- **Minimum lesion size** (``min_lesion``), applied per lesion after labelling: a lesion
  counts only when it has at least ``voxels`` voxels, its largest in-slice cross-section
  is at least ``area_mm2`` and its volume at least ``volume_mm3``.
- **Agatston**: for every slice a lesion touches, its area in that slice (mm^2) times the
  weight of its peak HU in that slice (:func:`agatston_weight`), summed over slices, times
  :func:`increment_factor`.
- **Volume**: voxel count x voxel volume, the voxel z size being the slice increment.
- **Mass** (mg): ``mass_calibration`` x sum of HU over the lesion x voxel volume.
- **Lesion position** (``x, y, z``): the centre of the lesion's peak-HU voxel (LPS mm);
  ties go to the first voxel in (z, y, x) order. Unlike a centroid it always lies inside
  the lesion.
"""

from __future__ import annotations

import cc3d
import numpy as np
import pandas as pd
from scipy import ndimage

from cacflow.conventions import (
    AGATSTON_REFERENCE_THICKNESS_MM,
    AGATSTON_WEIGHT_EDGES_HU,
    ARTERIES,
    METAL_MIN_HU,
    REGIONS,
    TOTAL,
    IncrementFactor,
    Label,
    ScoringConventions,
)
from cacflow.volume import Geometry

CONNECTIVITY_3D = (6, 18, 26)
CONNECTIVITY_2D = (4, 8)

LESION_COLUMNS = (
    "label",
    "artery",
    "coronary",
    "agatston",
    "volume_mm3",
    "mass_mg",
    "peak_hu",
    "n_voxels",
    "x",
    "y",
    "z",
)
"""Columns of :func:`score_lesions` (one row per lesion)."""

ARTERY_SCORE_COLUMNS = ("artery", "agatston", "volume_mm3", "mass_mg", "n_lesions")
"""Columns of :func:`artery_scores`."""

_SIZE_RTOL = 1e-9  # float residue when comparing sizes with a minimum; not a convention


def agatston_weight(
    peak_hu: np.ndarray | float, edges_hu: tuple[float, ...] = AGATSTON_WEIGHT_EDGES_HU
) -> np.ndarray | int:
    """Agatston density weight of a peak HU: the number of band edges <= ``peak_hu``.

    Bands are closed on the left: with the default edges (130, 200, 300, 400) HU,
    [130, 200) -> 1, [200, 300) -> 2, [300, 400) -> 3, >= 400 -> 4, and < 130 -> 0.
    A scalar gives an ``int``, an array an integer array of the same shape.
    """
    edges = np.asarray(edges_hu, dtype=float)
    if edges.ndim != 1 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"weight edges must increase strictly, got {tuple(edges_hu)}")
    w = np.searchsorted(edges, np.asarray(peak_hu, dtype=float), side="right")
    return int(w) if np.ndim(w) == 0 else w


def increment_factor(geometry: Geometry, conv: ScoringConventions) -> float:
    """Factor applied to the summed slice scores for the slice spacing (dimensionless).

    ``increment/3``: increment_mm / 3 mm (Agatston is defined on 3 mm slices every 3 mm).
    ``increment/thickness``: increment_mm / slice_thickness_mm (de Vos et al. 2019).
    """
    mode = IncrementFactor(conv.increment_factor)
    if mode is IncrementFactor.INCREMENT_OVER_3:
        return geometry.increment_mm / AGATSTON_REFERENCE_THICKNESS_MM
    if geometry.slice_thickness_mm <= 0:
        raise ValueError("increment/thickness needs the slice thickness, which is unknown (0)")
    return geometry.increment_mm / geometry.slice_thickness_mm


def label_components(labels: np.ndarray, connectivity: int) -> np.ndarray:
    """Connected components of a label (or binary) array, axis order (z, y, x).

    Voxels of different non-zero values never join. ``connectivity`` 6/18/26 labels in
    3D; 4/8 labels every slice on its own (ids stay unique across slices). Returns uint32
    component ids, 0 background, numbered in (z, y, x) order of first voxel.
    """
    if connectivity in CONNECTIVITY_3D:
        return cc3d.connected_components(labels, connectivity=connectivity, out_dtype=np.uint32)
    if connectivity not in CONNECTIVITY_2D:
        raise ValueError(
            f"connectivity must be one of {CONNECTIVITY_3D} (3D) or {CONNECTIVITY_2D} (2D), "
            f"got {connectivity}"
        )
    out = np.zeros(labels.shape, dtype=np.uint32)
    offset = 0
    for k in range(labels.shape[0]):
        cc, n = cc3d.connected_components(
            labels[k], connectivity=connectivity, out_dtype=np.uint32, return_N=True
        )
        out[k] = np.where(cc > 0, cc + np.uint32(offset), 0)
        offset += n
    return out


def metal_components(hu: np.ndarray, components: np.ndarray, n: int) -> np.ndarray:
    """Boolean per component id 0..n of ``components`` (labelled calcium of the HU image
    ``hu``): True where the component's peak reaches :data:`METAL_MIN_HU` (metal)."""
    out = np.zeros(n + 1, dtype=bool)
    if n:
        peaks = ndimage.maximum(hu, components, index=np.arange(1, n + 1))
        out[1:] = np.asarray(peaks) >= METAL_MIN_HU
    return out


def without_metal(
    mask: np.ndarray, hu: np.ndarray, threshold_hu: float, connectivity: int = 26
) -> np.ndarray:
    """``mask`` (label mask on the grid of ``hu``) with 0 on every calcium component
    (>= ``threshold_hu``, ``connectivity``) that reaches :data:`METAL_MIN_HU`."""
    if not mask.any() or float(hu.max()) < METAL_MIN_HU:
        return mask
    components = cc3d.connected_components(
        hu >= threshold_hu, connectivity=connectivity, out_dtype=np.uint32
    )
    metal = metal_components(hu, components, int(components.max()))[components]
    return np.where(metal, 0, mask).astype(mask.dtype)


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box (a tuple of slices) holding every non-zero voxel; None when none."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def artery_of(label: str, conv: ScoringConventions) -> str | None:
    """The reported artery a label counts to (``artery_groups``); None when not coronary."""
    for artery, members in conv.artery_groups.items():
        if label in members:
            return artery
    return None


def _empty_lesions() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype=float) for c in LESION_COLUMNS})
    df["label"] = df["label"].astype(object)
    df["artery"] = df["artery"].astype(object)
    df["coronary"] = df["coronary"].astype(bool)
    df["n_voxels"] = df["n_voxels"].astype(np.int64)
    return df


def _check_conventions(conv: ScoringConventions) -> None:
    unknown = sorted(set(conv.artery_groups) - set(ARTERIES))
    if unknown:
        raise ValueError(f"artery_groups may only name {ARTERIES}, got {unknown}")


def score_lesions(
    hu: np.ndarray, geometry: Geometry, labels: np.ndarray, conv: ScoringConventions
) -> pd.DataFrame:
    """Score every lesion of a label mask (see the module docstring for the definitions).

    ``hu``: (z, y, x) HU, any numeric dtype. ``labels``: (z, y, x) uint8 Label values,
    0 background. Returns one row per lesion with the columns :data:`LESION_COLUMNS`:
    ``label`` (Label name, e.g. ``LM``), ``artery`` (``LAD``/``LCX``/``RCA`` through
    ``artery_groups``, else the label name), ``coronary``, ``agatston``, ``volume_mm3``,
    ``mass_mg`` (mg), ``peak_hu``, ``n_voxels`` and ``x, y, z`` (LPS mm of the peak-HU
    voxel). Rows are sorted by Label value, then by the peak voxel's (z, y, x) index.
    Only the bounding box of the labelled voxels is examined.
    """
    if hu.shape != labels.shape:
        raise ValueError(f"image {hu.shape} and labels {labels.shape} differ in shape")
    _check_conventions(conv)
    box = bounding_box(labels)
    if box is None:
        return _empty_lesions()
    hu_c = hu[box]
    lab_c = np.where(hu_c >= conv.threshold_hu, labels[box], 0).astype(np.uint8, copy=False)
    cc = label_components(lab_c, conv.connectivity)
    flat = np.flatnonzero(cc)
    if flat.size == 0:
        return _empty_lesions()
    stats = _lesion_stats(flat, cc, hu_c, lab_c, geometry, conv)
    stats = _apply_min_size(stats, geometry, conv)
    if stats["n_voxels"].size == 0:
        return _empty_lesions()
    origin = np.array([box[2].start, box[1].start, box[0].start])  # (x, y, z) index offset
    ijk = np.column_stack([stats["px"], stats["py"], stats["pz"]]) + origin
    xyz = geometry.index_to_world(ijk)
    known = {int(v) for v in Label}
    bad = sorted({int(v) for v in stats["label_value"]} - known)
    if bad:
        raise ValueError(f"label mask holds values {bad} that are not cacflow Labels")
    names = [Label(int(v)).name for v in stats["label_value"]]
    arteries = [artery_of(n, conv) for n in names]
    df = pd.DataFrame(
        {
            "label": names,
            "artery": [a if a is not None else n for a, n in zip(arteries, names, strict=True)],
            "coronary": [a is not None for a in arteries],
            "agatston": stats["agatston"],
            "volume_mm3": stats["n_voxels"] * geometry.voxel_volume_mm3,
            "mass_mg": conv.mass_calibration * stats["sum_hu"] * geometry.voxel_volume_mm3,
            "peak_hu": stats["peak_hu"],
            "n_voxels": stats["n_voxels"].astype(np.int64),
            "x": xyz[:, 0],
            "y": xyz[:, 1],
            "z": xyz[:, 2],
        }
    )
    order = np.lexsort((stats["px"], stats["py"], stats["pz"], stats["label_value"]))
    return df.iloc[order].reset_index(drop=True)


def _lesion_stats(
    flat: np.ndarray,
    cc: np.ndarray,
    hu: np.ndarray,
    lab: np.ndarray,
    geometry: Geometry,
    conv: ScoringConventions,
) -> dict[str, np.ndarray]:
    """Per-component sums over the voxels ``flat`` (flat indices into the cropped arrays).

    ``cc`` holds consecutive component ids 1..n (as :func:`label_components` returns).
    """
    comp = cc.reshape(-1)[flat].astype(np.int64) - 1  # 0..n-1
    hu_v = hu.reshape(-1)[flat].astype(np.float64)
    z = flat // (cc.shape[1] * cc.shape[2])
    n = int(comp.max()) + 1
    n_vox = np.bincount(comp, minlength=n)
    sum_hu = np.bincount(comp, weights=hu_v, minlength=n)
    peak = np.full(n, -np.inf)
    np.maximum.at(peak, comp, hu_v)
    # peak voxel: the first (smallest flat index) voxel holding the peak HU
    is_peak = hu_v == peak[comp]
    peak_flat = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(peak_flat, comp[is_peak], flat[is_peak])
    pz, py, px = np.unravel_index(peak_flat, cc.shape)
    # per (lesion, slice): area and peak HU -> slice score (hash grouping, no sort)
    inv, keys = pd.factorize(comp * cc.shape[0] + z)
    count = np.bincount(inv)
    slice_peak = np.full(keys.size, -np.inf)
    np.maximum.at(slice_peak, inv, hu_v)
    area = count * geometry.pixel_area_mm2
    weight = agatston_weight(slice_peak, conv.weight_edges_hu)
    owner = np.asarray(keys) // cc.shape[0]
    agatston = np.bincount(owner, weights=area * weight, minlength=n)
    max_area = np.zeros(n)
    np.maximum.at(max_area, owner, area)
    return {
        "label_value": lab.reshape(-1)[peak_flat],
        "n_voxels": n_vox,
        "sum_hu": sum_hu,
        "peak_hu": peak,
        "agatston": agatston * increment_factor(geometry, conv),
        "max_area_mm2": max_area,
        "px": px,
        "py": py,
        "pz": pz,
    }


def _apply_min_size(
    stats: dict[str, np.ndarray], geometry: Geometry, conv: ScoringConventions
) -> dict[str, np.ndarray]:
    """Keep the lesions meeting every bound of ``conv.min_lesion``."""
    m = conv.min_lesion
    keep = (
        (stats["n_voxels"] >= m.voxels)
        & (stats["max_area_mm2"] >= m.area_mm2 * (1 - _SIZE_RTOL))
        & (stats["n_voxels"] * geometry.voxel_volume_mm3 >= m.volume_mm3 * (1 - _SIZE_RTOL))
    )
    return {k: v[keep] for k, v in stats.items()}


def artery_scores(lesions: pd.DataFrame) -> pd.DataFrame:
    """Per-artery sums of the coronary lesions of :func:`score_lesions`.

    Exactly four rows, ``artery`` LAD, LCX, RCA, total, with ``agatston``, ``volume_mm3``,
    ``mass_mg`` and ``n_lesions`` (zeros where an artery has no lesion); total is the sum
    of the three. Non-coronary lesions (``coronary`` False) are left out.
    """
    cor = lesions[lesions["coronary"].astype(bool)]
    sums = (
        cor.groupby("artery")[["agatston", "volume_mm3", "mass_mg"]]
        .sum()
        .reindex(list(ARTERIES), fill_value=0.0)
        .astype(float)
    )
    sums["n_lesions"] = cor.groupby("artery").size().reindex(list(ARTERIES), fill_value=0)
    sums.loc[TOTAL] = sums.loc[list(ARTERIES)].sum()
    out = sums.rename_axis("artery").reset_index()
    out["n_lesions"] = out["n_lesions"].astype(np.int64)
    return out[list(ARTERY_SCORE_COLUMNS)]


def region_scores(lesions: pd.DataFrame) -> pd.DataFrame:
    """Per-region sums of the non-coronary lesions of :func:`score_lesions`: exactly one
    row per :data:`cacflow.conventions.REGIONS` entry (TAC, AV, MV; zeros where a region
    has no lesion), columns as :func:`artery_scores`. ``OTHER`` calcium has no row."""
    reg = lesions[~lesions["coronary"].astype(bool) & lesions["artery"].isin(REGIONS)]
    sums = (
        reg.groupby("artery")[["agatston", "volume_mm3", "mass_mg"]]
        .sum()
        .reindex(list(REGIONS), fill_value=0.0)
        .astype(float)
    )
    sums["n_lesions"] = reg.groupby("artery").size().reindex(list(REGIONS), fill_value=0)
    out = sums.rename_axis("artery").reset_index()
    out["n_lesions"] = out["n_lesions"].astype(np.int64)
    return out[list(ARTERY_SCORE_COLUMNS)]
