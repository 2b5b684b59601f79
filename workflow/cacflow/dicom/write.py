"""Write CT series as real DICOM files (single-frame CT Image Storage).

Used by the tests (hostile corpora start from a clean series and break one thing), the
benchmarks and anyone who needs a small CT series on disk. The input is an HU array in
axis order (z, y, x); geometry is given in the DICOM patient frame (LPS, mm).

Stored values are ``round((HU - intercept) / slope)`` as signed 16-bit integers
(PixelRepresentation 1), so an exact round trip needs HU values on the slope grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

DEFAULT_INTERCEPT = -1024.0
STUDY_DATE = "20200101"
"""Rescale intercept written by default (HU = stored * slope + intercept)."""

Vector = tuple[float, float, float]


@dataclass
class SeriesSpec:
    """What one written series looks like: directions as unit vectors, positions in mm (LPS).

    ``step`` is the vector between consecutive ImagePositionPatient values; by default it
    is the slice normal (row_dir x col_dir) times ``increment_mm``. A step that is not
    parallel to the normal makes a gantry-tilted series.
    """

    pixel_spacing: tuple[float, float] = (0.7, 0.7)  # (row spacing, column spacing) mm
    increment_mm: float = 1.0
    slice_thickness_mm: float = 1.0
    origin: Vector = (-100.0, -120.0, -50.0)
    row_dir: Vector = (1.0, 0.0, 0.0)
    col_dir: Vector = (0.0, 1.0, 0.0)
    step: Vector | None = None
    series_uid: str = field(default_factory=generate_uid)
    study_uid: str = field(default_factory=generate_uid)
    frame_uid: str = field(default_factory=generate_uid)
    modality: str = "CT"
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    kernel: str = "B30f"
    manufacturer: str = "ACME"
    patient_id: str = "P0001"
    patient_name: str = "Doe^Jane"
    birth_date: str = "19500101"
    rescale_slope: float = 1.0
    rescale_intercept: float = DEFAULT_INTERCEPT

    def step_vector(self) -> np.ndarray:
        if self.step is not None:
            return np.asarray(self.step, dtype=float)
        normal = np.cross(self.row_dir, self.col_dir)
        return normal / np.linalg.norm(normal) * self.increment_mm

    def position(self, k: int) -> np.ndarray:
        """ImagePositionPatient of slice ``k`` (mm, LPS)."""
        return np.asarray(self.origin, dtype=float) + k * self.step_vector()


def _ds_str(values: Sequence[float]) -> list[str]:
    """DS strings (at most 16 characters each)."""
    return [f"{v:.10g}"[:16] for v in values]


def ct_slice(
    hu: np.ndarray, spec: SeriesSpec, k: int, *, sop_uid: str | None = None
) -> FileDataset:
    """One CT slice (``hu`` in (y, x) order, HU) at position ``k`` of ``spec``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.FrameOfReferenceUID = spec.frame_uid
    ds.Modality = spec.modality
    ds.ImageType = list(spec.image_type)
    ds.Manufacturer = spec.manufacturer
    ds.ConvolutionKernel = spec.kernel
    ds.PatientID = spec.patient_id
    ds.PatientName = spec.patient_name
    ds.PatientBirthDate = spec.birth_date
    ds.StudyDate = STUDY_DATE
    ds.SeriesNumber = 1
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = _ds_str(spec.position(k))
    ds.ImageOrientationPatient = _ds_str([*spec.row_dir, *spec.col_dir])
    ds.PixelSpacing = _ds_str(spec.pixel_spacing)
    ds.SliceThickness = _ds_str([spec.slice_thickness_mm])[0]
    ds.SliceLocation = _ds_str([float(spec.position(k)[2])])[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(hu.shape[0]), int(hu.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = _ds_str([spec.rescale_intercept])[0]
    ds.RescaleSlope = _ds_str([spec.rescale_slope])[0]
    ds.RescaleType = "HU"
    stored = np.rint((np.asarray(hu, dtype=float) - spec.rescale_intercept) / spec.rescale_slope)
    ds.PixelData = stored.astype("<i2").tobytes()
    return ds


def write_ct_series(
    hu: np.ndarray,
    out_dir: str | Path,
    spec: SeriesSpec | None = None,
    *,
    name: str = "IM{k:04d}.dcm",
) -> list[Path]:
    """Write ``hu`` (z, y, x; HU) as one file per slice under ``out_dir``; return the paths.

    ``name`` is formatted with ``k`` (slice index) and ``uid`` (SOPInstanceUID).
    """
    spec = spec or SeriesSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(hu.shape[0]):
        ds = ct_slice(hu[k], spec, k)
        p = out / name.format(k=k, uid=ds.SOPInstanceUID)
        pydicom.dcmwrite(p, ds, enforce_file_format=True)
        paths.append(p)
    return paths


def phantom(n_slices: int, rows: int = 32, columns: int = 32, seed: int = 0) -> np.ndarray:
    """A small deterministic HU volume (z, y, x): air, a water disc, a bright dot per slice.

    Every slice differs (the dot moves), so a misordered volume is detectable.
    """
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0:n_slices, 0:rows, 0:columns]
    r2 = (y - rows / 2) ** 2 + (x - columns / 2) ** 2
    hu = np.where(r2 < (min(rows, columns) / 2.5) ** 2, 40, -1000).astype(np.int16)
    hu[np.arange(n_slices), (np.arange(n_slices) % (rows - 2)) + 1, columns // 3] = 600
    hu += rng.integers(-5, 6, size=hu.shape).astype(np.int16)
    return hu


def write_multiframe_ct(hu: np.ndarray, path: str | Path, spec: SeriesSpec | None = None) -> Path:
    """Write ``hu`` (z, y, x; HU) as one multi-frame file (Legacy Converted Enhanced CT
    Image Storage, built by highdicom from the single-frame slices of :func:`ct_slice`):
    per-frame positions and shared orientation, pixel measures and rescale live in the
    functional groups. Returns ``path``."""
    import highdicom as hd

    spec = spec or SeriesSpec()
    slices = [ct_slice(hu[k], spec, k) for k in range(hu.shape[0])]
    for ds in slices:  # attributes the legacy conversion requires
        ds.SeriesDate = ds.ContentDate = STUDY_DATE
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "1", "", "1"
        ds.PatientSex, ds.AcquisitionNumber, ds.KVP = "O", 1, 120
    mf = hd.legacy.LegacyConvertedEnhancedCTImage(
        slices,
        series_instance_uid=spec.series_uid,
        series_number=1,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mf.save_as(path, enforce_file_format=True)
    return path
