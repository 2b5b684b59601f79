"""Sample a v2 scene on its grid: anatomy, blurred lesions, correlated noise, padding.

Image model, per axial slice (axis order (z, y, x), HU, float32 until the end):

1. nominal anatomy at voxel centres (:func:`render_anatomy`);
2. the kernel's MTF applied in-plane (:func:`cacflow.synth.kernels.blur_inplane`): edge
   blur, and the overshoot of sharp kernels;
3. each calcification added as its partial-volume delta ``occupancy x (HU - background)``,
   occupancy averaged over 3 x 3 sub-pixels and over the slice profile (a box of the slice
   thickness), convolved with the kernel's PSF and, in a non-gated scan, with a coronary
   lesion's in-plane motion path (:func:`lesion_delta`);
4. kernel-textured noise (:func:`cacflow.synth.kernels.add_correlated_noise`);
5. rounding, clipping to [-1024, 3071] and the vendor's padding value outside the
   reconstruction circle.

The truth is computed on the voxels actually written (:func:`truth_components`), with the
reference-standard convention: a lesion is the 26-connected component of voxels >= 130 HU
that holds its brightest voxel. Lesions are kept isolated from bone and from each other
(:data:`CLEARANCE_PX`, :func:`cacflow.synth.phantom.clearance_slices`); a lesion whose
component still meets bone or another lesion's component, or that shows no calcium voxel,
is taken out of the image (and of the truth); so is one drowned in noise (its component
grows far beyond its own support, :data:`SWAMPED_FACTOR`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage

from cacflow.conventions import CALCIUM_THRESHOLD_HU, PADDING_HU
from cacflow.synth import kernels as kn
from cacflow.synth import scene as sc
from cacflow.synth import scene_v2 as s2
from cacflow.synth.phantom import (
    MAX_STORED_HU,
    MAX_TRIES,
    Grid,
    PlacedCalcification,
    Proposal,
    _ellipse,
    _paint_disc,
    _paint_ellipsoid,
    clearance_slices,
    grid_of,
)

CLEARANCE_PX = 3
"""Least number of pixels in-plane between the supports of two calcified objects."""
SUPPORT_HU = 20.0
"""A lesion's support: voxels where its blurred delta exceeds this (HU)."""
MIN_PEAK_HU = 150.0
"""A candidate lesion whose noise-free peak stays below this is drawn again."""
SUBPIXELS = 3
SUB_Z_MM = 0.3
"""Sub-sample spacing of the slice profile (mm)."""
SWAMPED_FACTOR = 3.0
SWAMPED_EXTRA_VOXELS = 100
"""A lesion whose component holds more than ``SWAMPED_FACTOR x support +
SWAMPED_EXTRA_VOXELS`` voxels has drowned in noise (thin sharp or lung reconstructions,
where noise >= 130 HU percolates): it is taken out like a conflicting one."""
LESION_PEAK_HU = (250.0, 1600.0)
ANATOMY_SUB_Z_MM = 1.0
"""Sub-slice spacing (mm) of the anatomy's slice profile (thicker slices average several)."""
"""Intrinsic peak HU of a calcification before partial volume and blur."""


@dataclass
class RenderedV2:
    hu: np.ndarray
    grid: Grid
    calcifications: list[PlacedCalcification]
    hard: np.ndarray
    """Bone and cartilage calcium (nominal >= 130 HU), bool (z, y, x)."""


