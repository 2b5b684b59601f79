"""Real backgrounds with inserted calcium: known lesions written into a real CT series.

``cacflow insert`` copies one real DICOM series (read-only input) and paints synthetic
calcified lesions into the copy at coronary positions on the surface of that scan's own
heart, blurred like the scan itself: each lesion is an ellipsoid of true density
``density_hu`` rendered on a sub-voxel grid, blurred in-plane by a Gaussian point-spread
function whose width is estimated from the scan's own noise texture
(:func:`estimate_psf_sigma_mm`) and averaged over each slice's thickness (the slice
profile, partial volume). Voxels take ``bg + f * (density - bg)`` where ``f`` is the blurred
lesion fraction, so small or faint lesions lose peak HU exactly as real ones do.

Positions (LPS mm, array axis order (z, y, x)): voxels of the epicardial band (between
:data:`BAND_MM` from the heart found by :func:`cacflow.heart.find_heart`) that are fat
(:data:`BAND_HU`; the coronary arteries run in epicardial fat), at least
:data:`CLEARANCE_MM` from any existing voxel >= 130 HU (no lesion merges with bone, vessel
walls or other calcium), at least :data:`AIR_CLEARANCE_MM` from air or lung, and at least
:data:`TOP_MARGIN_MM` below the heart's upper border (:meth:`cacflow.heart.Heart.top_z`).
The artery follows the sector round the heart centre in the axial plane (patient's right:
RCA; anterior: LAD; left / posterior: LCX) and RCA / LCX keep to the upper
:data:`AV_GROOVE_FRACTION` of the heart (the atrioventricular groove), and none lies on the
back of the atria (:meth:`cacflow.heart.Heart.on_atrial_back`). This approximates coronary
anatomy and is stated in the README: lesions lie where coronary calcium lies round a real
heart, not along traced vessels.

Cardiac-FOV copies (:func:`crop_fov`) keep the scan's pixel size and range unless
``gated`` (:func:`gated_geometry`): then they also take a gated calcium scan's geometry,
a 512² matrix over the FOV (0.39 mm pixels at 200 mm) and a range from just above the
heart's upper border to just below the heart, as the held-back gated scans of issue 13
(512², 0.32-0.47 mm, FOV cutting body and lungs).

Outputs (``out_dir``): ``dicom/<name>/`` (the copy, new Series/SOP Instance UIDs derived
from the original ones and the seed), ``annotations.csv`` (one point per lesion at its
highest written voxel, the contract format) and ``truth.csv`` (per artery, the reference
built from those points on the written native image by :mod:`cacflow.reference` and scored
by :mod:`cacflow.calcium`: computed on what was written).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from cacflow.conventions import CALCIUM_THRESHOLD_HU, PADDING_HU, ScoringConventions
from cacflow.synth.cohort import ANNOTATION_COLUMNS
from cacflow.synth.cohort import TRUTH_COLUMNS as SCORE_TRUTH_COLUMNS
from cacflow.volume import Geometry, Volume

BAND_MM = (1.5, 6.0)
"""Distance range (mm) outside the heart mask where lesions are placed (epicardial fat)."""
CLEARANCE_MM = 5.0
"""Smallest distance (mm) of a lesion centre from any voxel >= 130 HU of the background."""
AIR_CLEARANCE_MM = 5.0
"""Smallest distance (mm) of a lesion centre from air or lung (< :data:`AIR_HU`): the
coronary arteries lie in epicardial fat, not against the pleura."""
AIR_HU = -400.0
TOP_MARGIN_MM = 5.0
AV_GROOVE_FRACTION = 0.6
"""RCA and LCX lesions lie in the upper part of the heart's z range (this fraction)."""
BAND_HU = (-190.0, -30.0)
"""Background HU accepted at a lesion centre: fat (the coronary arteries run in epicardial
fat)."""
SEMI_AXIS_MM = (0.7, 3.0)
DENSITY_HU = (200.0, 1100.0)
SUBSAMPLES = 4
"""Sub-samples per voxel edge when rendering a lesion."""
PSF_SIGMA_MM = (0.25, 1.2)
"""Clamp of the estimated in-plane PSF sigma (mm)."""
SECTORS_DEG = {"RCA": (110.0, 180.0), "LAD": (-110.0, -45.0), "LCX": (-45.0, 110.0)}
"""Azimuth ranges (deg, LPS: 0 = patient's left, -90 = anterior, +-180 = right); RCA is
|azimuth| > 110."""
ARTERIES = ("LAD", "LCX", "RCA")
GATED_MATRIX = 512
"""Matrix of a gated calcium scan's reconstruction (pixels per side of the FOV)."""
GATED_RANGE_MM = (10.0, 25.0)
"""A gated copy's scan range runs from the first value (mm) above the heart's upper border
(:meth:`cacflow.heart.Heart.top_z`) to the second below the heart's lowest slice (a gated
scan runs on past the apex; the localiser may stop short of it, by about 20 mm on
LIDC-IDRI-0314)."""


