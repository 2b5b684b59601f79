"""Slab-average resampling along the slice axis (DESIGN.md "resample").

Each output slice is the overlap-weighted mean of the native slices inside its slab of
``thickness_mm``; output slices are spaced ``increment_mm`` apart. Values are never
interpolated between slice centres: interpolation turns noise peaks into false calcium,
an average of values below the calcium threshold stays below it.

Model: native slice k (index order, increasing along the slice normal) stands for the
cell ``[(k - 1/2) d, (k + 1/2) d]`` of the slice axis, d the native increment (mm). The
first output slab starts where the first native cell starts; slabs follow every
``increment_mm`` while they end inside the native coverage. When the target equals the
native geometry (same thickness and increment) the volume is returned unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from cacflow.scorable import ScorableConfig
from cacflow.volume import Volume, list_volumes, read_volume, write_volume

GEOMETRY_TOLERANCE_MM = 1e-3
"""Two lengths closer than this (mm) are equal when deciding on an identity resampling."""

_NEGLIGIBLE_OVERLAP_MM = 1e-9  # rounding residue of the overlap arithmetic, not a convention


def slab_weights(
    n_native: int, native_increment_mm: float, thickness_mm: float, increment_mm: float
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Output slice offsets and, per output slice, the contributing native slices and weights.

    Returns ``(offsets_mm, [(native_indices, weights), ...])``: offsets of the output slice
    centres from the first native slice centre (mm, along the slice normal); weights are the
    overlap lengths (mm) normalised to sum to 1.
    """
    d = native_increment_mm
    start, end = -d / 2.0, (n_native - 0.5) * d
    n_out = int(math.floor((end - start - thickness_mm) / increment_mm + 1e-6)) + 1
    if n_out < 1:
        raise ValueError(
            f"native coverage {end - start:.2f} mm is thinner than one {thickness_mm} mm slab"
        )
    offsets = start + thickness_mm / 2.0 + increment_mm * np.arange(n_out)
    cells_lo = (np.arange(n_native) - 0.5) * d
    plan = []
    for c in offsets:
        lo, hi = c - thickness_mm / 2.0, c + thickness_mm / 2.0
        overlap = np.clip(np.minimum(hi, cells_lo + d) - np.maximum(lo, cells_lo), 0.0, None)
        idx = np.nonzero(overlap > _NEGLIGIBLE_OVERLAP_MM)[0]
        w = overlap[idx]
        plan.append((idx, w / w.sum()))
    return offsets, plan


def is_identity(vol: Volume, thickness_mm: float, increment_mm: float) -> bool:
    """True when the target geometry equals the native one."""
    g = vol.geometry
    return (
        abs(g.increment_mm - increment_mm) < GEOMETRY_TOLERANCE_MM
        and abs(g.slice_thickness_mm - thickness_mm) < GEOMETRY_TOLERANCE_MM
    )


def is_thicker(vol: Volume, thickness_mm: float) -> bool:
    """True when the native slices are thicker than the target: slab averaging cannot make
    them thinner (it would only repeat them under a false thickness), so they are kept and
    scored as they are (see :mod:`cacflow.scorable`, check 1)."""
    return vol.geometry.slice_thickness_mm > thickness_mm + GEOMETRY_TOLERANCE_MM


def slab_resample(vol: Volume, thickness_mm: float, increment_mm: float) -> Volume:
    """Resample ``vol`` to slabs of ``thickness_mm`` every ``increment_mm`` (HU, float32).

    Array axis order (z, y, x); the in-plane grid is unchanged. The output origin moves
    along the slice normal to the first output slice centre (LPS mm).
    """
    g = vol.geometry
    if is_identity(vol, thickness_mm, increment_mm) or is_thicker(vol, thickness_mm):
        meta = dict(vol.meta)
        meta.update(native_thickness_mm=g.slice_thickness_mm, native_increment_mm=g.increment_mm)
        return Volume(vol.array.astype(np.float32, copy=False), g, meta)
    offsets, plan = slab_weights(vol.array.shape[0], g.increment_mm, thickness_mm, increment_mm)
    out = np.empty((len(plan), *vol.array.shape[1:]), dtype=np.float32)
    for j, (idx, w) in enumerate(plan):
        acc = np.zeros(vol.array.shape[1:], dtype=np.float32)
        for k, wk in zip(idx, w, strict=True):
            acc += np.float32(wk) * vol.array[k]
        out[j] = acc
    normal = np.asarray(g.direction, dtype=float).reshape(3, 3)[:, 2]
    origin = tuple(float(v) for v in np.asarray(g.origin) + offsets[0] * normal)
    geom = replace(
        g,
        origin=origin,
        spacing=(g.spacing[0], g.spacing[1], float(increment_mm)),
        slice_thickness_mm=float(thickness_mm),
    )
    meta = dict(vol.meta)
    meta.update(native_thickness_mm=g.slice_thickness_mm, native_increment_mm=g.increment_mm)
    return Volume(out, geom, meta)


def resample_dir(
    in_dir: Path,
    out_dir: Path,
    thickness_mm: float | None,
    increment_mm: float | None,
    scorable: ScorableConfig | None = None,
) -> int:
    """Resample every volume of ``in_dir`` into ``out_dir`` (same file names) and judge
    whether each analysis image can be scored (``out_dir/scorable.parquet``, see
    :mod:`cacflow.scorable`; default limits when ``scorable`` is None). The heart found
    for that is kept beside each volume (``<series_uid>_heart.npz``) for the methods.

    ``thickness_mm=None`` keeps the native slices (a copy). Returns the number of volumes.
    """
    from cacflow.heart import HEART_SUFFIX
    from cacflow.provenance import provenance, write_table
    from cacflow.scorable import SCORABLE_FILE, assess, assessment_table

    cfg = scorable or ScorableConfig()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = list_volumes(in_dir)
    verdicts = []
    for i, p in enumerate(paths, 1):
        vol = read_volume(p)
        if thickness_mm is not None:
            vol = slab_resample(vol, thickness_mm, increment_mm or thickness_mm)
        write_volume(vol, out_dir / p.name)
        verdict = assess(vol, cfg, p.stem, thickness_mm, out_dir / f"{p.stem}{HEART_SUFFIX}")
        verdicts.append(verdict)
        print(f"resample: {i}/{len(paths)} {p.stem} {verdict.status}", flush=True)
    meta = provenance(conventions={"scorable": asdict(cfg)})
    write_table(assessment_table(verdicts), out_dir / SCORABLE_FILE, meta)
    return len(paths)
