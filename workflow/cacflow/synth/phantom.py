"""Sample a :class:`~cacflow.synth.scene.Scene` on a voxel grid: HU image and lesion voxels.

Shapes are evaluated at voxel centres (no partial volume). Arrays are in axis order
(z, y, x); positions are mm, LPS; the grid's axes run along +x, +y, +z.

Guarantees that make the exact truth equal to what a correct connected-component
pipeline measures at native geometry (see :mod:`cacflow.synth.truth`):

- Every voxel that is neither bone nor a calcification stays at or below
  :data:`SOFT_TISSUE_MAX_HU` after noise, so it is never calcium (>= 130 HU).
- Every calcification voxel is at least :data:`CALCIUM_THRESHOLD_HU`; every bone voxel
  at least :data:`BONE_MIN_HU`.
- Each calcification's voxel set is one 26-connected component, and no voxel of any other
  calcification or bone lies within :data:`CLEARANCE_PX` pixels in-plane and
  :func:`clearance_slices` slices in z of it. That z clearance keeps lesions apart after
  slab averaging to 3 mm slices every 1.5 mm (the pipeline default) as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cacflow.conventions import CALCIUM_THRESHOLD_HU, PADDING_HU
from cacflow.synth import scene as sc
from cacflow.volume import Geometry

SOFT_TISSUE_MAX_HU = 120.0
"""Noise is clipped so that no voxel outside bone and calcifications exceeds this HU."""
BONE_MIN_HU = 200.0
"""Noise is clipped so that every bone voxel is at least this HU."""
MAX_STORED_HU = 3071.0
"""Largest HU the 12-bit stored values hold (stored = HU + 1024 <= 4095)."""
LESION_EDGE_FRACTION = 0.35
"""A lesion's nominal HU falls from its peak at the centre to
``130 + LESION_EDGE_FRACTION * (peak - 130)`` at its surface (parabolic profile)."""
CLEARANCE_PX = 2
"""Least number of empty pixels, in-plane, between two calcified objects (or bone)."""
RESAMPLE_GUARD_MM = 4.5
"""Slab thickness (3 mm) plus increment (1.5 mm) of the pipeline's default resampling: two
objects whose nearest slices are at least this plus one native increment apart never touch
after slab averaging."""
MAX_TRIES = 40
"""Proposals drawn per wanted calcification before giving up on it."""
BONE_ID = -1


@dataclass(frozen=True)
class Grid:
    """Axial voxel grid: origin = centre of voxel (0, 0, 0), mm LPS; axis order (z, y, x)."""

    origin: tuple[float, float, float]
    pixel_mm: float
    increment_mm: float
    thickness_mm: float
    shape: tuple[int, int, int]

    @property
    def xs(self) -> np.ndarray:
        return self.origin[0] + self.pixel_mm * np.arange(self.shape[2])

    @property
    def ys(self) -> np.ndarray:
        return self.origin[1] + self.pixel_mm * np.arange(self.shape[1])

    @property
    def zs(self) -> np.ndarray:
        return self.origin[2] + self.increment_mm * np.arange(self.shape[0])

    @property
    def spacing_zyx(self) -> np.ndarray:
        return np.array([self.increment_mm, self.pixel_mm, self.pixel_mm])

    def geometry(self) -> Geometry:
        return Geometry(
            origin=self.origin,
            spacing=(self.pixel_mm, self.pixel_mm, self.increment_mm),
            slice_thickness_mm=self.thickness_mm,
        )

    def world(self, zyx: np.ndarray) -> np.ndarray:
        """Voxel indices (..., 3) in (z, y, x) order to LPS mm (..., 3) in (x, y, z) order."""
        zyx = np.asarray(zyx, dtype=float)
        return np.stack(
            [
                self.origin[0] + self.pixel_mm * zyx[..., 2],
                self.origin[1] + self.pixel_mm * zyx[..., 1],
                self.origin[2] + self.increment_mm * zyx[..., 0],
            ],
            axis=-1,
        )


def grid_of(acq: sc.Acquisition) -> Grid:
    return Grid(
        origin=acq.origin,
        pixel_mm=acq.pixel_mm,
        increment_mm=acq.thickness_mm,
        thickness_mm=acq.thickness_mm,
        shape=(acq.n_slices, acq.matrix, acq.matrix),
    )


def clearance_slices(increment_mm: float) -> int:
    """Slices of z clearance around a calcified object (see module docstring)."""
    return max(CLEARANCE_PX, math.ceil(RESAMPLE_GUARD_MM / increment_mm - 1e-9))


@dataclass
class PlacedCalcification:
    """A calcification on the grid: its voxels (n, 3) in (z, y, x) order, sorted, and their
    nominal HU (before noise); ``hu`` (int) is filled in after noise."""

    calc: sc.Calcification
    index: np.ndarray
    nominal_hu: np.ndarray
    hu: np.ndarray | None = None

    @property
    def label(self) -> str:
        return self.calc.label

    def peak_voxel(self) -> np.ndarray:
        """(z, y, x) index of the highest-HU voxel (first in (z, y, x) order on ties)."""
        assert self.hu is not None
        return self.index[int(np.argmax(self.hu))]


@dataclass
class Rendered:
    """A sampled scan: HU image (int16, (z, y, x)), its grid, its calcifications and its
    bone mask (bool, (z, y, x))."""

    hu: np.ndarray
    grid: Grid
    calcifications: list[PlacedCalcification]
    bone: np.ndarray


# --- shape helpers ------------------------------------------------------------------------
def _ellipse(grid: Grid, centre: tuple[float, float], semi: tuple[float, float]) -> np.ndarray:
    """(y, x) mask of the axis-aligned ellipse."""
    dx = (grid.xs[None, :] - centre[0]) / semi[0]
    dy = (grid.ys[:, None] - centre[1]) / semi[1]
    return dx * dx + dy * dy <= 1.0


def _index_bounds(grid: Grid, centre: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Unclipped index bounds [[k0, k1), [j0, j1), [i0, i1)] (rows z, y, x) of the voxel
    centres inside the world box centre +- half (``centre`` and ``half`` in x, y, z order)."""
    step = np.array([grid.pixel_mm, grid.pixel_mm, grid.increment_mm])
    lo = np.ceil((np.asarray(centre) - half - np.array(grid.origin)) / step).astype(int)
    hi = np.floor((np.asarray(centre) + half - np.array(grid.origin)) / step).astype(int) + 1
    return np.stack([lo, hi], axis=1)[::-1]


