"""Write one synthetic scan as a CT Image Storage series (pydicom, Explicit VR Little Endian).

Each axial slice is one file: ImageOrientationPatient ``1\\0\\0\\0\\1\\0`` (rows along +x,
columns along +y, LPS), ImagePositionPatient = centre of the slice's first pixel, pixel
data uint16 with RescaleSlope 1 and RescaleIntercept -1024 (stored = HU + 1024, 12 bits
stored). Identifying attributes (PatientName, PatientBirthDate, ...) hold fake values so
that privacy checks downstream have something to look for; every fake name holds
:data:`FAKE_NAME_MARKER`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from cacflow.conventions import PADDING_HU
from cacflow.synth.phantom import Grid

FAKE_NAME_MARKER = "Synthname"
"""Every fake PatientName starts with this marker (e.g. ``SynthnameKq7^Jane``)."""
FAKE_PHYSICIAN_MARKER = "Synthdoc"
"""Every fake ReferringPhysicianName starts with this marker."""
INSTITUTION = "Synthetic Imaging Centre"
RESCALE_INTERCEPT = PADDING_HU
"""Stored value = HU - RescaleIntercept; with -1024 the stored value is HU + 1024."""
BITS_STORED = 12
_GIVEN_NAMES = ("Jane", "John", "Alex", "Maria", "Omar", "Li", "Ana", "Pieter", "Fatima", "Ken")
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
_IDENTITY_STREAM = 7919  # extra entropy word: identities get their own random stream


@dataclass(frozen=True)
class FakeIdentity:
    """Fake direct identifiers of one synthetic patient (DICOM PN and DA strings)."""

    patient_name: str
    birth_date: str
    sex: str


def fake_identity(seed: int, index: int) -> FakeIdentity:
    """The fake identity written into scan ``index`` of the cohort of ``seed``."""
    rng = np.random.default_rng([seed, index, _IDENTITY_STREAM])
    tag = "".join(_ALNUM[int(i)] for i in rng.integers(len(_ALNUM), size=3))
    given = _GIVEN_NAMES[int(rng.integers(len(_GIVEN_NAMES)))]
    born = date(1938, 1, 1) + timedelta(days=int(rng.integers(0, 38 * 365)))
    sex = "F" if rng.uniform() < 0.5 else "M"
    return FakeIdentity(f"{FAKE_NAME_MARKER}{tag}^{given}", born.strftime("%Y%m%d"), sex)


@dataclass(frozen=True)
class SeriesHeader:
    """Series-level attributes of one synthetic scan (all values fake)."""

    identity: FakeIdentity
    patient_id: str
    study_uid: str
    series_uid: str
    frame_uid: str
    study_date: str
    study_time: str
    accession: str
    series_number: int
    manufacturer: str
    model: str
    kernel: str
    fov_mm: float
    kvp: int
    tube_current_ma: int
    study_description: str
    series_description: str
    padding_hu: int | None = None
    """v2: HU written outside the reconstruction circle; sets PixelPaddingValue (and signed
    pixels when it is below -1024). None (v1): no padding attributes, unsigned pixels."""
    protocol_name: str | None = None
    body_part: str = "CHEST"


def uid(*entropy: object) -> str:
    """A deterministic UID from the given entropy words (pydicom's UID root + a hash).

    ``generate_uid(prefix=None, ...)`` would ignore the entropy and return a random UUID;
    the words are joined with a separator so that ("1", "23") and ("12", "3") differ.
    """
    return str(generate_uid(entropy_srcs=["|".join(str(e) for e in entropy)]))


def patient_age(birth_date: str, study_date: str) -> str:
    """DICOM AS age string (e.g. ``067Y``) at the study date."""
    b = date(int(birth_date[:4]), int(birth_date[4:6]), int(birth_date[6:]))
    s = date(int(study_date[:4]), int(study_date[4:6]), int(study_date[6:]))
    years = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
    return f"{years:03d}Y"


def _ds(value: float) -> str:
    """Decimal string of a float, at most 16 characters (DS), exact for our grid values."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def series_dataset(header: SeriesHeader, grid: Grid) -> FileDataset:
    """The attributes shared by every slice of the series (slice-level ones are set by
    :func:`set_slice`)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ident = header.identity
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = header.study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = header.study_time
    ds.AccessionNumber = header.accession
    ds.Modality = "CT"
    ds.Manufacturer = header.manufacturer
    ds.InstitutionName = INSTITUTION
    ds.ReferringPhysicianName = f"{FAKE_PHYSICIAN_MARKER}^{ident.patient_name[-3:]}"
    ds.StudyDescription = header.study_description
    ds.SeriesDescription = header.series_description
    ds.ManufacturerModelName = header.model
    ds.PatientName = ident.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = ident.birth_date
    ds.PatientSex = ident.sex
    ds.PatientAge = patient_age(ident.birth_date, header.study_date)
    ds.BodyPartExamined = header.body_part
    ds.SliceThickness = _ds(grid.thickness_mm)
    ds.KVP = str(header.kvp)
    ds.SpacingBetweenSlices = _ds(grid.increment_mm)
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = _ds(header.fov_mm)
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.XRayTubeCurrent = str(header.tube_current_ma)
    ds.ConvolutionKernel = header.kernel
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = header.study_uid
    ds.SeriesInstanceUID = header.series_uid
    ds.StudyID = header.accession[-4:]
    ds.SeriesNumber = str(header.series_number)
    ds.AcquisitionNumber = "1"
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = header.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]
    ds.PixelSpacing = [_ds(grid.pixel_mm), _ds(grid.pixel_mm)]
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    if header.padding_hu is not None:
        if header.padding_hu < RESCALE_INTERCEPT:  # stored values below 0: signed pixels
            ds.PixelRepresentation = 1
            ds.BitsStored = 16
            ds.HighBit = 15
        ds.PixelPaddingValue = int(header.padding_hu - RESCALE_INTERCEPT)
    if header.protocol_name is not None:
        ds.ProtocolName = header.protocol_name
    ds.RescaleIntercept = str(RESCALE_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    return ds


def set_slice(
    ds: FileDataset,
    grid: Grid,
    k: int,
    pixels_hu: np.ndarray,
    sop_uid: str,
    instance_number: int,
) -> None:
    """Set the slice-level attributes of slice ``k`` (index along +z; pixels HU, (y, x))."""
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = str(instance_number)
    z = grid.origin[2] + k * grid.increment_mm
    ds.ImagePositionPatient = [_ds(grid.origin[0]), _ds(grid.origin[1]), _ds(z)]
    ds.SliceLocation = _ds(z)
    dtype = "<i2" if ds.PixelRepresentation == 1 else "<u2"
    stored = (pixels_hu.astype(np.int32) - RESCALE_INTERCEPT).astype(dtype)
    ds.PixelData = stored.tobytes()


def write_series(
    hu: np.ndarray,
    grid: Grid,
    header: SeriesHeader,
    paths: list[Path],
    instance_numbers: list[int],
    sop_uids: list[str],
) -> None:
    """Write slice k of ``hu`` ((z, y, x), HU) to ``paths[k]``."""
    ds = series_dataset(header, grid)
    for k, path in enumerate(paths):
        set_slice(ds, grid, k, hu[k], sop_uids[k], instance_numbers[k])
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
