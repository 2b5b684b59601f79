"""Method ``hu-threshold``: a classical baseline that needs no training and no annotations.

Calcium is every voxel >= the threshold (130 HU); a calcium component counts as coronary
when it lies in the zone round the heart where the coronary arteries run, and its artery
follows from where it lies round the heart. Steps (array axis order (z, y, x), HU, mm):

1. **Tissue map on a coarse grid.** The image is block-averaged to voxels of about
   :data:`COARSE_VOXEL_MM` (this also averages the noise away). Body = the largest
   component above :data:`BODY_MIN_HU`, holes filled slice by slice; lungs = body voxels
   below :data:`LUNG_MAX_HU`.
2. **Mediastinum.** In every image row, the voxels strictly between the lung on one side
   of the body's midline and the lung on the other side.
3. **Heart.** Soft tissue (:data:`SOFT_TISSUE_HU`) in the mediastinum is eroded by
   :data:`HEART_EROSION_MM` (cutting the thin links to the great vessels, liver and chest
   wall), its 3D components are found, and of those at least :data:`CANDIDATE_FRACTION` of
   the largest one's size the one whose centroid is nearest the lungs' centroid is the
   heart; it is dilated back by the same distance (within soft tissue) and its holes are
   filled.
4. **Coronary zone.** The heart dilated by :data:`CORONARY_ZONE_MM` (the epicardial fat
   that carries the coronaries), cut above the heart's upper border plus
   :data:`GREAT_VESSEL_MARGIN_MM`: the upper border is the highest slice whose heart area is
   at least :data:`HEART_TOP_AREA_FRACTION` of the largest heart slice; above it lie only
   the great vessels (aortic calcium).
5. **Coronary calcium.** 26-connected components of calcium with at least
   :data:`MIN_INSIDE_FRACTION` of their voxels in the zone and a volume of at most
   :data:`MAX_LESION_VOLUME_MM3` (bone and calcium reaching out of the zone, e.g. in the
   descending aorta beside the spine, fail one of the two).
6. **Valves.** A component whose centroid lies deeper than :data:`VALVE_DEPTH_MM` inside
   the heart is valve calcium (aortic valve), not coronary.
7. **Artery.** The azimuth of the component's centroid round the heart centroid in the
   axial plane (LPS: 0 deg = patient's left, -90 deg = anterior, +-180 deg = right,
   +90 deg = posterior): RCA beyond :data:`RCA_SECTOR_DEG` on the right side, LAD from
   there to :data:`LAD_LCX_BOUNDARY_DEG` on the anterior side, LCX on the left/posterior
   side. LM is not told apart from LAD.

It knows nothing of the synthetic generator; on real scans it is a rough baseline: it
cannot tell coronary calcium from mitral-annulus or other calcium near the heart surface.
"""

from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage

from cacflow.conventions import CALCIUM_THRESHOLD_HU, Label
from cacflow.volume import Volume

COARSE_VOXEL_MM = 3.0
"""Target voxel size (mm) of the coarse grid for the tissue map."""
BODY_MIN_HU = -500.0
LUNG_MAX_HU = -400.0
SOFT_TISSUE_HU = (-40.0, 110.0)
"""Coarse-grid HU range taken as soft tissue (blood, myocardium); fat lies below it."""
HEART_EROSION_MM = 6.0
CANDIDATE_FRACTION = 0.2
CORONARY_ZONE_MM = 8.0
HEART_TOP_AREA_FRACTION = 0.3
GREAT_VESSEL_MARGIN_MM = 5.0
VALVE_DEPTH_MM = 15.0
"""Calcium whose centroid lies deeper than this inside the heart is valvular (the aortic
valve sits in the middle of the heart's base); coronary arteries run on the surface."""
MIN_INSIDE_FRACTION = 0.5
MAX_LESION_VOLUME_MM3 = 1500.0
RCA_SECTOR_DEG = 110.0
"""Components with |azimuth| > this (deg) lie on the heart's right side: RCA."""
LAD_LCX_BOUNDARY_DEG = -45.0
"""Between -RCA_SECTOR_DEG and this azimuth (deg): LAD; from it to +RCA_SECTOR_DEG: LCX."""


