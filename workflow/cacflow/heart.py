"""Where the heart is in a CT volume, and what the blood pool and the noise look like there.

One classical, training-free heart localiser shared by every step that needs the heart:
the ``hu-threshold`` method (its coronary zone), the scorability checks of
:mod:`cacflow.scorable` (heart inside the field of view, contrast, noise) and the
inserted-calcium command (:mod:`cacflow.insert`). It works on chest fields of view (whole
body, both lungs) and on cardiac ones (the FOV circle cuts the body and the lungs).
Array axis order (z, y, x); HU; mm; LPS patient frame (+y posterior, +x patient's left).

Steps, on a coarse grid of about :data:`COARSE_VOXEL_MM` (block means; they also average
the noise away):

1. **Field of view.** Blocks of constant value at or below :data:`PADDING_MAX_HU` lie
   outside the reconstruction circle (scanners write one padding value there; real air
   always has noise).
2. **Body and lungs.** Body = the largest 3D component above :data:`BODY_MIN_HU`. Per
   slice its convex hull is taken, so that lungs cut by a cardiac FOV's edge still count
   as lungs; lungs = voxels of the hull (in slices that a cardiac FOV cuts,
   :func:`cut_by_fov`, also the lung-dense voxels past it up to the FOV's edge), inside
   the FOV less its edge blocks, below :data:`LUNG_MAX_HU`, in 3D components of at least
   :data:`LUNG_MIN_ML`; per slice, air pieces open to the air round the body (under the
   back, beside the arms, in front of the chest) are no lungs.
3. **Mediastinum.** In every image row, the voxels strictly between the lung on one side
   of the body's midline and the lung on the other side; where a cardiac FOV cuts the left
   lung (it reaches the FOV's edge in a slice where it is large), the FOV's edge stands in
   for it in the rows where it lies outside the image and the right lung is seen (a FOV
   centred on the heart cuts the heart's left border; on the right, at the heart's
   inferior levels, the liver reaches the FOV's edge).
4. **Spine.** Bone (above :data:`BONE_MIN_HU`) near the body's midline and posterior of
   the body's centroid; per slice, everything posterior of a line :data:`SPINE_MARGIN_MM`
   in front of its front edge is cut from the mediastinum (the descending aorta and the
   oesophagus lie beside and just in front of the vertebral bodies).
5. **Heart.** Soft tissue (:data:`SOFT_TISSUE_HU`, plus small bright components: calcium,
   :func:`small_bright`) of the mediastinum is eroded by
   :data:`HEART_EROSION_MM` (this cuts the thin links to the great vessels and the chest
   wall), and of the 3D components at least :data:`CANDIDATE_FRACTION` of the largest one's
   size, the one nearest the lungs' centroid is the heart. It is grown back by the same
   distance within the mediastinal soft tissue, into voxels nearer to it than to any other
   component (the aorta and great vessels keep theirs), and its holes are filled. When no
   heart is found so, or the mediastinum holds more iodine-bright blood (up to
   :data:`ENHANCED_BLOOD_MAX_HU`) than that heart, the search is repeated on blood and soft
   tissue together (contrast-enhanced scans). A heart whose largest axial section is below
   :data:`HEART_MIN_SECTION_CM2` is none (a FOV too small for the heart).

Known limits: in non-contrast CT the diaphragm does not separate the heart's inferior wall
from the liver dome, so the mask may include the top of the liver (Lung-PET-CT-Dx A0001
and A0002) or, where the liver's core claims it, lose the heart's inferior 20 mm
(LIDC-IDRI-0314). A FOV that cuts the heart on both sides (A0002 at 160 mm) leaves the
rows where no lung is seen out.
Calcium in the liver is rare; the coronary zone of ``hu-threshold`` is cut at the top
(great vessels) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cc3d
import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from cacflow.volume import Geometry, Volume

COARSE_VOXEL_MM = 3.0
"""Target voxel size (mm) of the coarse grid."""
PADDING_MAX_HU = -1000.0
"""A constant coarse block at or below this HU is outside the field of view."""
BODY_MIN_HU = -500.0
LUNG_MAX_HU = -400.0
LUNG_MIN_ML = 20.0
"""Smallest air component (ml) counted as lung (trachea, bowel gas and noise are smaller or
lie outside the hull)."""
OUTSIDE_AIR_MAX_HU = -950.0
"""Coarse blocks of the air round the body lie below this (noise averaged out: about -1000
HU); lung parenchyma (about -850 HU), fat and muscle lie above."""
CUT_LUNG_FRACTION = 0.25
"""In a slice cut by the FOV, a side's lung bounds the mediastinum at the FOV's edge only
where it holds at least this share of that side's largest slice area (:func:`mediastinum`)."""
ROUND_AIR_MIN_CM2 = 2.0
"""Smallest patch (cm², per slice) of air below :data:`OUTSIDE_AIR_MAX_HU` reaching the FOV's
edge that counts as air round the body; lung parenchyma has a few such blocks at its edge."""
FOV_CUT_FRACTION = 0.5
"""A slice whose FOV edge runs through body or lung (above :data:`OUTSIDE_AIR_MAX_HU`) for at
least this share of its length is cut by the FOV (a cardiac FOV); a chest FOV's edge runs
through the air round the body."""
HEART_MIN_SECTION_CM2 = 30.0
"""Smallest largest-axial-section (cm²) of a heart: adult hearts measure 60-120 cm² (the
shared real series about 80; the synthetic phantoms 45-75); what is smaller is the root of
the great vessels in a FOV that cut the heart away, or no heart at all."""
BONE_MIN_HU = 180.0
"""Coarse-grid HU above which a block is bone (cancellous vertebrae are 200-400 HU)."""
SPINE_HALF_WIDTH_MM = 30.0
"""Half-width (mm) of the band round the body's midline column searched for the spine."""
SPINE_MARGIN_MM = 20.0
"""The cut lies this far (mm) anterior of the spine's front edge: the descending aorta and
the oesophagus lie beside and just in front of the vertebral bodies."""
SOFT_TISSUE_HU = (-40.0, 110.0)
"""Coarse-grid HU range taken as soft tissue (blood, myocardium); fat lies below it."""
SMALL_BRIGHT_ML = 3.0
"""Bright (calcified) components of the mediastinum smaller than this (ml) count as heart
tissue when the heart is searched."""
ENHANCED_BLOOD_MAX_HU = 600.0
"""Upper coarse-grid HU of iodinated blood, searched when the soft-tissue heart is missing
or smaller than the enhanced region (contrast-enhanced scans)."""
HEART_EROSION_MM = 8.0
CANDIDATE_FRACTION = 0.2
HEART_TOP_AREA_FRACTION = 0.3
TOP_CUT_AREA_FRACTION = 0.8
"""A top slice whose heart section is at least this share of the largest one lies in the
heart's body: the scan range cuts the heart (:meth:`Heart.touches_fov_edge`). Measured on
the shared real series (3 mm analysis images, chest FOV and 200 / 160 mm crops): a range
that starts at the reader's upper heart border, or 5-20 mm above it as gated calcium scans
do, gives 0.29-0.70 (the atria and the roots of the great vessels); one that starts halfway
down the heart 0.98-0.99 on the crops (the chest FOV's mask runs on into the liver there,
whose sections make the largest one)."""
EDGE_SURFACE_FRACTION = 0.05
"""Share of the heart's surface on the FOV edge from which the heart counts as cut."""
ATRIAL_BACK_DEG = (70.0, 160.0)
"""Azimuth range (deg; LPS: 0 = patient's left, +90 = posterior, 180 = right) of the atria's
back round the heart centre: posterior and posterior-right."""
ATRIAL_FRACTION = 0.5
"""The atria fill the upper part of the heart's z range (this fraction, below its top)."""
CORE_DEPTH_MM = 10.0
"""Depth (mm) inside the heart mask of the core where blood pool and noise are measured."""
NOISE_WINDOW_MM = 7.0
"""Side (mm) of the in-plane window of the local standard deviation (noise)."""


