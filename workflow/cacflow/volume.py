"""Volumes in memory and on disk.

In memory a volume is a numpy array in axis order (z, y, x) plus its geometry in the
DICOM patient frame (LPS, mm). On disk it is an uncompressed NIfTI-1 file written by
SimpleITK (which converts LPS to the NIfTI RAS convention and back) and a JSON sidecar
holding what NIfTI cannot: slice thickness and the series key. The sidecar never holds
direct identifiers.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from cacflow.provenance import atomic_path


@dataclass(frozen=True)
class Geometry:
    """Voxel grid in the patient frame.

    origin: centre of voxel (x=0, y=0, z=0), mm, LPS.
    spacing: (column, row, slice) spacing in mm; the slice spacing is the slice increment.
    direction: 3x3 row-major matrix whose columns are the unit vectors (LPS) of the
        x (column), y (row) and z (slice) index axes.
    slice_thickness_mm: nominal reconstructed slice thickness (may exceed the increment).
    """

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    slice_thickness_mm: float = 0.0

    @property
    def increment_mm(self) -> float:
        return float(self.spacing[2])

    @property
    def voxel_volume_mm3(self) -> float:
        """Voxel volume using the slice increment as z size (mm^3)."""
        return float(self.spacing[0] * self.spacing[1] * self.spacing[2])

    @property
    def pixel_area_mm2(self) -> float:
        return float(self.spacing[0] * self.spacing[1])

    def index_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """Map voxel indices (..., 3) in (x, y, z) order to LPS mm."""
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        return np.asarray(self.origin) + (np.asarray(ijk, float) * np.asarray(self.spacing)) @ d.T

    def world_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Map LPS mm points (..., 3) to continuous voxel indices in (x, y, z) order."""
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        rel = np.asarray(xyz, float) - np.asarray(self.origin)
        return (rel @ d) / np.asarray(self.spacing)


@dataclass
class Volume:
    """An image: ``array`` (z, y, x) and its ``geometry``; ``meta`` holds non-identifying
    facts carried in the sidecar (series_uid, kernel, native geometry, ...)."""

    array: np.ndarray
    geometry: Geometry
    meta: dict[str, Any] = field(default_factory=dict)


def to_sitk(vol: Volume) -> sitk.Image:
    img = sitk.GetImageFromArray(vol.array)
    img.SetOrigin(tuple(float(v) for v in vol.geometry.origin))
    img.SetSpacing(tuple(float(v) for v in vol.geometry.spacing))
    img.SetDirection(tuple(float(v) for v in vol.geometry.direction))
    return img


def sidecar_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def write_volume(vol: Volume, path: str | os.PathLike) -> None:
    """Write ``path`` (.nii) and its JSON sidecar atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        # SimpleITK picks the writer from the extension; keep it on the temporary name.
        sitk.WriteImage(to_sitk(vol), str(tmp), useCompression=False)
    side = {"geometry": asdict(vol.geometry), **vol.meta}
    with atomic_path(sidecar_path(path)) as tmp:
        tmp.write_text(json.dumps(side, indent=1, sort_keys=True, default=str))


NIFTI_FLOAT32_RTOL = 1e-6
"""NIfTI stores spacing and origin as float32; the sidecar keeps them at full precision."""


def _geometry(img: sitk.Image | sitk.ImageFileReader, side: dict[str, Any]) -> Geometry:
    """Geometry from the NIfTI header, refined by the sidecar's full-precision values.

    NIfTI's float32 fields would shift areas by ~1e-8 relative; the sidecar written with the
    volume holds the exact float64 values. A sidecar that disagrees with the header beyond
    float32 precision is ignored (it does not describe this file).
    """
    header = {
        "origin": tuple(img.GetOrigin()),
        "spacing": tuple(img.GetSpacing()),
        "direction": tuple(img.GetDirection()),
    }
    exact = {}
    for key, value in header.items():
        candidate = side.get(key)
        if candidate is not None and np.allclose(
            candidate, value, rtol=NIFTI_FLOAT32_RTOL, atol=NIFTI_FLOAT32_RTOL
        ):
            exact[key] = tuple(float(v) for v in candidate)
        else:
            exact[key] = value
    return Geometry(
        **exact,
        slice_thickness_mm=float(side.get("slice_thickness_mm", exact["spacing"][2])),
    )


def _sidecar(path: Path) -> dict[str, Any]:
    side_p = sidecar_path(path)
    return json.loads(side_p.read_text()) if side_p.exists() else {}


def read_volume(path: str | os.PathLike) -> Volume:
    """Read a volume written by :func:`write_volume` (array in (z, y, x) order)."""
    path = Path(path)
    img = sitk.ReadImage(str(path))
    meta = _sidecar(path)
    geom = _geometry(img, meta.pop("geometry", {}))
    return Volume(sitk.GetArrayFromImage(img), geom, meta)


def read_geometry(path: str | os.PathLike) -> Geometry:
    """The geometry of a volume file, from its header only (no voxel data read)."""
    path = Path(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return _geometry(reader, _sidecar(path).get("geometry", {}))


def list_volumes(directory: str | os.PathLike) -> list[Path]:
    """The .nii files of a directory, sorted by name (series key)."""
    return sorted(Path(directory).glob("*.nii"))
