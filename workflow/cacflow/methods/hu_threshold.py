"""Method ``hu-threshold``: a classical baseline that needs no training and no annotations.

Calcium is every voxel >= the threshold (130 HU); a calcium component counts as coronary
when it lies in the zone round the heart where the coronary arteries run, and its artery
follows from where it lies round the heart. Steps (array axis order (z, y, x), HU, mm):

1. **Heart.** The shared heart localiser :func:`cacflow.heart.find_heart` (chest and
   cardiac fields of view; lungs, mediastinum, spine cut, heart).
2. **Coronary zone.** The heart dilated by :data:`CORONARY_ZONE_MM` (the epicardial fat
   that carries the coronaries) within the mediastinal region the heart was searched in
   (between the lungs, in front of the spine: ribs, spine and descending aorta stay out)
   and what lies in front of that region (:func:`in_front`: where the heart touches the
   anterior chest wall, no lung lies on both sides of the rows of its anterior surface and
   the LAD), cut above the heart's upper border plus
   :data:`GREAT_VESSEL_MARGIN_MM`: the upper border is the highest slice whose heart area
   is at least :data:`cacflow.heart.HEART_TOP_AREA_FRACTION` of the largest heart slice;
   above it lie only the great vessels (aortic calcium).
3. **Coronary calcium.** 26-connected components of calcium with at least
   :data:`MIN_INSIDE_FRACTION` of their voxels in the zone and a volume of at most
   :data:`MAX_LESION_VOLUME_MM3` (bone and calcium reaching out of the zone, e.g. in the
   descending aorta beside the spine, fail one of the two).
   A component that reaches :data:`cacflow.conventions.METAL_MIN_HU` is metal (stent,
   wire, clip, lead) with its blooming, not calcium.
   A component of which :data:`AIR_CONTACT_FRACTION` of the voxels lie within
   :data:`AIR_CONTACT_MM` of air or lung is not coronary either
   (bronchial and tracheal cartilage, vessel walls at the lung border, kernel overshoot).
   And it must be wrapped in fat: at least :data:`MIN_FAT_FRACTION` of what lies within
   :data:`FAT_SHELL_MM` of it is fat (:data:`FAT_HU`) — the coronary arteries run in
   epicardial fat; mitral-annulus calcium, chamber walls, the oesophagus and partial volume
   of the diaphragm are wrapped in soft tissue.
4. **Valves.** A component whose centroid lies deeper than :data:`VALVE_DEPTH_MM` inside
   the heart is valve calcium (aortic valve), not coronary.
   Calcium on the back of the atria (:meth:`cacflow.heart.Heart.on_atrial_back`) is not
   coronary: the left atrium's posterior wall borders the oesophagus, subcarinal lymph
   nodes and pulmonary veins, and no coronary artery runs on it.
5. **Artery.** The azimuth of the component's centroid round the heart centroid in the
   axial plane (LPS: 0 deg = patient's left, -90 deg = anterior, +-180 deg = right,
   +90 deg = posterior): RCA beyond :data:`RCA_SECTOR_DEG` on the right side, LAD from
   there to :data:`LAD_LCX_BOUNDARY_DEG` on the anterior side, LCX on the left/posterior
   side. LM is not told apart from LAD.

It knows nothing of the synthetic generator; on real scans it is a rough baseline: it
cannot tell coronary calcium from mitral-annulus or other calcium near the heart surface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cc3d
import numpy as np
from scipy import ndimage

from cacflow.calcium import metal_components
from cacflow.conventions import CALCIUM_THRESHOLD_HU, Label
from cacflow.heart import Heart, depth_map, dilate, find_heart, upsample
from cacflow.volume import Geometry, Volume, each_volume

CORONARY_ZONE_MM = 8.0
GREAT_VESSEL_MARGIN_MM = 5.0
VALVE_DEPTH_MM = 15.0
"""Calcium whose centroid lies deeper than this inside the heart is valvular (the aortic
valve sits in the middle of the heart's base); coronary arteries run on the surface."""
AIR_CONTACT_MM = 2.0
"""Distance (mm) from air or lung within which a calcium voxel counts as touching air."""
AIR_CONTACT_FRACTION = 0.5
"""A calcium component with at least this share of its voxels touching air is not coronary."""
AIR_MAX_HU = -400.0
"""HU below which a voxel is air or lung parenchyma."""
FAT_HU = (-190.0, -30.0)
"""HU range of fat (epicardial and pericardial)."""
FAT_SHELL_MM = 3.0
MIN_FAT_FRACTION = 0.15
"""Least share of fat round a component (within FAT_SHELL_MM, calcium left out) for it to
count as coronary: the coronary arteries run in epicardial fat."""
MIN_INSIDE_FRACTION = 0.5
MAX_LESION_VOLUME_MM3 = 1500.0

RCA_SECTOR_DEG = 110.0
"""Components with |azimuth| > this (deg) lie on the heart's right side: RCA."""
LAD_LCX_BOUNDARY_DEG = -45.0
"""Between -RCA_SECTOR_DEG and this azimuth (deg): LAD; from it to +RCA_SECTOR_DEG: LCX."""


def predict_mask(
    vol: Volume, threshold_hu: float = CALCIUM_THRESHOLD_HU, heart_cache: Path | None = None
) -> np.ndarray:
    """Label mask (uint8, (z, y, x), :class:`~cacflow.conventions.Label` values LAD, LCX,
    RCA; 0 elsewhere) of the coronary calcium of ``vol`` (HU) found by the rules above.
    ``heart_cache``: the resample step's heart of this volume (found anew when absent)."""
    hu = np.asarray(vol.array)
    heart = find_heart(vol, heart_cache)
    if heart is None:
        return np.zeros(hu.shape, dtype=np.uint8)
    labels, keep, positions = _accepted(vol, heart, threshold_hu)
    centre = heart.centre(vol.geometry)
    lut = np.zeros(len(keep), dtype=np.uint8)
    for comp, position in positions.items():
        lut[comp] = artery_label(position, centre)
    return lut[labels]


def coronary_candidates(
    vol: Volume, heart: Heart, threshold_hu: float = CALCIUM_THRESHOLD_HU
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2-4: ``(components, keep)``: the 26-connected components of calcium
    (>= ``threshold_hu``) of ``vol`` (uint32 ids, (z, y, x)) and, per id 0..n, True for
    those the anatomy accepts as coronary (in the coronary zone, not metal, not touching
    air, wrapped in fat, neither a valve nor on the back of the atria). The ``segment``
    method's anatomy gate (:func:`cacflow.methods.segment.infer.coronary_accepted`) reads
    it too."""
    labels, keep, _ = _accepted(vol, heart, threshold_hu)
    return labels, keep


def _accepted(
    vol: Volume, heart: Heart, threshold_hu: float
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """:func:`coronary_candidates` and the world centroid (LPS mm) of each kept component
    (component id -> position), which step 5 reads."""
    hu = np.asarray(vol.array)
    labels = cc3d.connected_components(hu >= threshold_hu, connectivity=26, out_dtype=np.uint32)
    n = int(labels.max())
    if n == 0:
        return labels, np.zeros(1, dtype=bool), {}
    factors = heart.factors
    zone_full = upsample(coronary_zone(heart, vol.geometry), factors, hu.shape)
    keep = coronary_components(labels, zone_full, n, vol.geometry.voxel_volume_mm3)
    keep &= ~metal_components(hu, labels, n)
    keep &= ~touches_air(hu, labels, keep, vol.geometry.spacing)
    keep &= in_fat(hu, labels, keep, vol.geometry.spacing, threshold_hu)
    if not keep.any():
        return labels, keep, {}
    centre = heart.centre(vol.geometry)
    centroids = cc3d.statistics(labels)["centroids"]  # (n + 1, 3), array axis order (z, y, x)
    depth = depth_map(heart.mask, heart.coarse_mm)
    positions = {}
    for comp in np.flatnonzero(keep):
        at = np.minimum((centroids[comp] // factors).astype(int), np.array(heart.mask.shape) - 1)
        position = _world_centroid(vol, centroids[comp])
        if depth[tuple(at)] > VALVE_DEPTH_MM:
            keep[comp] = False  # deep inside the heart: a valve, not a coronary artery
        elif heart.on_atrial_back(position, centre, vol.geometry):
            keep[comp] = False  # behind the atria: oesophagus, lymph nodes, pulmonary veins
        else:
            positions[int(comp)] = position
    return labels, keep, positions


def coronary_zone(heart: Heart, geometry: Geometry) -> np.ndarray:
    """Step 2: heart dilated by CORONARY_ZONE_MM within its search region, without what
    lies above its upper border (:meth:`~cacflow.heart.Heart.top_z`) plus
    GREAT_VESSEL_MARGIN_MM (coarse grid)."""
    zone = dilate(heart.mask, CORONARY_ZONE_MM, heart.coarse_mm)
    zone &= heart.region | in_front(heart.region)
    zone[heart.slice_z(geometry) > heart.top_z(geometry) + GREAT_VESSEL_MARGIN_MM] = False
    return zone


def in_front(region: np.ndarray) -> np.ndarray:
    """Voxels anterior of ``region`` (z, y, x; y runs anterior to posterior) in the columns
    (z, x) that hold any of it: rows before the region's first row in that column."""
    has = region.any(axis=1)
    first = np.argmax(region, axis=1)  # (z, x): first (most anterior) region row
    rows = np.arange(region.shape[1])[None, :, None]
    return has[:, None, :] & (rows < first[:, None, :])


def coronary_components(
    labels: np.ndarray, zone: np.ndarray, n: int, voxel_mm3: float
) -> np.ndarray:
    """Step 3: boolean per component id 0..n, True for components kept as coronary."""
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    inside = np.bincount(labels[zone], minlength=n + 1)
    keep = (inside >= MIN_INSIDE_FRACTION * sizes) & (sizes * voxel_mm3 <= MAX_LESION_VOLUME_MM3)
    keep[0] = False
    return keep & (sizes > 0)


def _grown_boxes(labels: np.ndarray, candidates: np.ndarray, pad: np.ndarray):
    """(component id, its bounding box grown by ``pad`` voxels per axis) for every
    candidate component present in ``labels``."""
    boxes = ndimage.find_objects(labels)
    for comp in np.flatnonzero(candidates):
        box = boxes[comp - 1] if comp - 1 < len(boxes) else None
        if box is None:
            continue
        yield (
            comp,
            tuple(
                slice(max(b.start - p, 0), min(b.stop + p, n))
                for b, p, n in zip(box, pad, labels.shape, strict=True)
            ),
        )


def touches_air(
    hu: np.ndarray, labels: np.ndarray, candidates: np.ndarray, spacing_xyz: tuple[float, ...]
) -> np.ndarray:
    """Step 3b: True per component id of which at least :data:`AIR_CONTACT_FRACTION` of
    the voxels lie within :data:`AIR_CONTACT_MM` of air or lung (< :data:`AIR_MAX_HU`).
    Coronary calcium is wrapped in epicardial fat;
    bronchial-wall and tracheal cartilage, vessel walls at the lung border and the edge
    overshoot of sharp kernels at lung interfaces are not."""
    out = np.zeros(len(candidates), dtype=bool)
    sz, sy, sx = spacing_xyz[2], spacing_xyz[1], spacing_xyz[0]
    pad = np.ceil(AIR_CONTACT_MM / np.array([sz, sy, sx])).astype(int)
    r = np.mgrid[-pad[0] : pad[0] + 1, -pad[1] : pad[1] + 1, -pad[2] : pad[2] + 1]
    ball = (r[0] * sz) ** 2 + (r[1] * sy) ** 2 + (r[2] * sx) ** 2 <= AIR_CONTACT_MM**2
    for comp, grown in _grown_boxes(labels, candidates, pad):
        air_near = ndimage.binary_dilation(hu[grown] < AIR_MAX_HU, structure=ball)
        own = labels[grown] == comp
        out[comp] = bool(air_near[own].mean() >= AIR_CONTACT_FRACTION)
    return out


def in_fat(
    hu: np.ndarray,
    labels: np.ndarray,
    candidates: np.ndarray,
    spacing_xyz: tuple[float, ...],
    threshold_hu: float = CALCIUM_THRESHOLD_HU,
) -> np.ndarray:
    """Step 3c: True per component id whose surroundings are epicardial fat: at least
    :data:`MIN_FAT_FRACTION` of the non-calcium voxels within :data:`FAT_SHELL_MM` of it lie
    in :data:`FAT_HU`. The coronary arteries run in the epicardial fat of the grooves; calcium
    wrapped in myocardium, blood or mediastinal soft tissue (mitral annulus, chamber walls,
    oesophagus, partial volume of the diaphragm) is not coronary."""
    out = np.zeros(len(candidates), dtype=bool)
    spacing = np.array([spacing_xyz[2], spacing_xyz[1], spacing_xyz[0]], dtype=float)
    pad = np.ceil(FAT_SHELL_MM / spacing).astype(int) + 1
    for comp, grown in _grown_boxes(labels, candidates, pad):
        part = hu[grown]
        dist = ndimage.distance_transform_edt(labels[grown] != comp, sampling=spacing)
        shell = (dist > 0) & (dist <= FAT_SHELL_MM) & (part < threshold_hu)
        fat = (part > FAT_HU[0]) & (part < FAT_HU[1])
        out[comp] = bool(shell.any() and fat[shell].mean() >= MIN_FAT_FRACTION)
    return out


def _world_centroid(vol: Volume, zyx: np.ndarray) -> np.ndarray:
    """Mean LPS position (mm) of voxel indices given as (n, 3) in (z, y, x) order."""
    mean = np.asarray(zyx, dtype=float).reshape(-1, 3).mean(axis=0)
    return vol.geometry.index_to_world(mean[::-1])


def artery_label(position: np.ndarray, heart_centre: np.ndarray) -> int:
    """Step 5: LAD, LCX or RCA from the azimuth of ``position`` round ``heart_centre``
    (both LPS mm)."""
    d = np.asarray(position) - np.asarray(heart_centre)
    azimuth = float(np.degrees(np.arctan2(d[1], d[0])))
    if abs(azimuth) > RCA_SECTOR_DEG:
        return int(Label.RCA)
    if azimuth < LAD_LCX_BOUNDARY_DEG:
        return int(Label.LAD)
    return int(Label.LCX)


def infer_dir(
    images: Path,
    out_dir: Path,
    *,
    scoring: dict[str, Any] | None = None,
    model: Path | None = None,
    device: str = "cpu",
    settings: dict[str, Any] | None = None,
) -> int:
    """The registry's ``infer`` entry point: a label mask ``<series_uid>.nii`` in
    ``out_dir`` for every analysis volume of ``images``, with the calcium threshold of the
    config section ``scoring``. Returns the number of series."""
    from cacflow.conventions import ScoringConventions
    from cacflow.heart import HEART_SUFFIX
    from cacflow.score import write_labels

    threshold = ScoringConventions.from_config(scoring or {}).threshold_hu
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    n = 0
    for uid, vol in each_volume(images, "infer hu-threshold"):
        mask = predict_mask(vol, threshold, Path(images) / f"{uid}{HEART_SUFFIX}")
        write_labels(mask, vol, Path(out_dir) / f"{uid}.nii")
        n += 1
    return n