@dataclass(frozen=True)
class Series:
    """A read DICOM series: datasets in slice order, HU volume, geometry."""

    datasets: list[Any]
    volume: Volume


@dataclass(frozen=True)
class Lesion:
    """One lesion to paint: centre (LPS mm), semi-axes (mm; x, y, z), true density (HU)."""

    label: str
    centre: np.ndarray
    semi_axes_mm: np.ndarray
    density_hu: float


def read_series(folder: str | os.PathLike) -> Series:
    """Read every DICOM image of ``folder`` (one axial series), ordered along the slice
    normal, as HU (RescaleSlope / Intercept applied)."""
    import pydicom

    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    datasets = []
    for p in files:
        try:
            ds = pydicom.dcmread(p)
        except pydicom.errors.InvalidDicomError:
            continue
        if "PixelData" in ds and "ImagePositionPatient" in ds:
            datasets.append(ds)
    if len(datasets) < 2:
        raise ValueError(f"{folder}: fewer than two DICOM images with pixels")
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    pos = np.array([np.array(d.ImagePositionPatient, float) for d in datasets])
    order = np.argsort(pos @ normal, kind="stable")
    datasets = [datasets[i] for i in order]
    pos = pos[order]
    hu = np.stack([_hu(d) for d in datasets]).astype(np.float32)
    sy, sx = (float(v) for v in datasets[0].PixelSpacing)
    inc = float(np.median(np.diff(pos @ normal)))
    direction = np.column_stack([iop[:3], iop[3:], normal]).ravel()
    thickness = float(datasets[0].get("SliceThickness") or inc)
    geom = Geometry(tuple(pos[0]), (sx, sy, inc), tuple(direction), thickness)
    meta = {"kernel": str(datasets[0].get("ConvolutionKernel", "") or "")}
    return Series(datasets, Volume(hu, geom, meta))


def _hu(ds: Any) -> np.ndarray:
    slope = float(ds.get("RescaleSlope", 1) or 1)
    icpt = float(ds.get("RescaleIntercept", 0) or 0)
    return ds.pixel_array.astype(np.float32) * slope + icpt


def estimate_psf_sigma_mm(vol: Volume, core: np.ndarray) -> float:
    """In-plane PSF sigma (mm) from the scan's noise texture in ``core`` (full-grid mask).

    The noise of a filtered back-projection image is white noise shaped by the kernel, so
    its neighbour correlation rho at lag d (one pixel) tells the kernel's width; for a
    Gaussian PSF of sigma s the noise autocorrelation is Gaussian with variance 2 s^2, so
    s = d / (2 sqrt(-ln rho)). The residual from a 5-pixel local mean removes anatomy.
    Clamped to :data:`PSF_SIGMA_MM`.
    """
    hu = np.asarray(vol.array, dtype=np.float32)
    ks = np.flatnonzero(core.any(axis=(1, 2)))
    part = hu[ks]
    resid = part - ndimage.uniform_filter(part, size=(1, 5, 5))
    m = core[ks][:, :, :-1] & core[ks][:, :, 1:]
    a, b = resid[:, :, :-1][m], resid[:, :, 1:][m]
    rho = float(np.corrcoef(a, b)[0, 1]) if a.size > 10 else 0.0
    d = float(vol.geometry.spacing[0])
    if rho <= 0.01:
        return PSF_SIGMA_MM[0]
    sigma = d / (2.0 * np.sqrt(-np.log(min(rho, 0.999))))
    return float(np.clip(sigma, *PSF_SIGMA_MM))