def predict_mask(vol: Volume, threshold_hu: float = CALCIUM_THRESHOLD_HU) -> np.ndarray:
    """Label mask (uint8, (z, y, x), :class:`~cacflow.conventions.Label` values LAD, LCX,
    RCA; 0 elsewhere) of the coronary calcium of ``vol`` (HU) found by the rules above."""
    hu = np.asarray(vol.array)
    out = np.zeros(hu.shape, dtype=np.uint8)
    spacing = np.array([vol.geometry.spacing[2], vol.geometry.spacing[1], vol.geometry.spacing[0]])
    factors = np.maximum(np.rint(COARSE_VOXEL_MM / spacing).astype(int), 1)
    coarse = block_mean(hu, factors)
    coarse_mm = spacing * factors
    heart = find_heart(coarse, coarse_mm)
    if heart is None:
        return out
    zone = coronary_zone(heart, coarse_mm, _coarse_world_z(vol, factors, heart.shape[0]))
    zone_full = upsample(zone, factors, hu.shape)
    labels = cc3d.connected_components(hu >= threshold_hu, connectivity=26, out_dtype=np.uint32)
    n = int(labels.max())
    if n == 0:
        return out
    keep = coronary_components(labels, zone_full, n, float(np.prod(spacing)))
    if not keep.any():
        return out
    centre = _world_centroid(vol, np.argwhere(heart) * factors + (factors - 1) / 2.0)
    centroids = cc3d.statistics(labels)["centroids"]  # (n + 1, 3), array axis order (z, y, x)
    depth = depth_map(heart, coarse_mm)
    lut = np.zeros(n + 1, dtype=np.uint8)
    for comp in np.flatnonzero(keep):
        at = np.minimum((centroids[comp] // factors).astype(int), np.array(heart.shape) - 1)
        if depth[tuple(at)] > VALVE_DEPTH_MM:
            continue  # deep inside the heart: a valve, not a coronary artery
        lut[comp] = artery_label(_world_centroid(vol, centroids[comp]), centre)
    return lut[labels]


def block_mean(a: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Mean over blocks of ``factors`` voxels (z, y, x); a partial last block is dropped."""
    shape = np.array(a.shape) // factors
    shape = np.maximum(shape, 1)
    fz, fy, fx = (int(f) for f in np.minimum(factors, a.shape))
    nz, ny, nx = (int(s) for s in shape)
    crop = a[: nz * fz, : ny * fy, : nx * fx].astype(np.float32)
    return crop.reshape(nz, fz, ny, fy, nx, fx).mean(axis=(1, 3, 5))


def upsample(mask: np.ndarray, factors: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-block upsampling of a coarse mask to ``shape`` (edge blocks repeated)."""
    big = mask
    for axis, f in enumerate(factors):
        big = np.repeat(big, int(f), axis=axis)
    pad = [(0, max(s - b, 0)) for s, b in zip(shape, big.shape, strict=True)]
    big = np.pad(big, pad, mode="edge")
    return big[: shape[0], : shape[1], : shape[2]]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels = cc3d.connected_components(mask, connectivity=26)
    if labels.max() == 0:
        return mask
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return labels == int(np.argmax(counts))


def tissue_masks(coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body (holes filled per slice) and lung masks of a coarse HU volume."""
    body = _largest_component(coarse > BODY_MIN_HU)
    filled = np.zeros_like(body)
    for k in range(body.shape[0]):
        filled[k] = ndimage.binary_fill_holes(body[k])
    return filled, filled & (coarse < LUNG_MAX_HU)


def mediastinum(body: np.ndarray, lungs: np.ndarray) -> np.ndarray:
    """Per image row, the voxels strictly between the lungs on the two sides of the body's
    midline (column axis)."""
    nx = body.shape[2]
    cols = np.arange(nx)
    body_cols = np.nonzero(body)[2]
    mid = int(np.rint(body_cols.mean())) if body_cols.size else nx // 2
    side_a = lungs & (cols < mid)
    side_b = lungs & (cols >= mid)
    has_a, has_b = side_a.any(axis=2), side_b.any(axis=2)
    a_last = nx - 1 - np.argmax(side_a[..., ::-1], axis=2)
    b_first = np.argmax(side_b, axis=2)
    rows = (has_a & has_b)[..., None]
    return rows & (cols > a_last[..., None]) & (cols < b_first[..., None])


def find_heart(coarse: np.ndarray, coarse_mm: np.ndarray) -> np.ndarray | None:
    """Heart mask on the coarse grid (steps 1-3 of the module docstring); None if none."""
    body, lungs = tissue_masks(coarse)
    if not lungs.any():
        return None
    soft = (coarse > SOFT_TISSUE_HU[0]) & (coarse < SOFT_TISSUE_HU[1])
    cand = soft & mediastinum(body, lungs)
    if not cand.any():
        return None
    core = erode(cand, HEART_EROSION_MM, coarse_mm)
    labels = cc3d.connected_components(core, connectivity=26)
    n = int(labels.max())
    if n == 0:
        return None
    stats = cc3d.statistics(labels)
    sizes, coms = stats["voxel_counts"][1:], stats["centroids"][1:]
    lung_c = np.argwhere(lungs).mean(axis=0) * coarse_mm
    dist = np.linalg.norm(coms * coarse_mm - lung_c, axis=1)
    dist[sizes < CANDIDATE_FRACTION * sizes.max()] = np.inf
    best = int(np.argmin(dist)) + 1
    heart = dilate(labels == best, HEART_EROSION_MM, coarse_mm) & soft
    return fill_holes(heart)  # calcium inside the heart leaves no hole


def _box(mask: np.ndarray, pad: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by ``pad`` voxels per axis, clipped to the array."""
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def erode(mask: np.ndarray, radius_mm: float, spacing_mm: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` farther than ``radius_mm`` from its outside (Euclidean, mm)."""
    out = np.zeros_like(mask, dtype=bool)
    if not mask.any():
        return out
    box = _box(mask, np.ones(3, dtype=int))
    out[box] = ndimage.distance_transform_edt(mask[box], sampling=spacing_mm) > radius_mm
    return out


def depth_map(mask: np.ndarray, spacing_mm: np.ndarray) -> np.ndarray:
    """Distance (mm) of each voxel of ``mask`` from its outside; 0 outside ``mask``."""
    out = np.zeros(mask.shape, dtype=float)
    if mask.any():
        box = _box(mask, np.ones(3, dtype=int))
        out[box] = ndimage.distance_transform_edt(mask[box], sampling=spacing_mm)
    return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` plus every background region (6-connected) that does not reach the border."""
    background = cc3d.connected_components(~mask, connectivity=6)
    faces = np.concatenate(
        [np.ravel(np.take(background, i, axis=a)) for a in range(3) for i in (0, -1)]
    )
    outside = np.isin(background, np.unique(faces))
    return mask | ~outside


def dilate(mask: np.ndarray, radius_mm: float, spacing_mm: np.ndarray) -> np.ndarray:
    """Voxels within ``radius_mm`` of ``mask`` (Euclidean, mm)."""
    out = np.zeros_like(mask, dtype=bool)
    if not mask.any():
        return out
    box = _box(mask, np.ceil(radius_mm / spacing_mm).astype(int) + 1)
    out[box] = ndimage.distance_transform_edt(~mask[box], sampling=spacing_mm) <= radius_mm
    return out


def _coarse_world_z(vol: Volume, factors: np.ndarray, nz: int) -> np.ndarray:
    """World z (mm, LPS) of the centres of the coarse slices."""
    k = np.arange(nz) * factors[0] + (factors[0] - 1) / 2.0
    ijk = np.stack([np.zeros_like(k), np.zeros_like(k), k], axis=1)
    return vol.geometry.index_to_world(ijk)[:, 2]


def coronary_zone(heart: np.ndarray, coarse_mm: np.ndarray, slice_z: np.ndarray) -> np.ndarray:
    """Step 4: heart dilated by CORONARY_ZONE_MM, without what lies above its upper border.

    ``slice_z``: world z (mm) of each coarse slice (superior is +z in LPS).
    """
    zone = dilate(heart, CORONARY_ZONE_MM, coarse_mm)
    area = heart.sum(axis=(1, 2))
    big = area >= HEART_TOP_AREA_FRACTION * area.max()
    top = float(slice_z[big].max())
    zone[slice_z > top + GREAT_VESSEL_MARGIN_MM] = False
    return zone


def coronary_components(
    labels: np.ndarray, zone: np.ndarray, n: int, voxel_mm3: float
) -> np.ndarray:
    """Step 5: boolean per component id 0..n, True for components kept as coronary."""
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    inside = np.bincount(labels[zone], minlength=n + 1)
    keep = (inside >= MIN_INSIDE_FRACTION * sizes) & (sizes * voxel_mm3 <= MAX_LESION_VOLUME_MM3)
    keep[0] = False
    return keep & (sizes > 0)


def _world_centroid(vol: Volume, zyx: np.ndarray) -> np.ndarray:
    """Mean LPS position (mm) of voxel indices given as (n, 3) in (z, y, x) order."""
    mean = np.asarray(zyx, dtype=float).reshape(-1, 3).mean(axis=0)
    return vol.geometry.index_to_world(mean[::-1])


def artery_label(position: np.ndarray, heart_centre: np.ndarray) -> int:
    """Step 6: LAD, LCX or RCA from the azimuth of ``position`` round ``heart_centre``
    (both LPS mm)."""
    d = np.asarray(position) - np.asarray(heart_centre)
    azimuth = float(np.degrees(np.arctan2(d[1], d[0])))
    if abs(azimuth) > RCA_SECTOR_DEG:
        return int(Label.RCA)
    if azimuth < LAD_LCX_BOUNDARY_DEG:
        return int(Label.LAD)
    return int(Label.LCX)
