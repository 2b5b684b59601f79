"""Coarse heart-centred crops of analysis volumes, their network inputs and targets, and
the votes that turn per-voxel predictions into consistent lesion labels.

Array axis order (z, y, x); HU; mm. The coarse grid groups blocks of ``factors`` analysis
voxels (per axis the integer nearest to ``spacing_mm`` / voxel size, at least 1), so every
analysis voxel lies in exactly one coarse voxel and no interpolation is needed: the
anatomy channel is the block mean, the calcium channel the block maximum (a one-voxel
lesion stays visible). The crop is ``crop`` coarse voxels a side, centred on the heart
(:func:`cacflow.heart.find_heart`; the image centre when no heart is found); what lies
outside the image is padding (:data:`cacflow.conventions.PADDING_HU`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cacflow.conventions import PADDING_HU, Label
from cacflow.heart import Heart
from cacflow.volume import Volume

N_INPUTS = 5
"""Network input channels (:func:`coarse_inputs`)."""
N_CLASSES = 1 + len(Label)
"""Output classes: background (0) and every :class:`~cacflow.conventions.Label` value."""
WINDOW_HU = (-200.0, 1000.0)
"""HU window of the anatomy channel (mapped to [0, 1])."""
CALCIUM_FLOOR = 0.2
"""Calcium-channel value of a block whose maximum just reaches the threshold (0: none), so
that faint candidates differ from no candidate."""
CORONARY = (int(Label.LAD), int(Label.LCX), int(Label.RCA), int(Label.LM))
"""Classes counted as coronary calcium (the triage score)."""


@dataclass(frozen=True)
class Crop:
    """Where a crop lies on the analysis grid: ``start`` (z, y, x) analysis-voxel index of
    its first coarse block (may be negative), ``factors`` voxels per block, ``size``
    coarse voxels per axis, ``centred_on`` ``heart`` or ``image``."""

    start: tuple[int, int, int]
    factors: tuple[int, int, int]
    size: tuple[int, int, int]
    centred_on: str

    @property
    def extent(self) -> tuple[int, int, int]:
        """Analysis voxels the crop spans per axis."""
        return tuple(int(s * f) for s, f in zip(self.size, self.factors, strict=True))


def coarse_factors(spacing_xyz: tuple[float, ...], spacing_mm: float) -> tuple[int, int, int]:
    """Analysis voxels per coarse block along (z, y, x)."""
    zyx = np.asarray(spacing_xyz, dtype=float)[::-1]
    return tuple(int(v) for v in np.maximum(np.rint(spacing_mm / zyx), 1).astype(int))


def heart_centre_index(vol: Volume, heart: Heart | None) -> tuple[np.ndarray, str]:
    """(z, y, x) analysis-voxel index of the centroid of ``heart`` (``vol``'s heart,
    :func:`cacflow.heart.find_heart`) and ``heart``; the image centre and ``image`` when no
    heart was found (None)."""
    if heart is None or not heart.mask.any():
        return (np.asarray(vol.array.shape, dtype=float) - 1.0) / 2.0, "image"
    xyz = vol.geometry.world_to_index(heart.centre(vol.geometry))
    return np.asarray(xyz, dtype=float)[::-1], "heart"


def plan_crop(
    vol: Volume,
    spacing_mm: float,
    size: int,
    centre: np.ndarray | None = None,
    heart: Heart | None = None,
) -> Crop:
    """The crop of ``vol``: ``size`` coarse voxels a side round ``centre`` ((z, y, x)
    analysis index; default: :func:`heart_centre_index` of ``heart``, ``vol``'s heart or
    None when none was found)."""
    how = "given"
    if centre is None:
        centre, how = heart_centre_index(vol, heart)
    factors = coarse_factors(vol.geometry.spacing, spacing_mm)
    extent = np.asarray(factors) * size
    start = np.rint(np.asarray(centre) - extent / 2.0).astype(int)
    return Crop(tuple(int(v) for v in start), factors, (size, size, size), how)


def extract(a: np.ndarray, start: tuple[int, ...], size: tuple[int, ...], fill) -> np.ndarray:
    """``a[start : start + size]`` per axis, ``fill`` where it lies outside ``a``."""
    out = np.full(size, fill, dtype=a.dtype)
    src = tuple(
        slice(max(s, 0), min(s + n, d)) for s, n, d in zip(start, size, a.shape, strict=True)
    )
    if all(sl.stop > sl.start for sl in src):
        dst = tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start, strict=True))
        out[dst] = a[src]
    return out


def _blocks(a: np.ndarray, crop: Crop) -> np.ndarray:
    """(cz, fz, cy, fy, cx, fx) view of an array already cut to ``crop.extent``."""
    (cz, cy, cx), (fz, fy, fx) = crop.size, crop.factors
    return a.reshape(cz, fz, cy, fy, cx, fx)


def coarse_inputs(hu: np.ndarray, crop: Crop, threshold_hu: float) -> np.ndarray:
    """Network input (:data:`N_INPUTS`, *crop.size) float32 of an HU array (z, y, x).

    Channel 0: block-mean HU windowed to :data:`WINDOW_HU` -> [0, 1]. Channel 1: 0 where
    no voxel of the block reaches ``threshold_hu``, else :data:`CALCIUM_FLOOR` plus the
    block maximum's place between the threshold and the window's top (up to 1).
    Channels 2-4: the voxel's position in the crop along z, y, x, from -1 to 1 (the crop
    is centred on the heart: position relative to the heart, which a patch alone lacks).
    """
    part = _blocks(extract(hu, crop.start, crop.extent, PADDING_HU), crop)
    lo, hi = WINDOW_HU
    mean = part.mean(axis=(1, 3, 5), dtype=np.float32)
    peak = part.max(axis=(1, 3, 5)).astype(np.float32)
    anatomy = np.clip((mean - lo) / (hi - lo), 0.0, 1.0)
    level = np.clip((peak - threshold_hu) / (hi - threshold_hu), 0.0, 1.0)
    calcium = np.where(peak >= threshold_hu, CALCIUM_FLOOR + (1.0 - CALCIUM_FLOOR) * level, 0.0)
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in crop.size]
    position = np.stack(np.meshgrid(*axes, indexing="ij"))
    return np.concatenate([np.stack([anatomy, calcium]), position]).astype(np.float32)


def coarse_targets(labels: np.ndarray, crop: Crop) -> np.ndarray:
    """Target class per coarse voxel (uint8, ``crop.size``): the most frequent non-zero
    label of the block's voxels (ties: the smaller label), 0 when the block has none."""
    part = _blocks(extract(labels.astype(np.uint8), crop.start, crop.extent, 0), crop)
    counts = np.stack([(part == c).sum(axis=(1, 3, 5)) for c in range(1, N_CLASSES)])
    out = (counts.argmax(axis=0) + 1).astype(np.uint8)
    out[counts.max(axis=0) == 0] = 0
    return out