# --- anatomy ---------------------------------------------------------------------------
def render_anatomy(anat: s2.AnatomyV2, grid: Grid) -> np.ndarray:
    """Nominal HU (float32, (z, y, x)) of the v2 anatomy at voxel centres."""
    b = anat.base
    j = b.tissue_jitter_hu
    vol = np.full(grid.shape, sc.AIR_HU, dtype=np.float32)
    vol[:, _ellipse(grid, b.body_centre, b.body_semi)] = sc.SUBCUTANEOUS_FAT_HU + j["fat"]
    vol[:, _ellipse(grid, b.body_centre, b.muscle_semi)] = sc.MUSCLE_HU + j["muscle"]
    cavity = _ellipse(grid, b.body_centre, b.cavity_semi)
    vol[:, cavity] = sc.MEDIASTINAL_FAT_HU
    _paint_lungs(vol, grid, b, cavity)
    blood = s2.BLOOD_HU + j["blood"]
    _paint_lung_vessels(vol, grid, anat, blood)
    _paint_aorta(vol, grid, anat, blood)
    c, semi = b.heart_centre, b.heart_semi
    epi = semi + b.epicardial_fat_mm
    _paint_ellipsoid(vol, grid, c, epi + anat.pericardium_mm, s2.PERICARDIUM_HU)
    _paint_ellipsoid(vol, grid, c, epi, s2.EPICARDIAL_FAT_HU)
    _paint_ellipsoid(vol, grid, c, semi, s2.MYOCARDIUM_HU)
    for centre, csemi in anat.chambers:
        _paint_ellipsoid(vol, grid, centre, csemi, blood)
    _paint_coronary_vessels(vol, grid, b, blood)
    asc = _ellipse(grid, b.asc_aorta_centre, (b.asc_aorta_radius,) * 2)
    rising = (grid.zs >= b.asc_aorta_z0) & (grid.zs <= anat.arch_z)
    vol[rising[:, None, None] & asc[None]] = blood
    _paint_spine(vol, grid, anat)
    _paint_sternum_and_cartilage(vol, grid, anat)
    _paint_ribs(vol, grid, anat)
    return vol


def _paint_lungs(vol: np.ndarray, grid: Grid, b: sc.Anatomy, cavity: np.ndarray) -> None:
    ax, ay = b.cavity_semi
    zc, sz = b.heart_centre[2] + 160.0, 300.0
    scale2 = np.clip(1.0 - ((grid.zs - zc) / sz) ** 2, 0.0, None)
    for side in (1.0, -1.0):
        dx = (grid.xs[None, :] - side * 0.5 * ax) / (0.52 * ax)
        dy = (grid.ys[:, None] - 0.03 * ay) / (0.97 * ay)
        r2 = np.where(cavity, dx * dx + dy * dy, np.inf).astype(np.float32)
        lung = r2[None] <= scale2[:, None, None].astype(np.float32)
        vol[lung] = s2.LUNG_HU


def _paint_coronary_vessels(vol: np.ndarray, grid: Grid, b: sc.Anatomy, blood: float) -> None:
    """The coronary arteries as soft-tissue tubes in the epicardial fat along the lesion
    paths (:data:`cacflow.synth.scene.PATHS`), radius tapering from
    :data:`cacflow.synth.scene_v2.CORONARY_RADIUS_MM` to 1 mm."""
    step = 0.5 * min(grid.pixel_mm, grid.increment_mm, 1.0)
    for label, r0 in s2.CORONARY_RADIUS_MM.items():
        centres = [sc.path_frame(b, label, 0.0, 0.0)[0]]
        for t in np.linspace(0.0, 1.0, 400)[1:]:
            c = sc.path_frame(b, label, float(t), 0.0)[0]
            if np.linalg.norm(c - centres[-1]) >= step:
                centres.append(c)
        for i, c in enumerate(centres):
            r = r0 + (1.0 - r0) * i / max(len(centres) - 1, 1)
            _paint_ellipsoid(vol, grid, c, np.array([r, r, r]), blood)