def candidate_positions(vol: Volume, heart: Any) -> dict[str, np.ndarray]:
    """Voxel indices (n, 3; z, y, x) where each artery's lesions may be centred."""
    from cacflow.heart import dilate

    hu = np.asarray(vol.array)
    full = heart.full_mask(hu.shape)
    g = vol.geometry
    spacing = np.array([g.spacing[2], g.spacing[1], g.spacing[0]])
    step = np.maximum(np.rint(1.5 / spacing).astype(int), 1)  # thin the grid to ~1.5 mm
    sub = (slice(None, None, step[0]), slice(None, None, step[1]), slice(None, None, step[2]))
    outside = ndimage.distance_transform_edt(~full[sub], sampling=spacing * step)
    band = (outside >= BAND_MM[0]) & (outside <= BAND_MM[1])
    band &= (hu[sub] > BAND_HU[0]) & (hu[sub] < BAND_HU[1])
    bright = dilate(hu[sub] >= CALCIUM_THRESHOLD_HU, CLEARANCE_MM, spacing * step)
    air = dilate(hu[sub] < AIR_HU, AIR_CLEARANCE_MM, spacing * step)
    band &= ~bright & ~air & heart.region_full(hu.shape)[sub]
    idx = np.argwhere(band) * step
    world = g.index_to_world(idx[:, ::-1].astype(float))
    centre = heart.centre(g)
    zs = g.index_to_world(np.argwhere(full)[:, ::-1].astype(float))[:, 2]
    top, bottom = heart.top_z(g), float(zs.min())
    z_ok = world[:, 2] <= top - TOP_MARGIN_MM
    groove = world[:, 2] >= top - AV_GROOVE_FRACTION * (top - bottom)
    az = np.degrees(np.arctan2(world[:, 1] - centre[1], world[:, 0] - centre[0]))
    back = heart.on_atrial_back(world, centre, g)
    out = {}
    for art in ARTERIES:
        lo, hi = SECTORS_DEG[art]
        sel = (np.abs(az) > lo) if art == "RCA" else (az >= lo) & (az < hi)
        sel &= z_ok & (groove if art != "LAD" else True) & ~back
        out[art] = idx[sel]
    return out


def draw_lesions(
    candidates: dict[str, np.ndarray], geom: Geometry, rng: np.random.Generator, n: int
) -> list[Lesion]:
    """``n`` lesions, arteries drawn in turn among those with candidate positions, at least
    2 x the largest semi-axis + :data:`CLEARANCE_MM` apart."""
    arts = [a for a in ARTERIES if len(candidates[a])]
    lesions: list[Lesion] = []
    for i in range(n * 20):
        if len(lesions) == n or not arts:
            break
        art = arts[i % len(arts)]
        idx = candidates[art][rng.integers(len(candidates[art]))]
        centre = geom.index_to_world(idx[::-1].astype(float))
        axes = rng.uniform(*SEMI_AXIS_MM, size=3)
        if any(
            np.linalg.norm(centre - o.centre) < 2 * SEMI_AXIS_MM[1] + CLEARANCE_MM for o in lesions
        ):
            continue
        density = float(np.exp(rng.uniform(np.log(DENSITY_HU[0]), np.log(DENSITY_HU[1]))))
        lesions.append(Lesion(art, centre, axes, density))
    return lesions


def paint(vol: Volume, lesion: Lesion, psf_sigma_mm: float) -> tuple[tuple[slice, ...], np.ndarray]:
    """Paint one lesion into ``vol.array`` in place; returns its box (z, y, x slices) and
    the voxels of the box it touched."""
    g = vol.geometry
    hu = vol.array
    sx, sy, inc = g.spacing
    thick = max(g.slice_thickness_mm, inc)
    reach = lesion.semi_axes_mm + 3 * psf_sigma_mm + np.array([0, 0, thick])
    c_idx = g.world_to_index(lesion.centre)  # (x, y, z) continuous
    lo = np.floor(c_idx - reach / np.array([sx, sy, inc])).astype(int)
    hi = np.ceil(c_idx + reach / np.array([sx, sy, inc])).astype(int) + 1
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.array([hu.shape[2], hu.shape[1], hu.shape[0]]))
    s = SUBSAMPLES
    # sub-sample offsets within a voxel (in-plane) and across the slice thickness (z)
    off = (np.arange(s) + 0.5) / s - 0.5
    xs = (np.arange(lo[0], hi[0])[:, None] + off[None, :]).ravel()
    ys = (np.arange(lo[1], hi[1])[:, None] + off[None, :]).ravel()
    zoff = off * thick / inc
    zs = (np.arange(lo[2], hi[2])[:, None] + zoff[None, :]).ravel()
    Z, Y, X = np.meshgrid(zs, ys, xs, indexing="ij")
    pts = g.index_to_world(np.stack([X, Y, Z], axis=-1))
    d = (pts - lesion.centre) / lesion.semi_axes_mm
    inside = (np.sum(d * d, axis=-1) <= 1.0).astype(np.float32)
    sig = (0.0, psf_sigma_mm / (sy / s), psf_sigma_mm / (sx / s))
    blurred = ndimage.gaussian_filter(inside, sigma=sig, mode="constant")
    nz, ny, nx = hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0]
    frac = blurred.reshape(nz, s, ny, s, nx, s).mean(axis=(1, 3, 5))
    box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    bg = hu[box]
    hu[box] = bg + frac * (lesion.density_hu - bg)
    return box, frac > 0


