"""Reading DICOM files: header records (discover) and HU pixels (convert).

What a file is (the counts of :func:`cacflow.dicom.discover.discover`):

- ``dicom``: has the ``DICM`` prefix (or no preamble but starts with a group 0x0002 or
  0x0008 tag, then read as a preamble-less dataset) and a header that parses.
- ``not_dicom``: anything else; counted, never a series.
- ``unreadable``: DICOM by its signature, but the header does not parse, or the file is
  shorter than the lengths it declares (truncated header or truncated native pixel data).
  When the header still names a SeriesInstanceUID the file stays a member of its series,
  which is then excluded as ``unreadable``; otherwise it is only counted.
- ``non_image``: DICOM without an image (no PixelData; e.g. a DICOMDIR, a structured
  report); counted only. An image without SeriesInstanceUID (de-identification tools strip
  it) is ``dicom`` with an empty ``series_uid``: :mod:`cacflow.dicom.grouping` groups it by
  a fallback key.

Multi-frame images (Enhanced CT Image Storage and other multi-frame CT) carry one record
per file with the per-frame geometry of their functional groups (:class:`FrameInfo`:
PlanePositionSequence, PlaneOrientationSequence, PixelMeasuresSequence,
PixelValueTransformationSequence, per frame or shared); :func:`expand_frames` turns such a
record into one record per frame, so that grouping and QC see frames as slices.

The header pass is the only parse of a header: it also records where native pixel data
start, so that convert reads those pixels with ``numpy.fromfile`` and no second parse.

Pixel values: stored values become HU slice by slice with that slice's RescaleSlope /
RescaleIntercept (which may vary between slices); stored values marked as padding
(PixelPaddingValue, up to PixelPaddingRangeLimit when present) become
:data:`cacflow.conventions.PADDING_HU`. Encapsulated (compressed), deflated, big-endian
or non-16-bit data go through pydicom's decoders (pylibjpeg, openjpeg, RLE, JPEG-LS) and,
for JPEG Lossless (which none of those decode), through SimpleITK's GDCM reader. Not
python-gdcm: pydicom imports its plugin eagerly, which adds ~65 ms to every command that
reads DICOM (a fifth of dcm2niix's whole time on a 300-slice series), for a syntax that
SimpleITK's bundled GDCM already decodes (tests/dicom/test_convert.py checks it against
dcm2niix).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from cacflow.conventions import PADDING_HU

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
"""SOP classes of secondary captures (and multi-frame SC) share this prefix."""

PIXEL_DATA_TAG_LE = b"\xe0\x7f\x10\x00"
PIXEL_DATA_TAG_BE = b"\x7f\xe0\x00\x10"
"""(7FE0,0010) Pixel Data tag bytes, little- and big-endian."""

FAST_BITS = 16
"""Native pixel data with this BitsAllocated (one sample, one frame) are read directly."""

_UNDEFINED_LENGTH = 0xFFFFFFFF
_PREAMBLE_LESS_GROUPS = (0x0002, 0x0008)
_INT16_MIN, _INT16_MAX = -32768, 32767
_UINT16_RANGE = 65536

# Tags read by the header pass (group, element) as int.
T_SOP_CLASS = 0x00080016
T_SOP_UID = 0x00080018
T_IMAGE_TYPE = 0x00080008
T_MODALITY = 0x00080060
T_MANUFACTURER = 0x00080070
T_PATIENT_ID = 0x00100020
T_KERNEL = 0x00181210
T_THICKNESS = 0x00180050
T_SERIES_UID = 0x0020000E
T_STUDY_ID = 0x00200010
T_SERIES_NUMBER = 0x00200011
T_STUDY_UID = 0x0020000D
T_STUDY_DATE = 0x00080020
T_POSITION = 0x00200032
T_ORIENTATION = 0x00200037
T_FRAMES = 0x00280008
T_SAMPLES = 0x00280002
T_ROWS = 0x00280010
T_COLUMNS = 0x00280011
T_SPACING = 0x00280030
T_BITS_ALLOCATED = 0x00280100
T_BITS_STORED = 0x00280101
T_PIXEL_REPRESENTATION = 0x00280103
T_PADDING = 0x00280120
T_PADDING_LIMIT = 0x00280121
T_INTERCEPT = 0x00281052
T_SLOPE = 0x00281053


class DicomReadError(Exception):
    """A file that is DICOM by its signature but cannot be read (message: no identifiers)."""


@dataclass(frozen=True, slots=True)
class PixelFormat:
    """How stored values are laid out and which of them are padding.

    ``padding``: inclusive range of stored values that mark padding, or None.
    """

    bits_allocated: int | None
    bits_stored: int | None
    signed: bool
    samples: int
    padding: tuple[int, int] | None

    @property
    def fast(self) -> bool:
        """True when native little-endian data can be read with ``numpy.fromfile``."""
        return self.bits_allocated == FAST_BITS and self.samples == 1


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """Geometry and rescale of one frame of a multi-frame image (LPS mm; HU = stored *
    slope + intercept). None where the functional groups do not say."""

    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, ...] | None
    slice_thickness: float | None
    rescale_slope: float
    rescale_intercept: float


@dataclass(slots=True)
class FileHeader:
    """What discover keeps of one file (no identifiers besides patient_id).

    Vectors are in the DICOM patient frame (LPS, mm); spacing (row, column) in mm;
    ``pixel_offset``: byte offset of native little-endian pixel data, -1 when the pixels
    must be decoded by a library (or are absent).
    """

    path: str
    kind: str  # dicom | not_dicom | unreadable | non_image
    sop_uid: str = ""
    series_uid: str = ""
    patient_id: str = ""
    study_uid: str = ""
    study_date: str = ""  # in memory only: discover writes days since the first study
    modality: str = ""
    sop_class: str = ""
    image_type: str = ""
    orientation: tuple[float, ...] | None = None
    position: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, ...] | None = None
    slice_thickness: float | None = None
    rows: int | None = None
    columns: int | None = None
    kernel: str = ""
    manufacturer: str = ""
    transfer_syntax: str = ""
    n_frames: int = 1
    has_pixels: bool = True
    truncated: bool = False
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    pixel_format: PixelFormat | None = None
    pixel_offset: int = -1
    study_id: str = ""
    series_number: str = ""
    frame: int = -1  # frame index (0-based) of a record from expand_frames; -1: whole file
    frames: tuple[FrameInfo, ...] | None = None  # per-frame geometry of a multi-frame file


# ---------------------------------------------------------------------------------------
# Element values. Values not yet converted by pydicom are decoded here from their raw
# bytes (about 30x faster than pydicom's conversion); anything unusual falls back to it.


def _element(ds: Dataset, tag: int) -> Any:
    try:
        return ds.get_item(tag) if tag in ds else None
    except (KeyError, ValueError, TypeError):
        return None


def _strings(ds: Dataset, tag: int) -> list[str]:
    """The values of a text element (backslash-separated), stripped; [] when absent."""
    elem = _element(ds, tag)
    if elem is None or elem.value is None:
        return []
    v = elem.value
    if isinstance(v, bytes):
        try:
            return [s.strip(" \x00") for s in v.decode("ascii").split("\\")]
        except UnicodeDecodeError:
            try:
                v = ds[tag].value  # pydicom decodes with the Specific Character Set
            except Exception:  # noqa: BLE001 - a malformed value reads as absent
                return []
    if isinstance(v, (list, tuple, MultiValue)):
        return [str(x).strip() for x in v]
    return [str(v).strip()]


def _text(ds: Dataset, tag: int) -> str:
    return "\\".join(s for s in _strings(ds, tag) if s)


def _floats(ds: Dataset, tag: int, n: int) -> tuple[float, ...] | None:
    """``n`` finite floats of a DS/IS element, or None."""
    try:
        vals = tuple(float(s) + 0.0 for s in _strings(ds, tag))  # + 0.0: no -0.0
    except ValueError:
        return None
    return vals if len(vals) == n and all(math.isfinite(x) for x in vals) else None


def _float(ds: Dataset, tag: int) -> float | None:
    v = _floats(ds, tag, 1)
    return None if v is None else v[0]


def _us(ds: Dataset, tag: int, little: bool) -> int | None:
    """An unsigned short (US, or US/SS read as unsigned); None when absent."""
    elem = _element(ds, tag)
    if elem is None or elem.value is None:
        return None
    v = elem.value
    if isinstance(v, bytes):
        return int.from_bytes(v[:2], "little" if little else "big") if len(v) >= 2 else None
    try:
        return int(v[0] if isinstance(v, (list, MultiValue)) else v)
    except (TypeError, ValueError):
        return None


def _as_signed(v: int | None) -> int | None:
    return None if v is None else (v - _UINT16_RANGE if v > _INT16_MAX else v)


def pixel_format(ds: Dataset, little: bool = True) -> PixelFormat:
    """The :class:`PixelFormat` of a dataset.

    PixelPaddingValue and PixelPaddingRangeLimit are stored values; their raw 16 bits are
    read as signed when PixelRepresentation is 1.
    """
    signed = _us(ds, T_PIXEL_REPRESENTATION, little) == 1
    pad = _us(ds, T_PADDING, little)
    limit = _us(ds, T_PADDING_LIMIT, little)
    if signed:
        pad, limit = _as_signed(pad), _as_signed(limit)
    padding = None
    if pad is not None:
        padding = (pad, pad) if limit is None else (min(pad, limit), max(pad, limit))
    return PixelFormat(
        bits_allocated=_us(ds, T_BITS_ALLOCATED, little),
        bits_stored=_us(ds, T_BITS_STORED, little),
        signed=signed,
        samples=_us(ds, T_SAMPLES, little) or 1,
        padding=padding,
    )


def rescale(ds: Dataset) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) of one slice; (1, 0) when absent (slope 0 -> 1)."""
    slope = _float(ds, T_SLOPE)
    intercept = _float(ds, T_INTERCEPT)
    return (slope if slope not in (None, 0.0) else 1.0), (intercept or 0.0)