def _paint_lung_vessels(vol: np.ndarray, grid: Grid, anat: s2.AnatomyV2, blood: float) -> None:
    """Straight pulmonary vessels (blood HU, 1-4 mm radius) crossing the slices obliquely;
    painted only over lung voxels."""
    for (x0, y0, z0), (dx, dy), r in anat.lung_vessels:
        for k, z in enumerate(grid.zs):
            cx, cy = x0 + dx * (z - z0), y0 + dy * (z - z0)
            i0 = max(int((cx - r - grid.origin[0]) / grid.pixel_mm), 0)
            i1 = min(int((cx + r - grid.origin[0]) / grid.pixel_mm) + 2, grid.shape[2])
            j0 = max(int((cy - r - grid.origin[1]) / grid.pixel_mm), 0)
            j1 = min(int((cy + r - grid.origin[1]) / grid.pixel_mm) + 2, grid.shape[1])
            if i0 >= i1 or j0 >= j1:
                continue
            sub = vol[k, j0:j1, i0:i1]
            ddx = grid.xs[i0:i1][None, :] - cx
            ddy = grid.ys[j0:j1][:, None] - cy
            sub[(ddx * ddx + ddy * ddy <= r * r) & (sub == s2.LUNG_HU)] = blood


def _paint_aorta(vol: np.ndarray, grid: Grid, anat: s2.AnatomyV2, blood: float) -> None:
    """Descending aorta up to the arch, and the arch: a half circle in the vertical plane
    through the ascending and descending aortas, rising ``arch_height`` above ``arch_z``."""
    b = anat.base
    desc = _ellipse(grid, b.desc_aorta_centre, (b.desc_aorta_radius,) * 2)
    below = grid.zs <= anat.arch_z
    vol[below[:, None, None] & desc[None]] = blood
    (ax, ay), (dx, dy) = b.asc_aorta_centre, b.desc_aorta_centre
    mx, my = (ax + dx) / 2.0, (ay + dy) / 2.0
    r = 0.5 * (b.asc_aorta_radius + b.desc_aorta_radius)
    for theta in np.linspace(0.0, np.pi, 48):
        cx, cy = mx + (ax - mx) * np.cos(theta), my + (ay - my) * np.cos(theta)
        cz = anat.arch_z + anat.arch_height * np.sin(theta)
        for k in np.flatnonzero(np.abs(grid.zs - cz) < r):
            rad = math.sqrt(max(r * r - (grid.zs[k] - cz) ** 2, 0.0))
            _paint_disc(vol[k], grid, (cx, cy), rad, blood)


def _paint_spine(vol: np.ndarray, grid: Grid, anat: s2.AnatomyV2) -> None:
    """Vertebral bodies (cortical shell >= 700 HU, cancellous core 200-400 HU), discs,
    posterior elements and the spinal canal."""
    b = anat.base
    sx, sy = b.spine_centre
    r = b.spine_radius
    body = _ellipse(grid, (sx, sy), (r, r))
    core = _ellipse(grid, (sx, sy), (r - 1.5, r - 1.5))
    post = _ellipse(grid, (sx, sy + r + 14.0), (22.0, 10.0))
    post_core = _ellipse(grid, (sx, sy + r + 14.0), (19.0, 7.5))
    canal = _ellipse(grid, (sx, sy + r + 8.0), (7.0, 7.0))
    disc = ((grid.zs - b.vertebra_phase_mm) % sc.VERTEBRA_PITCH_MM) < sc.DISC_MM
    for k in range(grid.shape[0]):
        sl = vol[k]
        sl[post] = anat.cortical_hu
        sl[post_core] = anat.cancellous_hu
        sl[canal] = sc.SPINAL_CANAL_HU
        if disc[k]:
            sl[body] = sc.DISC_HU
        else:
            sl[body] = anat.cortical_hu
            sl[core] = anat.cancellous_hu