def _ellipsoid_box(
    grid: Grid, centre: np.ndarray, half: np.ndarray
) -> tuple[slice, slice, slice] | None:
    """Index box (z, y, x) of the world box centre +- half, clipped to the grid; None when
    empty."""
    b = _index_bounds(grid, centre, half)
    lo = np.maximum(b[:, 0], 0)
    hi = np.minimum(b[:, 1], np.array(grid.shape))
    if np.any(lo >= hi):
        return None
    return (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))


def _paint_ellipsoid(
    vol: np.ndarray, grid: Grid, centre: np.ndarray, semi: np.ndarray, value: float
) -> None:
    box = _ellipsoid_box(grid, centre, np.asarray(semi, float))
    if box is None:
        return
    z = (grid.zs[box[0]] - centre[2]) / semi[2]
    y = (grid.ys[box[1]] - centre[1]) / semi[1]
    x = (grid.xs[box[2]] - centre[0]) / semi[0]
    inside = z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2 <= 1.0
    vol[box][inside] = value


def _paint_disc(
    vol2d: np.ndarray, grid: Grid, centre: tuple[float, float], radius: float, value: float
) -> np.ndarray:
    """Paint a disc on one (y, x) slice; returns the painted (y, x) mask."""
    mask = np.zeros(vol2d.shape, dtype=bool)
    i0 = max(int(np.ceil((centre[0] - radius - grid.origin[0]) / grid.pixel_mm)), 0)
    i1 = min(
        int(np.floor((centre[0] + radius - grid.origin[0]) / grid.pixel_mm)) + 1, mask.shape[1]
    )
    j0 = max(int(np.ceil((centre[1] - radius - grid.origin[1]) / grid.pixel_mm)), 0)
    j1 = min(
        int(np.floor((centre[1] + radius - grid.origin[1]) / grid.pixel_mm)) + 1, mask.shape[0]
    )
    if i0 >= i1 or j0 >= j1:
        return mask
    dx = grid.xs[i0:i1][None, :] - centre[0]
    dy = grid.ys[j0:j1][:, None] - centre[1]
    mask[j0:j1, i0:i1] = dx * dx + dy * dy <= radius * radius
    vol2d[mask] = value
    return mask