# ---------------------------------------------------------------------------------------
# Header pass


def _plausible_preamble_less(head: bytes) -> bool:
    """True when ``head`` starts like a dataset written without preamble (group 2 or 8)."""
    return len(head) >= 4 and int.from_bytes(head[:2], "little") in _PREAMBLE_LESS_GROUPS


def _declared_past_end(ds: Dataset, size: int) -> bool:
    """True when the last top-level element read declares more bytes than the file holds."""
    keys = list(ds.keys())
    if not keys:
        return True
    elem: Any = ds.get_item(keys[-1])
    tell, length = getattr(elem, "value_tell", None), getattr(elem, "length", None)
    if tell is None or length in (None, _UNDEFINED_LENGTH):
        return False
    return tell + length > size


def _pixel_value_span(fp: Any, implicit: bool, little: bool) -> tuple[int, int | None]:
    """(value offset, value length or None when undefined) of the Pixel Data element that
    starts at ``fp``'s position."""
    start = fp.tell()
    head = fp.read(12)
    order = "little" if little else "big"
    if implicit:
        return start + 8, _defined(int.from_bytes(head[4:8], order))
    return start + 12, _defined(int.from_bytes(head[8:12], order))


def _defined(length: int) -> int | None:
    return None if length == _UNDEFINED_LENGTH else length