def _paint_sternum_and_cartilage(vol: np.ndarray, grid: Grid, anat: s2.AnatomyV2) -> None:
    """Sternum (cortical shell, cancellous core) and the costal cartilages beside it, with
    calcified cores in some scans; the cartilages lie in bands of z at the rib pitch."""
    b = anat.base
    y = -b.cavity_semi[1] - b.wall_mm / 2.0
    vol[:, _ellipse(grid, (0.0, y), (14.0, 6.0))] = anat.cortical_hu
    vol[:, _ellipse(grid, (0.0, y), (12.5, 4.5))] = anat.cancellous_hu
    band = ((grid.zs - b.rib_phase_mm) % sc.RIB_PITCH_MM) < 12.0
    for side in (1.0, -1.0):
        cx = side * 32.0
        cyl = _ellipse(grid, (cx, y + 3.0), (9.0, 4.5))
        vol[band[:, None, None] & cyl[None]] = s2.CARTILAGE_HU
        if anat.cartilage_calcified:
            spot = _ellipse(grid, (cx, y + 3.0), (4.0, 2.0))
            hu = 0.5 * sum(s2.CARTILAGE_CALCIUM_HU)
            vol[band[:, None, None] & spot[None]] = hu


def _paint_ribs(vol: np.ndarray, grid: Grid, anat: s2.AnatomyV2) -> None:
    """Rib sections with a cortical ring and marrow, moving round the wall with z."""
    b = anat.base
    rx = b.cavity_semi[0] + b.wall_mm / 2.0
    ry = b.cavity_semi[1] + b.wall_mm / 2.0
    a_post, a_ant = np.deg2rad(sc.RIB_ANGLES_DEG[0]), np.deg2rad(sc.RIB_ANGLES_DEG[1])
    z_lo, z_hi = grid.zs[0], grid.zs[-1] + sc.RIB_DROP_MM
    n0 = math.floor((z_lo - b.rib_phase_mm) / sc.RIB_PITCH_MM)
    n1 = math.ceil((z_hi - b.rib_phase_mm) / sc.RIB_PITCH_MM)
    tops = b.rib_phase_mm + sc.RIB_PITCH_MM * np.arange(n0, n1 + 1)
    for k, z in enumerate(grid.zs):
        for top in tops[(tops >= z) & (tops - sc.RIB_DROP_MM <= z)]:
            a = a_post + (a_ant - a_post) * (top - z) / sc.RIB_DROP_MM
            for side in (1.0, -1.0):
                c = (side * rx * np.cos(a), ry * np.sin(a))
                _paint_disc(vol[k], grid, c, sc.RIB_RADIUS_MM, anat.cortical_hu)
                _paint_disc(vol[k], grid, c, sc.RIB_RADIUS_MM - 1.2, anat.cancellous_hu)


