"""Volumes in memory and on disk.

In memory a volume is a numpy array in axis order (z, y, x) plus its geometry in the
DICOM patient frame (LPS, mm). On disk it is an uncompressed NIfTI-1 file (LPS converted to
the NIfTI RAS convention and back) and a JSON sidecar holding what NIfTI cannot: slice
thickness and the series key. The sidecar never holds direct identifiers.

Files are read with SimpleITK. They are written with SimpleITK too, except in the common
case (axis-aligned direction, a plain numeric dtype), where :func:`_write_nifti_direct`
writes the same bytes itself: see there for why.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cacflow.provenance import atomic_path

if TYPE_CHECKING:
    import SimpleITK as sitk


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

    def regridded(
        self, rows: int, cols: int, new_rows: int, new_cols: int, first_slice: int = 0
    ) -> Geometry:
        """The same in-plane field of view (``rows`` x ``cols`` pixels) on ``new_rows`` x
        ``new_cols`` pixels, its slices starting at ``first_slice`` of this grid: pixel
        sides scale with the counts, the outer corner of pixel (0, 0) stays where it is
        (pixel centres move from half an old pixel to half a new one in); slice spacing,
        direction and thickness are kept."""
        sx = self.spacing[0] * cols / new_cols
        sy = self.spacing[1] * rows / new_rows
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        corner = self.index_to_world(np.array([-0.5, -0.5, float(first_slice)]))
        origin = corner + d[:, 0] * sx / 2.0 + d[:, 1] * sy / 2.0
        return Geometry(
            tuple(float(v) for v in origin),
            (sx, sy, self.spacing[2]),
            self.direction,
            self.slice_thickness_mm,
        )


@dataclass
class Volume:
    """An image: ``array`` (z, y, x) and its ``geometry``; ``meta`` holds non-identifying
    facts carried in the sidecar (series_uid, kernel, native geometry, ...)."""

    array: np.ndarray
    geometry: Geometry
    meta: dict[str, Any] = field(default_factory=dict)


def to_sitk(vol: Volume) -> sitk.Image:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(vol.array)
    img.SetOrigin(tuple(float(v) for v in vol.geometry.origin))
    img.SetSpacing(tuple(float(v) for v in vol.geometry.spacing))
    img.SetDirection(tuple(float(v) for v in vol.geometry.direction))
    return img


def sidecar_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


# --- NIfTI-1 writer ----------------------------------------------------------------------
# Why not always SimpleITK: on a 300 x 512 x 512 int16 series (the single-series convert
# benchmark, whose whole command is ~1.2 s) importing SimpleITK costs ~0.09 s and
# GetImageFromArray + WriteImage ~0.23 s (a copy of the array plus ITK's writer), against
# ~0.06 s for a 352-byte header and ``ndarray.tofile``. The direct writer reproduces
# SimpleITK's (ITK NiftiImageIO) output byte for byte, which is why it is limited to
# the identity direction (the usual axial CT stack, and every volume of the benchmark):
# there every header value is exact. For oblique directions ITK orthogonalises the float32
# matrix (a polar decomposition) before writing srow / quatern, which differs from a direct
# computation in the last bit, and for flipped or permuted axes the signs of its zeros
# (+0.0 / -0.0) follow its own arithmetic; such volumes still go through SimpleITK, so no
# output changes.
# tests/test_convert_lean.py compares the bytes with SimpleITK's and reads files back.

_NIFTI_HEADER = np.dtype(
    [
        ("sizeof_hdr", "<i4"),
        ("data_type", "S10"),
        ("db_name", "S18"),
        ("extents", "<i4"),
        ("session_error", "<i2"),
        ("regular", "S1"),
        ("dim_info", "u1"),
        ("dim", "<i2", 8),
        ("intent_p", "<f4", 3),
        ("intent_code", "<i2"),
        ("datatype", "<i2"),
        ("bitpix", "<i2"),
        ("slice_start", "<i2"),
        ("pixdim", "<f4", 8),
        ("vox_offset", "<f4"),
        ("scl_slope", "<f4"),
        ("scl_inter", "<f4"),
        ("slice_end", "<i2"),
        ("slice_code", "u1"),
        ("xyzt_units", "u1"),
        ("cal_max", "<f4"),
        ("cal_min", "<f4"),
        ("slice_duration", "<f4"),
        ("toffset", "<f4"),
        ("glmax", "<i4"),
        ("glmin", "<i4"),
        ("descrip", "S80"),
        ("aux_file", "S24"),
        ("qform_code", "<i2"),
        ("sform_code", "<i2"),
        ("quatern", "<f4", 3),
        ("qoffset", "<f4", 3),
        ("srow", "<f4", (3, 4)),
        ("intent_name", "S16"),
        ("magic", "S4"),
    ]
)
_NIFTI_HEADER_BYTES = 348
_NIFTI_VOX_OFFSET = 352  # header + 4 zero bytes (no extensions)
_NIFTI1_MAX_DIM = 32767  # dim[] is int16
_NIFTI_MM_SEC = 10  # xyzt_units: NIFTI_UNITS_MM | NIFTI_UNITS_SEC, as ITK writes
_NIFTI_SCANNER_ANAT = 1
_NIFTI_DATATYPES = {
    np.dtype("uint8"): 2,
    np.dtype("int16"): 4,
    np.dtype("int32"): 8,
    np.dtype("float32"): 16,
    np.dtype("float64"): 64,
    np.dtype("int8"): 256,
    np.dtype("uint16"): 512,
    np.dtype("uint32"): 768,
}
_LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])
_IDENTITY = np.eye(3).ravel()


def _direct_writable(vol: Volume) -> bool:
    """True when :func:`_write_nifti_direct` writes exactly what SimpleITK would: a 3-D
    array of a NIfTI-1 numeric type and the identity direction (+0.0 off the diagonal)."""
    d = np.asarray(vol.geometry.direction, dtype=float)
    return (
        vol.array.ndim == 3
        and max(vol.array.shape) <= _NIFTI1_MAX_DIM
        and vol.array.dtype in _NIFTI_DATATYPES  # native byte order only, as SimpleITK
        and d.shape == (9,)
        and bool((d == _IDENTITY).all())
        and not bool(np.signbit(d).any())
    )


def nifti1_header(vol: Volume) -> bytes:
    """The 352 bytes (header + empty extension flag) SimpleITK writes before ``vol``'s
    voxels, for the volumes :func:`_direct_writable` accepts."""
    g = vol.geometry
    nz, ny, nx = vol.array.shape
    dtype = vol.array.dtype
    # identity direction in LPS = diag(-1, -1, 1) in RAS: a half turn about z, whose
    # quaternion is (a, b, c, d) = (0, 0, 0, 1) with qfac = 1 (NIfTI-1 quatern convention)
    rot = np.diag(_LPS_TO_RAS)
    qfac, b, c, d = 1.0, 0.0, 0.0, 1.0
    spacing = np.asarray(g.spacing, dtype=np.float32)
    offset = (np.asarray(g.origin, dtype=float) + 0.0) * _LPS_TO_RAS  # ITK: origin -0.0 -> 0
    h = np.zeros((), dtype=_NIFTI_HEADER)
    h["sizeof_hdr"] = _NIFTI_HEADER_BYTES
    h["regular"] = b"r"
    h["dim"] = (3, nx, ny, nz, 1, 1, 1, 1)
    h["datatype"] = _NIFTI_DATATYPES[dtype]
    h["bitpix"] = 8 * dtype.itemsize
    h["pixdim"] = (qfac, *spacing, 0.0, 0.0, 0.0, 0.0)
    h["vox_offset"] = _NIFTI_VOX_OFFSET
    h["scl_slope"] = 1.0
    h["xyzt_units"] = _NIFTI_MM_SEC
    h["qform_code"] = h["sform_code"] = _NIFTI_SCANNER_ANAT
    h["quatern"] = (b, c, d)
    h["qoffset"] = offset
    # ITK: +0.0 off the diagonal of the rotation; the offset column as given (-0.0 kept)
    h["srow"] = np.column_stack([rot.astype(np.float32) * spacing + 0.0, offset])
    h["magic"] = b"n+1"
    return h.tobytes() + b"\0" * (_NIFTI_VOX_OFFSET - _NIFTI_HEADER_BYTES)


def _write_nifti_direct(vol: Volume, path: Path) -> None:
    arr = vol.array
    with open(path, "wb") as f:
        f.write(nifti1_header(vol))
        little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        little.tofile(f)


def write_volume(vol: Volume, path: str | os.PathLike) -> None:
    """Write ``path`` (.nii) and its JSON sidecar atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if _direct_writable(vol):
            _write_nifti_direct(vol, tmp)
        else:
            import SimpleITK as sitk

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
    import SimpleITK as sitk

    path = Path(path)
    img = sitk.ReadImage(str(path))
    meta = _sidecar(path)
    geom = _geometry(img, meta.pop("geometry", {}))
    return Volume(sitk.GetArrayFromImage(img), geom, meta)


def read_geometry(path: str | os.PathLike) -> Geometry:
    """The geometry of a volume file, from its header only (no voxel data read)."""
    import SimpleITK as sitk

    path = Path(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return _geometry(reader, _sidecar(path).get("geometry", {}))


HEATMAP_SUFFIX = "_heatmap"
"""``<series_uid>_heatmap.nii``: the ``direct`` method's decision feedback of a series
(written by inference beside its predictions, read by the report)."""


def list_volumes(directory: str | os.PathLike) -> list[Path]:
    """The .nii files of a directory, sorted by name (series key)."""
    return sorted(Path(directory).glob("*.nii"))


def each_volume(directory: str | os.PathLike, step: str) -> Iterator[tuple[str, Volume]]:
    """``(series_uid, volume)`` for every volume of ``directory`` in name order; after each
    one is handled, prints ``<step>: i/n <series_uid>`` (progress in the rule's log)."""
    paths = list_volumes(directory)
    for i, path in enumerate(paths, 1):
        yield path.stem, read_volume(path)
        print(f"{step}: {i}/{len(paths)} {path.stem}", flush=True)