# --- anatomy ------------------------------------------------------------------------------
def render_anatomy(anat: sc.Anatomy, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Nominal HU (float32, (z, y, x)) of the anatomy and its bone mask."""
    j = anat.tissue_jitter_hu
    vol = np.full(grid.shape, sc.AIR_HU, dtype=np.float32)
    bone = np.zeros(grid.shape, dtype=bool)
    vol[:, _ellipse(grid, anat.body_centre, anat.body_semi)] = sc.SUBCUTANEOUS_FAT_HU + j["fat"]
    vol[:, _ellipse(grid, anat.body_centre, anat.muscle_semi)] = sc.MUSCLE_HU + j["muscle"]
    cavity = _ellipse(grid, anat.body_centre, anat.cavity_semi)
    vol[:, cavity] = sc.MEDIASTINAL_FAT_HU
    _paint_lungs(vol, grid, anat, cavity, sc.LUNG_HU + 3.0 * j["lung"])
    _paint_liver(vol, grid, anat, cavity, sc.LIVER_HU + j["liver"])
    vol[:, _ellipse(grid, anat.desc_aorta_centre, (anat.desc_aorta_radius,) * 2)] = (
        sc.BLOOD_HU + j["blood"]
    )
    epi = anat.heart_semi + anat.epicardial_fat_mm
    _paint_ellipsoid(vol, grid, anat.heart_centre, epi, sc.EPICARDIAL_FAT_HU)
    _paint_ellipsoid(vol, grid, anat.heart_centre, anat.heart_semi, sc.MYOCARDIUM_HU)
    _paint_ellipsoid(vol, grid, anat.heart_centre, 0.7 * anat.heart_semi, sc.BLOOD_HU + j["blood"])
    asc = _ellipse(grid, anat.asc_aorta_centre, (anat.asc_aorta_radius,) * 2)
    above = grid.zs >= anat.asc_aorta_z0
    vol[above[:, None, None] & asc[None]] = sc.BLOOD_HU + j["blood"]
    _paint_spine(vol, bone, grid, anat)
    sternum_c = (anat.body_centre[0], anat.body_centre[1] - anat.cavity_semi[1] - anat.wall_mm / 2)
    sternum = _ellipse(grid, sternum_c, (13.0, 5.0))
    vol[:, sternum] = sc.STERNUM_HU
    bone[:, sternum] = True
    _paint_ribs(vol, bone, grid, anat)
    return vol, bone


def _paint_lungs(
    vol: np.ndarray, grid: Grid, anat: sc.Anatomy, cavity: np.ndarray, value: float
) -> None:
    """Two lungs: elliptic sections that narrow towards the lung bases (low z)."""
    bx, by = anat.body_centre
    ax, ay = anat.cavity_semi
    zc, sz = anat.heart_centre[2] + 180.0, 320.0
    scale2 = np.clip(1.0 - ((grid.zs - zc) / sz) ** 2, 0.0, None)
    for side in (1.0, -1.0):
        c = (bx + side * 0.52 * ax, by + 0.02 * ay)
        dx = (grid.xs[None, :] - c[0]) / (0.56 * ax)
        dy = (grid.ys[:, None] - c[1]) / (1.0 * ay)
        r2 = np.where(cavity, dx * dx + dy * dy, np.inf)
        lung = r2[None] <= scale2[:, None, None]
        vol[lung] = value


def _paint_liver(
    vol: np.ndarray, grid: Grid, anat: sc.Anatomy, cavity: np.ndarray, value: float
) -> None:
    """The liver dome, under the right lung, reaching 10 mm above the heart's lower pole."""
    bx, by = anat.body_centre
    ax, ay = anat.cavity_semi
    sz = 60.0
    zc = anat.heart_centre[2] - anat.heart_semi[2] + 10.0 - sz
    scale2 = np.clip(1.0 - ((grid.zs - zc) / sz) ** 2, 0.0, None)
    dx = (grid.xs[None, :] - (bx - 0.3 * ax)) / (0.8 * ax)
    dy = (grid.ys[:, None] - (by + 0.05 * ay)) / (0.95 * ay)
    r2 = np.where(cavity, dx * dx + dy * dy, np.inf)
    ks = np.flatnonzero(scale2 > 0)
    for k in ks:
        vol[k][r2 <= scale2[k]] = value


def _paint_spine(vol: np.ndarray, bone: np.ndarray, grid: Grid, anat: sc.Anatomy) -> None:
    """Vertebral bodies (cortical rim, cancellous core) with discs, posterior elements and
    the spinal canal."""
    sx, sy = anat.spine_centre
    r = anat.spine_radius
    body = _ellipse(grid, (sx, sy), (r, r))
    core = _ellipse(grid, (sx, sy), (r - 2.0, r - 2.0))
    post = _ellipse(grid, (sx, sy + r + 14.0), (22.0, 10.0))
    canal = _ellipse(grid, (sx, sy + r + 8.0), (7.0, 7.0))
    post &= ~canal
    disc = ((grid.zs - anat.vertebra_phase_mm) % sc.VERTEBRA_PITCH_MM) < sc.DISC_MM
    for k in range(grid.shape[0]):
        sl, bs = vol[k], bone[k]
        sl[canal] = sc.SPINAL_CANAL_HU
        sl[post] = sc.CORTICAL_BONE_HU
        bs[post] = True
        if disc[k]:
            sl[body] = sc.DISC_HU
        else:
            sl[body] = sc.CORTICAL_BONE_HU
            sl[core] = sc.CANCELLOUS_BONE_HU
            bs[body] = True


def _paint_ribs(vol: np.ndarray, bone: np.ndarray, grid: Grid, anat: sc.Anatomy) -> None:
    """Rib sections in the chest wall: each rib runs from the back (high z) forwards and
    down, so its section moves round the wall from slice to slice."""
    bx, by = anat.body_centre
    rx = anat.cavity_semi[0] + anat.wall_mm / 2.0
    ry = anat.cavity_semi[1] + anat.wall_mm / 2.0
    a_post, a_ant = np.deg2rad(sc.RIB_ANGLES_DEG[0]), np.deg2rad(sc.RIB_ANGLES_DEG[1])
    z_lo, z_hi = grid.zs[0], grid.zs[-1] + sc.RIB_DROP_MM
    n0 = math.floor((z_lo - anat.rib_phase_mm) / sc.RIB_PITCH_MM)
    n1 = math.ceil((z_hi - anat.rib_phase_mm) / sc.RIB_PITCH_MM)
    tops = anat.rib_phase_mm + sc.RIB_PITCH_MM * np.arange(n0, n1 + 1)
    for k, z in enumerate(grid.zs):
        for top in tops[(tops >= z) & (tops - sc.RIB_DROP_MM <= z)]:
            a = a_post + (a_ant - a_post) * (top - z) / sc.RIB_DROP_MM
            for side in (1.0, -1.0):
                c = (bx + side * rx * np.cos(a), by + ry * np.sin(a))
                bone[k] |= _paint_disc(vol[k], grid, c, sc.RIB_RADIUS_MM, sc.RIB_HU)


# --- calcifications -----------------------------------------------------------------------
def voxelize(calc: sc.Calcification, grid: Grid) -> tuple[np.ndarray, np.ndarray] | None:
    """Voxels (n, 3; (z, y, x), sorted) of an ellipsoidal calcification and their nominal HU.

    Voxels whose centre lies inside the ellipsoid; a calcification holding no voxel centre
    gets the voxel nearest its centre. Only the 26-connected part holding the most central
    voxel is kept, so the set is one component. None when it leaves the grid.
    """
    half = np.sqrt(((calc.axes * calc.semi_mm[None, :]) ** 2).sum(axis=1))
    pad = np.array([grid.pixel_mm, grid.pixel_mm, grid.increment_mm])
    bounds = _index_bounds(grid, calc.centre, half + pad)
    if np.any(bounds[:, 0] < 0) or np.any(bounds[:, 1] > np.array(grid.shape)):
        return None
    box = tuple(slice(int(a), int(b)) for a, b in bounds)
    z, y, x = np.meshgrid(grid.zs[box[0]], grid.ys[box[1]], grid.xs[box[2]], indexing="ij")
    rel = np.stack([x, y, z], axis=-1) - calc.centre
    u = np.sqrt((((rel @ calc.axes) / calc.semi_mm) ** 2).sum(axis=-1))
    inside = u <= 1.0
    centre_ix = np.unravel_index(int(np.argmin(u)), u.shape)
    inside[centre_ix] = True
    lab, _ = ndimage.label(inside, structure=np.ones((3, 3, 3), dtype=bool))
    keep = lab == lab[centre_ix]
    local = np.argwhere(keep)
    index = local + np.array([s.start for s in box])
    peak = calc.peak_hu
    edge = CALCIUM_THRESHOLD_HU + LESION_EDGE_FRACTION * (peak - CALCIUM_THRESHOLD_HU)
    uu = np.minimum(u[keep], 1.0)
    nominal = edge + (peak - edge) * (1.0 - uu * uu)
    return index, nominal


def is_isolated(index: np.ndarray, objmap: np.ndarray, grid: Grid) -> bool:
    """True when no other object voxel (objmap != 0) lies within the clearance box."""
    halo = np.array([clearance_slices(grid.increment_mm), CLEARANCE_PX, CLEARANCE_PX])
    lo = np.maximum(index.min(axis=0) - halo, 0)
    hi = np.minimum(index.max(axis=0) + halo + 1, np.array(grid.shape))
    sub = objmap[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    if not sub.any():
        return True
    mask = np.zeros(sub.shape, dtype=bool)
    rel = index - lo
    mask[rel[:, 0], rel[:, 1], rel[:, 2]] = True
    grown = ndimage.binary_dilation(mask, structure=np.ones(tuple(2 * halo + 1), dtype=bool))
    return not bool((grown & (sub != 0)).any())


Proposal = Callable[[np.random.Generator], sc.Calcification]
"""Draws one candidate calcification (mm, LPS) from a random generator."""


def place_calcifications(
    rng: np.random.Generator, grid: Grid, bone: np.ndarray, wanted: list[Proposal]
) -> list[PlacedCalcification]:
    """Place one calcification per proposal function, each isolated from bone and every
    other one. A wanted object with no isolated candidate in :data:`MAX_TRIES` is dropped."""
    objmap = np.where(bone, BONE_ID, 0).astype(np.int32)
    placed: list[PlacedCalcification] = []
    for propose in wanted:
        for _ in range(MAX_TRIES):
            vox = voxelize(calc := propose(rng), grid)
            if vox is None or not is_isolated(vox[0], objmap, grid):
                continue
            index, nominal = vox
            placed.append(PlacedCalcification(calc, index, nominal))
            objmap[index[:, 0], index[:, 1], index[:, 2]] = len(placed)
            break
    return placed


# --- noise and final image ------------------------------------------------------------------
def noise_field(
    rng: np.random.Generator, shape: tuple[int, int, int], sd_hu: float, smoothing_px: float
) -> np.ndarray:
    """Gaussian noise (float32, HU) with standard deviation ``sd_hu``; correlated in-plane
    by a Gaussian of ``smoothing_px`` pixels (then rescaled to ``sd_hu``)."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    if smoothing_px > 0:
        ndimage.gaussian_filter(noise, sigma=(0.0, smoothing_px, smoothing_px), output=noise)
        noise /= np.float32(noise.std())
    noise *= np.float32(sd_hu)
    return noise


def finish_image(
    nominal: np.ndarray,
    noise: np.ndarray,
    bone: np.ndarray,
    calcs: list[PlacedCalcification],
) -> np.ndarray:
    """Noisy HU (int16): soft tissue clipped to <= SOFT_TISSUE_MAX_HU, bone >= BONE_MIN_HU,
    calcifications >= the calcium threshold; fills each calcification's ``hu``.

    ``nominal`` is used as the work buffer (overwritten)."""
    img = nominal
    img += noise
    calc = np.zeros(img.shape, dtype=bool)
    for c in calcs:
        calc[c.index[:, 0], c.index[:, 1], c.index[:, 2]] = True
    np.minimum(img, np.float32(SOFT_TISSUE_MAX_HU), out=img, where=~(bone | calc))
    np.maximum(img, np.float32(BONE_MIN_HU), out=img, where=bone)
    np.maximum(img, np.float32(CALCIUM_THRESHOLD_HU), out=img, where=calc)
    np.rint(img, out=img)
    np.clip(img, PADDING_HU, MAX_STORED_HU, out=img)
    out = img.astype(np.int16)
    for c in calcs:
        c.hu = out[c.index[:, 0], c.index[:, 1], c.index[:, 2]].astype(np.int64)
    return out


def render(
    rng: np.random.Generator,
    anatomy: sc.Anatomy,
    acq: sc.Acquisition,
    wanted: list[Proposal],
) -> Rendered:
    """Sample anatomy, place the wanted calcifications, add noise: the scan's HU image."""
    grid = grid_of(acq)
    nominal, bone = render_anatomy(anatomy, grid)
    calcs = place_calcifications(rng, grid, bone, wanted)
    for c in calcs:
        nominal[c.index[:, 0], c.index[:, 1], c.index[:, 2]] = c.nominal_hu
    noise = noise_field(rng, grid.shape, acq.noise_sd_hu, sc.NOISE_SMOOTHING_PX[acq.sharpness])
    hu = finish_image(nominal, noise, bone, calcs)
    return Rendered(hu=hu, grid=grid, calcifications=calcs, bone=bone)