def slice_profile_anatomy(anat: s2.AnatomyV2, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Anatomy averaged over each slice's profile (a box of the slice thickness, sampled
    every <= :data:`ANATOMY_SUB_Z_MM`), and the hard mask: voxels where any sub-slice is
    bone or cartilage calcium (>= 130 HU)."""
    n_sub = max(1, math.ceil(grid.thickness_mm / ANATOMY_SUB_Z_MM - 1e-9))
    if n_sub == 1:
        nominal = render_anatomy(anat, grid)
        return nominal, nominal >= CALCIUM_THRESHOLD_HU
    dz = grid.thickness_mm / n_sub
    z0 = grid.origin[2] - grid.thickness_mm / 2.0 + dz / 2.0
    n, ny, nx = grid.shape
    fine = Grid(
        origin=(grid.origin[0], grid.origin[1], z0),
        pixel_mm=grid.pixel_mm,
        increment_mm=dz,
        thickness_mm=dz,
        shape=(n * n_sub, ny, nx),
    )
    vol = render_anatomy(anat, fine).reshape(n, n_sub, ny, nx)
    hard = (vol >= CALCIUM_THRESHOLD_HU).any(axis=1)
    return vol.mean(axis=1, dtype=np.float32), hard


# --- lesions ---------------------------------------------------------------------------
def _motion_kernel(length_px: float, angle: float) -> np.ndarray | None:
    """Normalised 2D line kernel (y, x) of ``length_px`` pixels at ``angle`` (rad)."""
    if length_px < 1.0:
        return None
    h = int(math.ceil(length_px / 2.0))
    ker = np.zeros((2 * h + 1, 2 * h + 1))
    for t in np.linspace(-length_px / 2.0, length_px / 2.0, 4 * h + 1):
        x, y = h + t * math.cos(angle), h + t * math.sin(angle)
        i0, j0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - i0, y - j0
        for dj, di, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                          (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):  # fmt: skip
            if 0 <= j0 + dj < ker.shape[0] and 0 <= i0 + di < ker.shape[1]:
                ker[j0 + dj, i0 + di] += w
    return ker / ker.sum()


def lesion_delta(
    calc: sc.Calcification,
    grid: Grid,
    background: np.ndarray,
    psf: np.ndarray,
    motion: np.ndarray | None,
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Index box and blurred partial-volume delta (HU, float32) of one calcification over
    the (pre-blur) ``background``; None when its box leaves the grid."""
    half = np.sqrt(((calc.axes * calc.semi_mm[None, :]) ** 2).sum(axis=1))
    pad_px = psf.shape[0] // 2 + (0 if motion is None else motion.shape[0] // 2) + 2
    pad = np.array([pad_px * grid.pixel_mm, pad_px * grid.pixel_mm, grid.thickness_mm])
    step = np.array([grid.pixel_mm, grid.pixel_mm, grid.increment_mm])
    lo = np.floor((calc.centre - half - pad - np.array(grid.origin)) / step).astype(int)
    hi = np.ceil((calc.centre + half + pad - np.array(grid.origin)) / step).astype(int) + 1
    lo, hi = lo[::-1], hi[::-1]
    if np.any(lo < 0) or np.any(hi > np.array(grid.shape)):
        return None
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    n_sub_z = max(1, int(round(grid.thickness_mm / SUB_Z_MM)))
    oz = (np.arange(n_sub_z) + 0.5) / n_sub_z - 0.5
    oxy = (np.arange(SUBPIXELS) + 0.5) / SUBPIXELS - 0.5
    zs = (grid.zs[box[0]][:, None] + oz[None, :] * grid.thickness_mm).ravel()
    ys = (grid.ys[box[1]][:, None] + oxy[None, :] * grid.pixel_mm).ravel()
    xs = (grid.xs[box[2]][:, None] + oxy[None, :] * grid.pixel_mm).ravel()
    inv = calc.axes / calc.semi_mm[None, :]  # rel @ inv -> normalised coordinates
    rel_x = (xs - calc.centre[0])[None, None, :, None] * inv[0]
    rel_y = (ys - calc.centre[1])[None, :, None, None] * inv[1]
    rel_z = (zs - calc.centre[2])[:, None, None, None] * inv[2]
    u2 = ((rel_x + rel_y + rel_z) ** 2).sum(axis=-1)
    if calc.label == "STENT":
        inside = (u2 <= 1.0) & (_across2(xs, ys, zs, calc) >= 0.3)
        value = np.where(inside, calc.peak_hu, 0.0)
    else:
        edge = 0.5 * calc.peak_hu
        value = np.where(u2 <= 1.0, edge + (calc.peak_hu - edge) * (1.0 - u2), 0.0)
    shape = (hi[0] - lo[0], n_sub_z, hi[1] - lo[1], SUBPIXELS, hi[2] - lo[2], SUBPIXELS)
    occ_val = value.reshape(shape).mean(axis=(1, 3, 5))
    occ = (u2 <= 1.0).reshape(shape).mean(axis=(1, 3, 5))
    delta = occ_val - occ * background[box]
    blurred = np.stack([ndimage.convolve(d, psf, mode="constant") for d in delta])
    if motion is not None:
        blurred = np.stack([ndimage.convolve(d, motion, mode="constant") for d in blurred])
    return box, blurred.astype(np.float32)