def coarse_any(mask: np.ndarray, crop: Crop) -> np.ndarray:
    """Coarse voxels of ``crop`` (``crop.size``) holding at least one True voxel of
    ``mask`` (analysis grid)."""
    part = _blocks(extract(mask.astype(np.uint8), crop.start, crop.extent, 0), crop)
    return part.max(axis=(1, 3, 5)) > 0


def candidate_points(hu: np.ndarray, crop: Crop, threshold_hu: float) -> np.ndarray:
    """(n, 3) analysis-voxel indices (z, y, x) of the candidates (>= ``threshold_hu``)
    inside the crop."""
    lo = np.maximum(np.asarray(crop.start), 0)
    hi = np.minimum(np.asarray(crop.start) + np.asarray(crop.extent), hu.shape)
    if np.any(hi <= lo):
        return np.zeros((0, 3), dtype=np.int64)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    return np.argwhere(hu[box] >= threshold_hu) + lo


def to_coarse(points: np.ndarray, crop: Crop) -> np.ndarray:
    """Continuous coarse-grid coordinates (n, 3) of analysis-voxel centres (z, y, x)."""
    f = np.asarray(crop.factors, dtype=float)
    return (np.asarray(points, dtype=float) - np.asarray(crop.start) + 0.5) / f - 0.5


def majority_vote(votes: np.ndarray) -> np.ndarray:
    """Per voxel, the label most models gave: ``votes`` (k, n) labels -> (n,) uint8.
    Ties go to the smallest label (background before any calcium class)."""
    votes = np.asarray(votes, dtype=np.int64)
    k, n = votes.shape
    counts = np.zeros((n, N_CLASSES), dtype=np.int64)
    for row in votes:
        counts[np.arange(n), row] += 1
    return counts.argmax(axis=1).astype(np.uint8)


def component_vote(labels: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Every voxel takes the most frequent label of its component: ``labels`` (n,) and
    ``components`` (n,) component ids -> (n,) uint8. Ties go to the smallest label."""
    labels = np.asarray(labels, dtype=np.int64)
    ids, inverse = np.unique(np.asarray(components), return_inverse=True)
    counts = np.zeros((len(ids), N_CLASSES), dtype=np.int64)
    np.add.at(counts, (inverse.ravel(), labels), 1)
    return counts.argmax(axis=1).astype(np.uint8)[inverse.ravel()]