def _dcmread_header(fp: Any) -> Dataset | str:
    """The header dataset, or the kind (``not_dicom`` / ``unreadable``) when it fails."""
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True)
    except InvalidDicomError:
        fp.seek(0)
        if not _plausible_preamble_less(fp.read(4)):
            return "not_dicom"
        fp.seek(0)
        try:
            return pydicom.dcmread(fp, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - any parser failure means unreadable
            return "unreadable"
    except Exception:  # noqa: BLE001
        return "unreadable"


def parse_header(path: str, fp: Any, size: int) -> FileHeader:
    """The record of an open file of ``size`` bytes (reading stops before the pixels)."""
    ds = _dcmread_header(fp)
    if isinstance(ds, str):
        return FileHeader(path, ds)
    ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if ds.file_meta else ""
    implicit, little = (bool(x) for x in ds.original_encoding)
    has_pixels, truncated, offset = True, False, -1
    if ts != DeflatedExplicitVRLittleEndian:  # inflated in memory: position unknown
        pos = fp.tell()
        has_pixels = fp.read(4) == (PIXEL_DATA_TAG_LE if little else PIXEL_DATA_TAG_BE)
        fp.seek(pos)
        if has_pixels:
            value_at, length = _pixel_value_span(fp, implicit, little)
            truncated = length is not None and value_at + length > size
            if length is not None and not truncated and little:
                offset = value_at
        else:
            truncated = _declared_past_end(ds, size)
    return header_record(path, ds, ts, has_pixels, truncated, offset, little)


def header_record(
    path: str,
    ds: Dataset,
    ts: str,
    has_pixels: bool,
    truncated: bool,
    offset: int = -1,
    little: bool = True,
) -> FileHeader:
    """The :class:`FileHeader` of a parsed dataset."""
    series_uid = _text(ds, T_SERIES_UID)
    sop_class = _text(ds, T_SOP_CLASS) or (
        str(ds.file_meta.get("MediaStorageSOPClassUID", "")) if ds.file_meta else ""
    )
    if truncated:
        kind = "unreadable"
    elif sop_class == DICOMDIR_SOP_CLASS or not (series_uid or has_pixels):
        kind = "non_image"
    else:
        kind = "dicom"
    fmt = pixel_format(ds, little)
    n_frames = int(_float(ds, T_FRAMES) or 1)
    slope, intercept = rescale(ds)
    frames = frame_infos(ds, n_frames) if n_frames > 1 else None
    h = FileHeader(
        path=path,
        kind=kind,
        sop_uid=_text(ds, T_SOP_UID),
        series_uid=series_uid,
        patient_id=_text(ds, T_PATIENT_ID),
        study_uid=_text(ds, T_STUDY_UID),
        study_date=_text(ds, T_STUDY_DATE),
        modality=_text(ds, T_MODALITY).upper(),
        sop_class=sop_class,
        image_type="\\".join(s.upper() for s in _strings(ds, T_IMAGE_TYPE) if s),
        orientation=_floats(ds, T_ORIENTATION, 6),
        position=_floats(ds, T_POSITION, 3),
        pixel_spacing=_floats(ds, T_SPACING, 2),
        slice_thickness=_float(ds, T_THICKNESS),
        rows=_us(ds, T_ROWS, little),
        columns=_us(ds, T_COLUMNS, little),
        kernel=_text(ds, T_KERNEL),
        manufacturer=_text(ds, T_MANUFACTURER),
        transfer_syntax=ts,
        n_frames=n_frames,
        has_pixels=has_pixels,
        truncated=truncated,
        rescale_slope=slope,
        rescale_intercept=intercept,
        pixel_format=fmt,
        pixel_offset=offset if fmt.fast else -1,
        study_id=_text(ds, T_STUDY_ID),
        series_number=_text(ds, T_SERIES_NUMBER),
        frames=frames,
    )
    return _with_frame_defaults(h) if frames else h


def _item(ds: Dataset, keyword: str) -> Dataset | None:
    """The first item of sequence ``keyword`` of ``ds``, or None."""
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _group_value(
    groups: tuple[Dataset | None, ...], seq: str, tag: int, n: int
) -> tuple[float, ...] | None:
    """``n`` floats of ``tag`` in the first functional group (per-frame, then shared) whose
    sequence ``seq`` holds them."""
    for g in groups:
        item = None if g is None else _item(g, seq)
        if item is not None and tag in item:
            v = _floats(item, tag, n)
            if v is not None:
                return v
    return None


def frame_infos(ds: Dataset, n_frames: int) -> tuple[FrameInfo, ...] | None:
    """Per-frame geometry of a multi-frame image from its functional groups (per-frame
    values override shared ones); None when there are no per-frame functional groups."""
    try:
        per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
        shared = _item(ds, "SharedFunctionalGroupsSequence")
    except Exception:  # noqa: BLE001 - a malformed sequence reads as absent
        return None
    if len(per_frame) != n_frames:
        return None
    out = []
    for f in per_frame:
        groups = (f, shared)
        slope = _group_value(groups, "PixelValueTransformationSequence", T_SLOPE, 1)
        intercept = _group_value(groups, "PixelValueTransformationSequence", T_INTERCEPT, 1)
        thickness = _group_value(groups, "PixelMeasuresSequence", T_THICKNESS, 1)
        out.append(
            FrameInfo(
                position=_group_value(groups, "PlanePositionSequence", T_POSITION, 3),
                orientation=_group_value(groups, "PlaneOrientationSequence", T_ORIENTATION, 6),
                pixel_spacing=_group_value(groups, "PixelMeasuresSequence", T_SPACING, 2),
                slice_thickness=None if thickness is None else thickness[0],
                rescale_slope=1.0 if slope is None or slope[0] == 0.0 else slope[0],
                rescale_intercept=0.0 if intercept is None else intercept[0],
            )
        )
    return tuple(out)


def _with_frame_defaults(h: FileHeader) -> FileHeader:
    """``h`` with the first frame's orientation, spacing and thickness where the top level
    lacks them (Enhanced CT keeps them only in functional groups), for grouping."""
    f0 = h.frames[0] if h.frames else None
    if f0 is not None:
        h.orientation = h.orientation or f0.orientation
        h.pixel_spacing = h.pixel_spacing or f0.pixel_spacing
        if h.slice_thickness is None:
            h.slice_thickness = f0.slice_thickness
    return h


def expand_frames(h: FileHeader) -> list[FileHeader]:
    """One record per frame of a multi-frame file with functional groups (``frame`` = its
    index, geometry and rescale of that frame); ``[h]`` for any other file.

    The frames keep the file's ``sop_uid``; de-duplication keys on (SOPInstanceUID, frame).
    """
    if not h.frames:
        return [h]
    out = []
    for k, f in enumerate(h.frames):
        thickness = h.slice_thickness if f.slice_thickness is None else f.slice_thickness
        out.append(
            replace(
                h,
                frame=k,
                frames=None,
                position=f.position,
                orientation=f.orientation or h.orientation,
                pixel_spacing=f.pixel_spacing or h.pixel_spacing,
                slice_thickness=thickness,
                rescale_slope=f.rescale_slope,
                rescale_intercept=f.rescale_intercept,
                n_frames=1,
            )
        )
    return out


def read_header(path: str) -> FileHeader:
    """Header record of one file (never raises for a bad file)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fp:
            return parse_header(path, fp, size)
    except OSError:
        return FileHeader(path, "unreadable")


# ---------------------------------------------------------------------------------------
# Pixels


def stored_to_hu(
    stored: np.ndarray, slope: float, intercept: float, padding: tuple[int, int] | None
) -> np.ndarray:
    """HU (int16, rounded, clipped to the int16 range) of one slice's stored values."""
    lo, hi = int(stored.min()), int(stored.max())
    if (
        slope == 1.0
        and float(intercept).is_integer()
        and _INT16_MIN <= min(lo, lo + intercept)
        and max(hi, hi + intercept) <= _INT16_MAX
    ):  # the common CT case: one int16 pass, nothing can overflow
        hu = stored.astype(np.int16)
        hu += np.int16(intercept)
    else:
        scaled = np.rint(stored.astype(np.float32) * np.float32(slope) + np.float32(intercept))
        hu = np.clip(scaled, _INT16_MIN, _INT16_MAX).astype(np.int16)
    if padding is not None and padding[0] <= hi and padding[1] >= lo:
        pad = (
            stored == padding[0]
            if padding[0] == padding[1]
            else ((stored >= padding[0]) & (stored <= padding[1]))
        )
        hu[pad] = PADDING_HU
    return hu


def _mask_bits(raw: np.ndarray, bits_stored: int | None, signed: bool) -> np.ndarray:
    """Keep the BitsStored low bits (sign-extended when signed)."""
    if bits_stored is None or bits_stored >= FAST_BITS:
        return raw
    shift = FAST_BITS - bits_stored
    return (raw << shift) >> shift if signed else raw & ((1 << bits_stored) - 1)


def read_stored_native(
    path: str, offset: int, rows: int, columns: int, fmt: PixelFormat, frame: int = 0
) -> np.ndarray:
    """Stored values (rows, columns) of native little-endian 16-bit data at ``offset``
    (frame ``frame``, 0-based, of a multi-frame image).

    The 4 bytes of the Pixel Data tag must precede the value (8 or 12 bytes before it,
    implicit or explicit VR); otherwise the file changed since its header was read.
    """
    n = rows * columns
    with open(path, "rb") as f:
        f.seek(offset - 12)
        head = f.read(12)
        if PIXEL_DATA_TAG_LE not in (head[:4], head[4:8]):
            raise DicomReadError("pixel data not where the header pass found it")
        f.seek(offset + max(frame, 0) * n * 2)
        raw = np.fromfile(f, dtype="<i2" if fmt.signed else "<u2", count=n)
    if raw.size != n:
        raise DicomReadError("pixel data shorter than Rows x Columns")
    return _mask_bits(raw.reshape(rows, columns), fmt.bits_stored, fmt.signed)


def _stored_via_sitk(path: str, slope: float, intercept: float) -> np.ndarray:
    """Decode with SimpleITK's GDCM reader (which applies the rescale) and undo the rescale."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(sitk.ReadImage(path))
    return np.rint((arr[0].astype(np.float64) - intercept) / slope).astype(np.int32)


def _has_decoder(transfer_syntax: str) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(transfer_syntax).is_available)
    except (NotImplementedError, ValueError):
        return False


def decode_slice(
    path: str, frame: int = -1, rescale_values: tuple[float, float] | None = None
) -> np.ndarray:
    """HU (int16, (y, x)) of a file whose pixels need a decoder (pydicom, else GDCM).

    ``frame``: 0-based frame of a multi-frame image (-1: a single-frame file).
    Rescale (slope, intercept) is ``rescale_values`` when given (a frame's functional
    groups), else the file's own; padding comes from the file's header.
    """
    with open(path, "rb") as f:
        ds = pydicom.dcmread(io.BytesIO(f.read()), force=True)
    if "PixelData" not in ds:
        raise DicomReadError("no PixelData")
    slope, intercept = rescale_values or rescale(ds)
    ts = str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    if frame >= 0:
        from pydicom.pixels import pixel_array

        stored = np.asarray(pixel_array(ds, index=frame))
    elif _has_decoder(ts):
        stored = np.asarray(ds.pixel_array)
    else:
        stored = _stored_via_sitk(path, slope, intercept)
    if stored.ndim != 2:
        raise DicomReadError(f"decoded pixel array has shape {stored.shape}, expected 2D")
    return stored_to_hu(
        stored, slope, intercept, pixel_format(ds, bool(ds.original_encoding[1])).padding
    )