def peak_index(hu: np.ndarray, box: tuple[slice, ...], support: np.ndarray) -> np.ndarray:
    """(z, y, x) index of the highest voxel of a painted lesion (``box``, ``support``)."""
    peak = np.unravel_index(int(np.argmax(np.where(support, hu[box], -np.inf))), support.shape)
    return np.array(peak) + np.array([b.start for b in box])


def derived_uid(*parts: str) -> str:
    """A deterministic UID (2.25 + integer from SHA-256) for derived objects."""
    h = hashlib.sha256("/".join(parts).encode()).digest()[:16]
    return f"2.25.{int.from_bytes(h, 'big')}"


def stored_values(ds: Any, hu: np.ndarray) -> np.ndarray:
    """The stored pixel values (the dataset's dtype) that encode ``hu`` (rounded, clipped)."""
    slope = float(ds.get("RescaleSlope", 1) or 1)
    icpt = float(ds.get("RescaleIntercept", 0) or 0)
    dtype = np.dtype(np.int16 if int(ds.get("PixelRepresentation", 0)) else np.uint16)
    info = np.iinfo(dtype)
    return np.clip(np.rint((hu - icpt) / slope), info.min, info.max).astype(dtype)


def as_written(series: Series, hu: np.ndarray) -> np.ndarray:
    """``hu`` (z, y, x) as it reads back after writing: the truth is computed on this."""
    out = np.empty(hu.shape, dtype=np.float32)
    for k, ds in enumerate(series.datasets):
        slope = float(ds.get("RescaleSlope", 1) or 1)
        icpt = float(ds.get("RescaleIntercept", 0) or 0)
        out[k] = stored_values(ds, hu[k]).astype(np.float32) * slope + icpt
    return out