def _across2(xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, calc: sc.Calcification):
    """Squared normalised distance from a stent's axis (its first principal axis)."""
    inv = calc.axes[:, 1:] / calc.semi_mm[None, 1:]
    rx = (xs - calc.centre[0])[None, None, :, None] * inv[0]
    ry = (ys - calc.centre[1])[None, :, None, None] * inv[1]
    rz = (zs - calc.centre[2])[:, None, None, None] * inv[2]
    return ((rx + ry + rz) ** 2).sum(axis=-1)


def _isolated(support: np.ndarray, box: tuple[slice, ...], occupied: np.ndarray, halo) -> bool:
    lo = [max(s.start - h, 0) for s, h in zip(box, halo, strict=True)]
    hi = [min(s.stop + h, n) for s, h, n in zip(box, halo, occupied.shape, strict=True)]
    sub = occupied[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    if not sub.any():
        return True
    mask = np.zeros(sub.shape, dtype=bool)
    mask[
        box[0].start - lo[0] : box[0].stop - lo[0],
        box[1].start - lo[1] : box[1].stop - lo[1],
        box[2].start - lo[2] : box[2].stop - lo[2],
    ] = support
    grown = ndimage.binary_dilation(mask, structure=np.ones(tuple(2 * h + 1 for h in halo), bool))
    return not bool((grown & sub).any())


@dataclass
class _Lesion:
    calc: sc.Calcification
    box: tuple[slice, slice, slice]
    delta: np.ndarray


def place_lesions(
    rng: np.random.Generator,
    grid: Grid,
    background: np.ndarray,
    blurred: np.ndarray,
    hard: np.ndarray,
    acq: s2.AcquisitionV2,
    wanted: list[Proposal],
) -> list[_Lesion]:
    """One lesion per proposal, visible (noise-free peak >= :data:`MIN_PEAK_HU`) and
    isolated from bone and the other lesions; a proposal that fails :data:`MAX_TRIES`
    times is dropped."""
    psf = kn.psf_kernel(acq.kernel_model, grid.pixel_mm)
    halo = (clearance_slices(grid.increment_mm), CLEARANCE_PX, CLEARANCE_PX)
    occupied = hard.copy()
    placed: list[_Lesion] = []
    for propose in wanted:
        for _ in range(MAX_TRIES):
            calc = propose(rng)
            if calc.label != "STENT":
                calc = _with_peak(calc, float(rng.uniform(*LESION_PEAK_HU)))
            motion = None
            if not acq.gated and calc.label in s2.MOTION_MM:
                length = float(rng.uniform(*s2.MOTION_MM[calc.label])) / grid.pixel_mm
                motion = _motion_kernel(length, float(rng.uniform(0.0, np.pi)))
            out = lesion_delta(calc, grid, background, psf, motion)
            if out is None:
                continue
            box, delta = out
            if float((blurred[box] + delta).max()) < MIN_PEAK_HU:
                continue
            support = delta > SUPPORT_HU
            if not support.any() or not _isolated(support, box, occupied, halo):
                continue
            occupied[box] |= support
            placed.append(_Lesion(calc, box, delta))
            break
    return placed


def _with_peak(calc: sc.Calcification, peak: float) -> sc.Calcification:
    return sc.Calcification(calc.label, calc.centre, calc.axes, calc.semi_mm, peak, calc.annotated)


# --- final image and truth ---------------------------------------------------------------
def outside_circle(grid: Grid, centre: tuple[float, float], fov_mm: float) -> np.ndarray:
    """(y, x) mask of the pixels outside the reconstruction circle (diameter ``fov_mm``)."""
    return ~_ellipse(grid, centre, (fov_mm / 2.0, fov_mm / 2.0))


def _write(img: np.ndarray, outside: np.ndarray, padding_hu: int) -> np.ndarray:
    out = np.rint(img)
    np.clip(out, PADDING_HU, MAX_STORED_HU, out=out)
    out = out.astype(np.int16)
    out[:, outside] = padding_hu
    return out


def truth_components(
    hu: np.ndarray, lesions: list[_Lesion], hard: np.ndarray
) -> tuple[list[np.ndarray | None], list[int]]:
    """Per lesion, the voxels (n, 3; (z, y, x), sorted) of the 26-connected component of
    ``hu >= 130`` holding its brightest voxel (None when that voxel is below 130), and the
    indices of lesions in conflict (their component meets bone or another lesion's, or has
    drowned in noise, see :data:`SWAMPED_FACTOR`)."""
    calcium = hu >= CALCIUM_THRESHOLD_HU
    labels = cc3d.connected_components(calcium, connectivity=26)
    sizes = np.bincount(labels.ravel())
    comps: list[int] = []
    for les in lesions:
        sub = hu[les.box].astype(np.float32)
        sub = np.where(les.delta > SUPPORT_HU, sub, -np.inf)
        k = np.unravel_index(int(np.argmax(sub)), sub.shape)
        idx = tuple(int(s.start + i) for s, i in zip(les.box, k, strict=True))
        comps.append(int(labels[idx]) if calcium[idx] else 0)
    hard_labels = set(np.unique(labels[hard & calcium]).tolist()) - {0}
    conflicts, seen = [], set()
    for i, (c, les) in enumerate(zip(comps, lesions, strict=True)):
        limit = SWAMPED_FACTOR * int((les.delta > SUPPORT_HU).sum()) + SWAMPED_EXTRA_VOXELS
        if c and (c in hard_labels or c in seen or sizes[c] > limit):
            conflicts.append(i)
        seen.add(c)
    flat = np.flatnonzero(labels)  # one pass over the volume; calcium voxels are few
    flat_labels = labels.ravel()[flat]
    voxels: list[np.ndarray | None] = []
    for c in comps:
        if not c:
            voxels.append(None)
            continue
        idx = np.unravel_index(flat[flat_labels == c], labels.shape)
        voxels.append(np.stack(idx, axis=1))  # (z, y, x) order, sorted like argwhere
    return voxels, conflicts


def render(
    rng: np.random.Generator, anat: s2.AnatomyV2, acq: s2.AcquisitionV2, wanted: list[Proposal]
) -> RenderedV2:
    """The scan's HU image (int16) and its calcifications with their written voxels."""
    grid = grid_of(acq)
    nominal, hard = slice_profile_anatomy(anat, grid)
    blurred = nominal.copy()
    kn.blur_inplane(blurred, acq.kernel_model, grid.pixel_mm)
    lesions = place_lesions(rng, grid, nominal, blurred, hard, acq, wanted)
    del nominal
    img = blurred
    for les in lesions:
        img[les.box] += les.delta
    kn.add_correlated_noise(rng, img, acq.kernel_model, grid.pixel_mm, acq.noise_sd_hu)
    outside = outside_circle(grid, acq.centre, acq.fov_mm)
    while True:
        hu = _write(img, outside, acq.padding_hu)
        voxels, conflicts = truth_components(hu, lesions, hard)
        drop = set(conflicts) | {i for i, v in enumerate(voxels) if v is None}
        if not conflicts:
            break
        for i in sorted(conflicts, reverse=True):
            img[lesions[i].box] -= lesions[i].delta
        lesions = [les for i, les in enumerate(lesions) if i not in drop]
    placed = []
    for les, vox in zip(lesions, voxels, strict=True):
        if vox is None:
            continue
        values = hu[vox[:, 0], vox[:, 1], vox[:, 2]].astype(np.int64)
        placed.append(PlacedCalcification(les.calc, vox, values.astype(np.float32), values))
    return RenderedV2(hu=hu, grid=grid, calcifications=placed, hard=hard)