@dataclass(frozen=True)
class Heart:
    """The heart found in a volume.

    ``mask``: heart on the coarse grid (z, y, x); ``factors``: voxels per coarse block
    along (z, y, x); ``coarse_mm``: coarse voxel size (mm, z, y, x); ``fov``: coarse
    blocks inside the reconstruction field of view; ``region``: see below.
    """

    mask: np.ndarray
    factors: np.ndarray
    coarse_mm: np.ndarray
    fov: np.ndarray
    top_is_first: bool
    """True when array slice 0 is the most superior one (world z decreases with the index)."""
    region: np.ndarray
    """Coarse voxels where the heart and its surface may lie: the mediastinum (between the
    lungs), without what lies behind the spine's front edge."""

    def full_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """The heart mask on the full grid of ``shape`` (z, y, x)."""
        return upsample(self.mask, self.factors, shape)

    def slice_z(self, geometry: Geometry) -> np.ndarray:
        """World z (mm, LPS; superior is +z) of the centre of each coarse slice."""
        f = self.factors[0]
        k = np.arange(self.mask.shape[0]) * f + (f - 1) / 2.0
        ijk = np.stack([np.zeros_like(k), np.zeros_like(k), k], axis=1)
        return geometry.index_to_world(ijk)[:, 2]

    def top_z(self, geometry: Geometry) -> float:
        """World z (mm) of the heart's upper border: the highest coarse slice whose heart
        area is at least :data:`HEART_TOP_AREA_FRACTION` of the largest one; above it the
        mask holds only the roots of the great vessels."""
        area = self.mask.sum(axis=(1, 2))
        big = area >= HEART_TOP_AREA_FRACTION * area.max()
        return float(self.slice_z(geometry)[big].max())

    def centre(self, geometry: Geometry) -> np.ndarray:
        """The heart's centroid (LPS mm): the mean position of its coarse voxels' centres."""
        f = self.factors
        zyx = (np.argwhere(self.mask) * f + (f - 1) / 2.0).mean(axis=0)
        return geometry.index_to_world(zyx[::-1])

    def on_atrial_back(
        self, position: np.ndarray, centre: np.ndarray, geometry: Geometry
    ) -> np.ndarray:
        """True where ``position`` (LPS mm; one point (3,) or many (n, 3)) lies on the back
        of the atria: in the azimuth range :data:`ATRIAL_BACK_DEG` round ``centre`` (the
        heart's centroid) and in the upper :data:`ATRIAL_FRACTION` of the heart's z range.
        The left atrium's posterior wall borders the oesophagus and carries no epicardial
        coronary artery (the LCX runs in the left atrioventricular groove)."""
        top = self.top_z(geometry)
        zs = self.slice_z(geometry)[np.flatnonzero(self.mask.any(axis=(1, 2)))]
        d = np.asarray(position, dtype=float) - np.asarray(centre, dtype=float)
        azimuth = np.degrees(np.arctan2(d[..., 1], d[..., 0]))
        upper = d[..., 2] + centre[2] >= top - ATRIAL_FRACTION * (top - float(zs.min()))
        return upper & (azimuth >= ATRIAL_BACK_DEG[0]) & (azimuth <= ATRIAL_BACK_DEG[1])

    def region_full(self, shape: tuple[int, ...]) -> np.ndarray:
        """The search region (mediastinum in front of the spine) on the full grid."""
        return upsample(self.region, self.factors, shape)

    def core(self) -> np.ndarray:
        """Coarse voxels deeper than :data:`CORE_DEPTH_MM` inside the heart (the interior
        of the chambers and myocardium; falls back to the whole mask for a small heart)."""
        core = erode(self.mask, CORE_DEPTH_MM, self.coarse_mm)
        return core if core.any() else self.mask

    def touches_fov_edge(self) -> bool:
        """True when the field of view cuts the heart: at least :data:`EDGE_SURFACE_FRACTION`
        of the heart's surface lies on the image border or the reconstruction circle (a
        tight cardiac FOV may graze it), or the top slice lies in the heart's body (its
        section at least :data:`TOP_CUT_AREA_FRACTION` of the largest; a gated scan's range
        starts at or just above the heart's upper border, where the atria and the roots of
        the great vessels give smaller sections). The bottom is not checked: the mask may
        run on into the liver dome there."""
        m = self.mask
        area = m.sum(axis=(1, 2))
        top = 0 if self.top_is_first else -1
        if area[top] >= TOP_CUT_AREA_FRACTION * area.max():
            return True
        surface = m & ~ndimage.binary_erosion(m)
        edge = np.zeros_like(m)
        edge[:, 0], edge[:, -1], edge[:, :, 0], edge[:, :, -1] = True, True, True, True
        edge |= ndimage.binary_dilation(~self.fov, iterations=1)
        return bool((surface & edge).sum() >= EDGE_SURFACE_FRACTION * max(surface.sum(), 1))