def write_series(series: Series, hu: np.ndarray, out_dir: Path, seed: int) -> str:
    """Write the painted copy as DICOM into ``out_dir``; returns its SeriesInstanceUID
    (derived from the original one, the copy's name and the seed: unique per copy)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = str(series.datasets[0].get("SeriesInstanceUID", "") or "")
    series_uid = derived_uid(base, "insert", out_dir.name, str(seed))
    for k, ds in enumerate(series.datasets):
        new = ds.copy()
        new.PixelData = stored_values(ds, hu[k]).tobytes()
        new.SeriesInstanceUID = series_uid
        new.SOPInstanceUID = derived_uid(series_uid, str(k))
        if hasattr(new, "file_meta"):
            new.file_meta.MediaStorageSOPInstanceUID = new.SOPInstanceUID
        new.SeriesDescription = f"cacflow inserted calcium seed {seed}"
        new.save_as(out_dir / f"{k:05d}.dcm", enforce_file_format=True)
    return series_uid


def crop_fov(series: Series, heart: Any, fov_mm: float, circle: bool = True) -> Series:
    """A cardiac field of view: the square of ``fov_mm`` round the heart's centre, pixels
    outside its inscribed circle set to padding (PixelPaddingValue), as scanners write a
    reconstruction circle; ``circle=False``: the whole square holds image (a display field
    of view inside the scan's, so body and lungs end at the image border). Pixel spacing is
    kept (fewer pixels)."""
    vol = series.volume
    full = heart.full_mask(vol.array.shape)
    _, cy, cx = np.argwhere(full).mean(axis=0)
    g = vol.geometry
    r = fov_mm / 2.0 / g.spacing[0]
    y0, x0 = max(int(cy - r), 0), max(int(cx - r), 0)
    n = int(2 * r)
    sub = np.array(vol.array[:, y0 : y0 + n, x0 : x0 + n], copy=True)
    yy, xx = np.mgrid[: sub.shape[1], : sub.shape[2]]
    if circle:
        sub[:, (yy + 0.5 - r) ** 2 + (xx + 0.5 - r) ** 2 > r * r] = PADDING_HU
    origin = g.index_to_world(np.array([x0, y0, 0.0]))
    datasets = []
    for k, ds in enumerate(series.datasets):
        new = ds.copy()
        new.Rows, new.Columns = sub.shape[1], sub.shape[2]
        pos = g.index_to_world(np.array([x0, y0, float(k)]))
        new.ImagePositionPatient = [float(v) for v in pos]
        slope = float(ds.get("RescaleSlope", 1) or 1)
        icpt = float(ds.get("RescaleIntercept", 0) or 0)
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        pad = int(np.rint((PADDING_HU - icpt) / slope))
        new.add_new(0x00280120, "SS" if signed else "US", max(pad, 0) if not signed else pad)
        datasets.append(new)
    geom = Geometry(tuple(origin), g.spacing, g.direction, g.slice_thickness_mm)
    return Series(datasets, Volume(sub.astype(np.float32), geom, dict(vol.meta)))


def gated_geometry(series: Series, heart: Any, matrix: int = GATED_MATRIX) -> Series:
    """A cardiac-FOV copy (:func:`crop_fov`) in the geometry of a gated calcium scan: the
    scan range cut to :data:`GATED_RANGE_MM` above the heart's upper border and below its
    lowest slice, and each slice reconstructed on a ``matrix``-square grid over the same
    field of view (pixel side FOV / ``matrix``; cubic spline of the real image, so the
    kernel's noise texture keeps its size in mm, as a zoomed reconstruction does; padding
    outside the reconstruction circle stays padding). Slice thickness and spacing are
    kept; ``heart`` is the heart of ``series``."""
    vol = series.volume
    g = vol.geometry
    k = np.arange(vol.array.shape[0], dtype=float)
    z = g.index_to_world(np.stack([np.zeros_like(k), np.zeros_like(k), k], axis=1))[:, 2]
    in_heart = heart.full_mask(vol.array.shape).any(axis=(1, 2))
    lo = float(z[in_heart].min()) - GATED_RANGE_MM[1]
    hi = heart.top_z(g) + GATED_RANGE_MM[0]
    keep = np.flatnonzero((z >= lo) & (z <= hi))
    rows, cols = vol.array.shape[1:]
    factor = (matrix / rows, matrix / cols)
    geom = g.regridded(rows, cols, matrix, matrix, first_slice=int(keep[0]))
    padding = vol.array <= PADDING_HU + 1.0
    hu = np.empty((len(keep), matrix, matrix), dtype=np.float32)
    for i, kk in enumerate(keep):
        img = np.where(padding[kk], -1000.0, vol.array[kk])  # no padding step to ring
        hu[i] = ndimage.zoom(img, factor, order=3, mode="nearest", grid_mode=True)
        pad = ndimage.zoom(padding[kk].astype(np.float32), factor, order=0, mode="nearest")
        hu[i][pad > 0.5] = PADDING_HU
    datasets = []
    for i, kk in enumerate(keep):
        new = series.datasets[kk].copy()
        new.Rows, new.Columns = matrix, matrix
        new.PixelSpacing = [float(geom.spacing[1]), float(geom.spacing[0])]
        pos = geom.index_to_world(np.array([0.0, 0.0, float(i)]))
        new.ImagePositionPatient = [float(v) for v in pos]
        datasets.append(new)
    return Series(datasets, Volume(hu, geom, dict(vol.meta)))


def insert_series(
    folder: str | os.PathLike,
    out_dir: str | os.PathLike,
    seed: int,
    n_lesions: int,
    name: str,
    fov_mm: float | None = None,
    scoring: ScoringConventions | None = None,
    gated: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Insert ``n_lesions`` lesions into a copy of the series in ``folder``; write it to
    ``out_dir/dicom/<name>``. ``gated``: a cardiac-FOV copy takes a gated calcium scan's
    geometry (:func:`gated_geometry`). Returns the annotation rows and the truth rows."""
    from cacflow.heart import find_heart, upsample

    series = read_series(folder)
    heart = find_heart(series.volume)
    if heart is None:
        raise ValueError(f"{folder}: no heart found to insert calcium at")
    if fov_mm is not None:
        series = crop_fov(series, heart, fov_mm)
        heart = find_heart(series.volume)
        if heart is None:
            raise ValueError(f"{folder}: no heart found in the {fov_mm:g} mm field of view")
        if gated:
            series = gated_geometry(series, heart)
            heart = find_heart(series.volume)
            if heart is None:
                raise ValueError(f"{folder}: no heart found in the gated {fov_mm:g} mm copy")
    vol = series.volume
    rng = np.random.default_rng([seed, int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)])
    core = upsample(heart.core(), heart.factors, vol.array.shape)
    psf = estimate_psf_sigma_mm(vol, core)
    lesions = draw_lesions(candidate_positions(vol, heart), vol.geometry, rng, n_lesions)
    painted = Volume(np.array(vol.array, copy=True), vol.geometry, dict(vol.meta))
    spots = [paint(painted, les, psf) for les in lesions]
    painted.array[...] = as_written(series, painted.array)
    peaks = [peak_index(painted.array, box, support) for box, support in spots]
    uid = write_series(series, painted.array, Path(out_dir) / "dicom" / name, seed)
    patient = f"inserted-{name}"
    ann = []
    for les, pk in zip(lesions, peaks, strict=True):
        x, y, z = vol.geometry.index_to_world(pk[::-1].astype(float))
        ann.append(
            {"series_uid": uid, "x": x, "y": y, "z": z, "label": les.label, "patient_id": patient}
        )
    truth = truth_rows(painted, ann, scoring or ScoringConventions())
    for row in truth:
        row.update(series_uid=uid, patient_id=patient, psf_sigma_mm=round(psf, 3))
    return ann, truth