def coarse_grid(vol: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block factors (z, y, x), the coarse voxel size (mm) and the block-mean volume."""
    g = vol.geometry
    spacing = np.array([g.spacing[2], g.spacing[1], g.spacing[0]], dtype=float)
    factors = np.maximum(np.rint(COARSE_VOXEL_MM / spacing).astype(int), 1)
    factors = np.minimum(factors, np.asarray(vol.array.shape))
    return factors, spacing * factors, block_mean(np.asarray(vol.array), factors)


HEART_SUFFIX = "_heart.npz"
"""``<series_uid>_heart.npz`` beside an analysis volume: its heart, found once by the
resample step (:func:`save_heart`) and read by every method (``find_heart(vol, cache)``)."""


def save_heart(heart: Heart | None, shape: tuple[int, ...], path: Path) -> None:
    """Write ``heart`` (None: no heart found) of a volume of ``shape`` to ``path`` (.npz,
    atomically)."""
    from cacflow.provenance import atomic_path

    arrays: dict[str, np.ndarray] = {"shape": np.asarray(shape, dtype=np.int64)}
    if heart is not None:
        arrays |= {
            "mask": heart.mask,
            "factors": np.asarray(heart.factors),
            "coarse_mm": np.asarray(heart.coarse_mm),
            "fov": heart.fov,
            "top_is_first": np.asarray(heart.top_is_first),
            "region": heart.region,
        }
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_heart(path: Path, shape: tuple[int, ...]) -> tuple[bool, Heart | None]:
    """``(valid, heart)`` from a :func:`save_heart` file: valid is False when the file is
    missing or was written for a volume of another shape (then find the heart anew)."""
    if not Path(path).exists():
        return False, None
    with np.load(path) as z:
        if tuple(int(n) for n in z["shape"]) != tuple(shape):
            return False, None
        if "mask" not in z:
            return True, None
        heart = Heart(
            z["mask"], z["factors"], z["coarse_mm"], z["fov"], bool(z["top_is_first"]), z["region"]
        )
    return True, heart


def find_heart(vol: Volume, cache: Path | None = None) -> Heart | None:
    """The heart of ``vol`` (HU, (z, y, x)) by steps 1-5 of the module docstring; None when
    no lungs or no mediastinal soft tissue are found. ``cache``: a :data:`HEART_SUFFIX`
    file written for this volume by the resample step; read instead of searching when it
    exists and fits the volume's shape."""
    if cache is not None:
        valid, heart = load_heart(cache, tuple(vol.array.shape))
        if valid:
            return heart
    factors, coarse_mm, coarse = coarse_grid(vol)
    fov = field_of_view(np.asarray(vol.array), factors)
    left_is_high = float(np.asarray(vol.geometry.direction, float).reshape(3, 3)[0, 0]) >= 0.0
    found = heart_mask(coarse, coarse_mm, fov, left_is_high)
    if found is None:
        return None
    mask, region = found
    top_is_first = float(vol.geometry.index_to_world(np.array([0.0, 0.0, 1.0]))[2]) < float(
        vol.geometry.index_to_world(np.zeros(3))[2]
    )
    return Heart(mask, factors, coarse_mm, fov, top_is_first, region)


def heart_mask(
    coarse: np.ndarray, coarse_mm: np.ndarray, fov: np.ndarray, left_is_high: bool = True
) -> tuple[np.ndarray, np.ndarray] | None:
    """Steps 2-5 on a coarse HU grid: the heart and the region it was searched in; None
    when there is no heart to find. ``left_is_high``: the column index grows towards the
    patient's left (+x, LPS), as in the usual axial stack."""
    rim = fov_edge(inner_fov(fov))
    cut = cut_by_fov(coarse, rim)
    body, lungs = tissue_masks(coarse, coarse_mm, fov, rim, cut)
    if not lungs.any():
        return None
    region = mediastinum(body, lungs, fov, rim & cut[:, None, None], left_is_high)
    region &= ~behind_spine(coarse, body, coarse_mm)
    soft = (coarse > SOFT_TISSUE_HU[0]) & (coarse < SOFT_TISSUE_HU[1])
    soft |= small_bright(coarse, region, coarse_mm)  # calcium must not dent the heart
    heart = _heart_from(soft & region, lungs, coarse_mm)
    enhanced = (coarse >= SOFT_TISSUE_HU[1]) & (coarse < ENHANCED_BLOOD_MAX_HU) & region
    if heart is None or enhanced.sum() > heart.sum():
        # iodinated blood lies above the soft-tissue range: search blood and myocardium
        # together so that the contrast check (cacflow.scorable) sees the real blood pool
        tissue = (coarse > SOFT_TISSUE_HU[0]) & (coarse < ENHANCED_BLOOD_MAX_HU) & region
        wide = _heart_from(tissue, lungs, coarse_mm)
        if wide is not None and (heart is None or wide.sum() > heart.sum()):
            heart = wide
    if heart is None or _largest_section_cm2(heart, coarse_mm) < HEART_MIN_SECTION_CM2:
        return None  # no heart, or only the great vessels' roots (a FOV too small for it)
    return heart, region


def _largest_section_cm2(mask: np.ndarray, coarse_mm: np.ndarray) -> float:
    """Area (cm²) of the largest axial slice of a coarse mask."""
    return float(mask.sum(axis=(1, 2)).max()) * float(coarse_mm[1] * coarse_mm[2]) / 100.0


def small_bright(coarse: np.ndarray, region: np.ndarray, coarse_mm: np.ndarray) -> np.ndarray:
    """Coarse blocks above the soft-tissue range in ``region`` whose 3D components are
    smaller than :data:`SMALL_BRIGHT_ML`: calcified plaques, valve and annulus calcium. Taken
    as soft tissue, so that a heavily calcified heart is found whole (large bright
    components, contrast-filled chambers or bone, are left to the checks that need them)."""
    bright = (coarse >= SOFT_TISSUE_HU[1]) & region
    labels = cc3d.connected_components(bright, connectivity=26)
    if labels.max() == 0:
        return bright
    ml = np.bincount(labels.ravel()) * float(np.prod(coarse_mm)) / 1000.0
    small = ml < SMALL_BRIGHT_ML
    small[0] = False
    return small[labels]


def _heart_from(cand: np.ndarray, lungs: np.ndarray, coarse_mm: np.ndarray) -> np.ndarray | None:
    """Step 5 on the candidate tissue ``cand``: the chosen core grown back; None if none."""
    core = erode(cand, HEART_EROSION_MM, coarse_mm)
    labels = cc3d.connected_components(core, connectivity=26)
    if labels.max() == 0:
        return None
    stats = cc3d.statistics(labels)
    sizes, coms = stats["voxel_counts"][1:], stats["centroids"][1:]
    lung_c = np.argwhere(lungs).mean(axis=0) * coarse_mm
    dist = np.linalg.norm(coms * coarse_mm - lung_c, axis=1)
    dist[sizes < CANDIDATE_FRACTION * sizes.max()] = np.inf
    best = int(np.argmin(dist)) + 1
    # Grow the chosen core back, but only into voxels nearer to it than to any other core:
    # the descending aorta and the great vessels keep their own territory.
    dist_mm, nearest = ndimage.distance_transform_edt(
        labels == 0, sampling=coarse_mm, return_indices=True
    )
    owner = labels[tuple(nearest)]
    heart = (owner == best) & (dist_mm <= HEART_EROSION_MM) & cand
    return fill_holes(heart)  # calcium inside the heart leaves no hole


def field_of_view(hu: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Coarse blocks inside the reconstruction circle (step 1)."""
    mean = block_mean(hu, factors).astype(np.float64)
    sq = block_mean(np.square(hu.astype(np.float64)), factors)
    constant = (sq - mean**2) < 1.0  # variance below 1 HU^2: real air is never that flat
    return ~(constant & (mean <= PADDING_MAX_HU))


def tissue_masks(
    coarse: np.ndarray,
    coarse_mm: np.ndarray,
    fov: np.ndarray,
    rim: np.ndarray,
    cut: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Body (per-slice convex hull) and lung masks of a coarse HU volume (step 2). ``rim``:
    the edge blocks of the FOV less its own edge (``fov_edge(inner_fov(fov))``); ``cut``:
    the slices the FOV cuts (:func:`cut_by_fov`)."""
    body = _largest_component(coarse > BODY_MIN_HU)
    hull = np.zeros_like(body)
    for k in range(body.shape[0]):
        hull[k] = convex_hull_2d(body[k])
    low = inner_fov(fov) & (coarse < LUNG_MAX_HU)
    dark = coarse < OUTSIDE_AIR_MAX_HU  # air round the body; lung parenchyma is brighter
    # In a slice whose FOV edge runs mostly through the body or the lungs (a cardiac FOV),
    # the lung goes on past the body's hull to the FOV's edge.
    air = low & (hull | (cut[:, None, None] & ~dark))
    # Air open to the air round the body (between the back and the table, beside the arms,
    # in front of the chest in a cardiac FOV, where its blocks on the skin are brighter than
    # `dark`) is no lung: lungs are walled in by the chest, and where a cardiac FOV cuts
    # them they end at the FOV's edge, not at air. The air round the body is the dark air
    # outside the hull that reaches the FOV's edge (a dark bleb in a lung does not). Tested
    # per slice (2D components), so that one slice where a lung reaches such air (the apex
    # beside the neck) keeps the rest.
    inplane = np.zeros((3, 3, 3), bool)
    inplane[1] = True  # 8-neighbours in the slice, none across slices
    round_body, _ = ndimage.label(low & ~hull & dark, structure=inplane)
    on_edge = np.unique(round_body[rim])
    area_cm2 = np.bincount(round_body.ravel()) * float(coarse_mm[1] * coarse_mm[2]) / 100.0
    on_edge = on_edge[(on_edge > 0) & (area_cm2[on_edge] >= ROUND_AIR_MIN_CM2)]
    outside = ndimage.binary_dilation(np.isin(round_body, on_edge), inplane)
    pieces, _ = ndimage.label(air, structure=inplane)
    opened = np.unique(pieces[outside & air])
    air &= ~np.isin(pieces, opened[opened > 0])
    labels = cc3d.connected_components(air, connectivity=26)
    if labels.max() == 0:
        return hull, air
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    big = counts * float(np.prod(coarse_mm)) / 1000.0 >= LUNG_MIN_ML
    return hull, big[labels]


def convex_hull_2d(mask: np.ndarray) -> np.ndarray:
    """The filled convex hull of a 2D mask (pixel centres); the mask itself when it is too
    small or flat for a hull. Only the mask's boundary pixels enter the hull computation."""
    edge = mask & ~ndimage.binary_erosion(mask)
    pts = np.argwhere(edge)
    if len(pts) < 4:
        return mask.copy()
    try:
        hull = ConvexHull(pts)
    except QhullError:
        return mask.copy()
    ys, x0, x1 = _hull_rows(hull.equations, pts.min(axis=0), pts.max(axis=0))
    cols = np.arange(mask.shape[1])
    out = np.zeros_like(mask)
    out[ys] = (cols >= x0[:, None]) & (cols <= x1[:, None])
    return out | mask


_HULL_TOL = 1e-9
"""A pixel centre is inside the hull when every facet's a*y + b*x + c <= this."""


def _hull_rows(
    eq: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, first columns, last columns) of the pixel centres inside the convex hull with
    facet equations ``eq`` (rows a, b, c: a*y + b*x + c <= 0 inside) within the box
    ``lo``..``hi`` (inclusive); empty rows have first > last. Per row each facet bounds x
    from one side, so the cost is rows x facets, not pixels x facets."""
    a, b, c = eq[:, 0], eq[:, 1], eq[:, 2]
    ys = np.arange(int(lo[0]), int(hi[0]) + 1)
    rhs = _HULL_TOL - c[None, :] - a[None, :] * ys[:, None]  # b * x <= rhs, every facet
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = rhs / b[None, :]
    upper, lower, flat = b > 1e-12, b < -1e-12, np.abs(b) <= 1e-12
    x1 = np.floor(np.where(upper, bound, np.inf).min(axis=1) + 1e-6)
    x0 = np.ceil(np.where(lower, bound, -np.inf).max(axis=1) - 1e-6)
    x1 = np.minimum(x1, hi[1]).astype(int)
    x0 = np.maximum(x0, lo[1]).astype(int)
    x1[(np.where(flat, rhs, 0.0) < 0).any(axis=1)] = -1  # a flat facet excludes the row

    def outside(x: np.ndarray) -> np.ndarray:
        return (a * ys[:, None] + b * x[:, None] + c > _HULL_TOL).any(axis=1) & (x0 <= x1)

    # the division may round across a pixel centre: settle the ends on the inequality
    while (bad := outside(x0)).any():
        x0[bad] += 1
    while (bad := outside(x1)).any():
        x1[bad] -= 1
    return ys, x0, x1


def fov_edge(fov: np.ndarray) -> np.ndarray:
    """Blocks of ``fov`` next to its outside or the image border (8-neighbours, per slice)."""
    inside = np.pad(fov, ((0, 0), (1, 1), (1, 1)), constant_values=False)
    return fov & ~ndimage.binary_erosion(inside, np.ones((1, 3, 3), bool))[:, 1:-1, 1:-1]


def inner_fov(fov: np.ndarray) -> np.ndarray:
    """``fov`` without its edge blocks: a block on the reconstruction circle averages image
    and padding, so its mean is no tissue's HU (a ring of false lung otherwise)."""
    return fov & ~fov_edge(fov)


def cut_by_fov(coarse: np.ndarray, rim: np.ndarray) -> np.ndarray:
    """(z,) True for the slices that the FOV's edge cuts through the body or the lungs
    (:data:`FOV_CUT_FRACTION` of the edge ``rim`` above :data:`OUTSIDE_AIR_MAX_HU`; ``rim`` =
    ``fov_edge(inner_fov(fov))``, the FOV's own edge blocks mixing image and padding)."""
    on_edge = rim.sum(axis=(1, 2))
    through = (rim & (coarse > OUTSIDE_AIR_MAX_HU)).sum(axis=(1, 2))
    return (on_edge > 0) & (through >= FOV_CUT_FRACTION * on_edge)


def mediastinum(
    body: np.ndarray,
    lungs: np.ndarray,
    fov: np.ndarray | None = None,
    cut_edge: np.ndarray | None = None,
    left_is_high: bool = True,
) -> np.ndarray:
    """Per image row, the voxels strictly between the lungs on the two sides of the body's
    midline (column axis) (step 3).

    A cardiac FOV cuts the lungs: beside the front of the heart they lie outside the image.
    Where a side's lung reaches ``cut_edge`` (the edge of ``fov``, the coarse blocks inside
    the reconstruction circle, in the slices that the FOV cuts, :func:`cut_by_fov`; the
    image border counts as an edge) and is large there
    (:func:`_cut_side`), that lung goes on outside, so in the slice's rows where it has no
    voxel but the other side's lung has, the FOV's edge bounds the mediastinum on that
    side (rows with lung on neither side stay out: below the heart they cross the liver).
    Only the patient's left side (``left_is_high``: higher column index) is so extended: on
    the right the liver, not heart, reaches the FOV's edge at the heart's inferior levels.
    A chest FOV holds the whole lungs and is unchanged by this."""
    nx = body.shape[2]
    cols = np.arange(nx)
    body_cols = np.nonzero(body)[2]
    mid = int(np.rint(body_cols.mean())) if body_cols.size else nx // 2
    side_a = lungs & (cols < mid)
    side_b = lungs & (cols >= mid)
    has_a, has_b = side_a.any(axis=2), side_b.any(axis=2)
    a_last = nx - 1 - np.argmax(side_a[..., ::-1], axis=2)
    b_first = np.argmax(side_b, axis=2)
    if fov is not None and cut_edge is not None:
        # only on the patient's left: there a FOV centred on the heart cuts the heart's
        # left border (or the lung beside it); on the right, at the heart's inferior
        # levels, the liver reaches the FOV's edge where no lung is
        row_in = fov.any(axis=2)
        if left_is_high:
            cut = _cut_side(side_b, cut_edge)[:, None] & row_in & ~has_b & has_a
            b_first = np.where(cut, nx - np.argmax(fov[..., ::-1], axis=2), b_first)
            has_b = has_b | cut
        else:
            cut = _cut_side(side_a, cut_edge)[:, None] & row_in & ~has_a & has_b
            a_last = np.where(cut, np.argmax(fov, axis=2) - 1, a_last)
            has_a = has_a | cut
    rows = (has_a & has_b)[..., None]
    return rows & (cols > a_last[..., None]) & (cols < b_first[..., None])


def _cut_side(lung: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """(z,) True for the slices in which one side's ``lung`` reaches the FOV ``edge`` and
    holds at least :data:`CUT_LUNG_FRACTION` of its largest slice's area (below the heart
    only the recesses behind the liver are left of the lungs: no mediastinum there)."""
    area = lung.sum(axis=(1, 2))
    return (lung & edge).any(axis=(1, 2)) & (area >= CUT_LUNG_FRACTION * area.max())


def behind_spine(coarse: np.ndarray, body: np.ndarray, coarse_mm: np.ndarray) -> np.ndarray:
    """Coarse voxels posterior of the spine's front edge, per slice (step 4).

    Spine = the largest 3D component of the bone within :data:`SPINE_HALF_WIDTH_MM` of the
    body's midline column and posterior of the body's centroid (calcium of the aorta or the
    heart's back is no spine) (the ribs, joined to the spine at this resolution,
    and the sternum are left out that way). Slices without such bone (a cardiac FOV may
    not hold the spine) are not cut.
    """
    bone = coarse > BONE_MIN_HU
    cols = np.arange(coarse.shape[2])
    mid = float(np.nonzero(body)[2].mean())
    band = np.abs(cols - mid) * coarse_mm[2] <= SPINE_HALF_WIDTH_MM
    rows = np.arange(coarse.shape[1])
    body_y = float(np.nonzero(body)[1].mean())
    spine = _largest_component(bone & band[None, None, :] & (rows > body_y)[None, :, None])
    has = spine.any(axis=(1, 2))
    front = np.argmax(spine.any(axis=2), axis=1)  # first (most anterior) spine row per slice
    margin = int(np.ceil(SPINE_MARGIN_MM / coarse_mm[1]))
    out = rows[None, :, None] >= (front - margin)[:, None, None]
    out[~has] = False
    return np.broadcast_to(out, coarse.shape) & np.ones(coarse.shape, dtype=bool)


def blood_pool_hu(vol: Volume, heart: Heart) -> float:
    """Median HU (full grid) of the heart's core: ≈ 30-55 HU without contrast."""
    core = upsample(heart.core(), heart.factors, vol.array.shape)
    return float(np.median(np.asarray(vol.array)[core]))


def noise_hu(vol: Volume, heart: Heart) -> float:
    """Image noise (HU): median over the heart's core of the standard deviation in an
    in-plane window of :data:`NOISE_WINDOW_MM` (a homogeneous-region SD that the few
    tissue edges in the core barely move)."""
    hu = np.asarray(vol.array, dtype=np.float32)
    core = upsample(heart.core(), heart.factors, hu.shape)
    ks = np.flatnonzero(core.any(axis=(1, 2)))
    sy, sx = vol.geometry.spacing[1], vol.geometry.spacing[0]
    size = (1, max(3, round(NOISE_WINDOW_MM / sy)), max(3, round(NOISE_WINDOW_MM / sx)))
    part = hu[ks]
    mean = ndimage.uniform_filter(part, size=size)
    var = ndimage.uniform_filter(part * part, size=size) - mean * mean
    sd = np.sqrt(np.maximum(var, 0.0))
    return float(np.median(sd[core[ks]]))


# --- small morphology helpers on coarse grids (mm-aware) -----------------------------------


def block_mean(a: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Mean over blocks of ``factors`` voxels (z, y, x); a partial last block is dropped."""
    shape = np.maximum(np.array(a.shape) // factors, 1)
    fz, fy, fx = (int(f) for f in np.minimum(factors, a.shape))
    nz, ny, nx = (int(s) for s in shape)
    crop = a[: nz * fz, : ny * fy, : nx * fx]
    if crop.dtype != np.float64:
        crop = crop.astype(np.float32)
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


def _box(mask: np.ndarray, pad: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by ``pad`` voxels per axis, clipped to the array."""
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def depth_map(mask: np.ndarray, spacing_mm: np.ndarray) -> np.ndarray:
    """Distance (mm) of each voxel of ``mask`` from its outside; 0 outside ``mask``."""
    out = np.zeros(mask.shape, dtype=float)
    if mask.any():
        box = _box(mask, np.ones(3, dtype=int))
        out[box] = ndimage.distance_transform_edt(mask[box], sampling=spacing_mm)
    return out


def erode(mask: np.ndarray, radius_mm: float, spacing_mm: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` farther than ``radius_mm`` from its outside (Euclidean, mm)."""
    return depth_map(mask, spacing_mm) > radius_mm


def dilate(mask: np.ndarray, radius_mm: float, spacing_mm: np.ndarray) -> np.ndarray:
    """Voxels within ``radius_mm`` of ``mask`` (Euclidean, mm)."""
    out = np.zeros_like(mask, dtype=bool)
    if not mask.any():
        return out
    box = _box(mask, np.ceil(radius_mm / spacing_mm).astype(int) + 1)
    out[box] = ndimage.distance_transform_edt(~mask[box], sampling=spacing_mm) <= radius_mm
    return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` plus every background region (6-connected) that does not reach the border."""
    background = cc3d.connected_components(~mask, connectivity=6)
    faces = np.concatenate(
        [np.ravel(np.take(background, i, axis=a)) for a in range(3) for i in (0, -1)]
    )
    outside = np.isin(background, np.unique(faces))
    return mask | ~outside