def truth_rows(
    vol: Volume, ann: list[dict[str, Any]], conv: ScoringConventions
) -> list[dict[str, Any]]:
    """Scores per artery of the painted image from its annotation points (the reference
    builder and the scoring engine on what was written, native geometry)."""
    import pandas as pd

    from cacflow.calcium import artery_scores, score_lesions
    from cacflow.reference import reference_labels

    points = pd.DataFrame(ann, columns=["series_uid", "x", "y", "z", "label", "patient_id"])
    mask, _ = reference_labels(vol, points, conv)
    scores = artery_scores(score_lesions(vol.array, vol.geometry, mask, conv))
    return scores.to_dict("records")


TRUTH_COLUMNS = (*SCORE_TRUTH_COLUMNS[:7], "background", "fov_mm", "seed", "psf_sigma_mm")
"""Columns of ``truth.csv``: the synthetic cohort's score columns, then the copy's facts."""


def insert_cohort(
    backgrounds: list[str],
    out_dir: str | os.PathLike,
    seeds: list[int],
    max_lesions: int,
    fovs_mm: list[float | None],
    scoring: ScoringConventions | None = None,
    gated: bool = False,
) -> int:
    """Every background x seed x field of view: a copy with 0..``max_lesions`` inserted
    lesions (the count drawn from the seed); ``gated``: the cardiac-FOV copies take a gated
    calcium scan's geometry (:func:`gated_geometry`). Writes ``dicom/``, ``annotations.csv``
    and ``truth.csv`` into ``out_dir``; returns the number of series written. A background is
    named by its last two path parts (never an absolute path)."""
    import pandas as pd

    out = Path(out_dir)
    ann_rows: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    jobs = [(b, s, f) for b in backgrounds for s in seeds for f in fovs_mm]
    for i, (bg, seed, fov) in enumerate(jobs, 1):
        label = "_".join(Path(bg).resolve().parts[-2:])
        name = f"{label}_s{seed}" + (f"_fov{fov:g}" if fov else "")
        name += "_gated" if gated and fov else ""
        n = int(np.random.default_rng([seed, 7]).integers(0, max_lesions + 1))
        ann, rows = insert_series(bg, out, seed, n, name, fov, scoring, gated)
        ann_rows += ann
        for r in rows:
            r.update(background=label, fov_mm=fov or 0.0, seed=seed)
        truth += rows
        print(f"insert: {i}/{len(jobs)} {name} ({len(ann)} lesions)", flush=True)
    pd.DataFrame(ann_rows, columns=list(ANNOTATION_COLUMNS)).to_csv(
        out / "annotations.csv", index=False
    )
    pd.DataFrame(truth, columns=list(TRUTH_COLUMNS)).to_csv(out / "truth.csv", index=False)
    return len(jobs)
