"""Series grouping and header-level exclusions.

A *series* (one row of the manifest, one volume) is the set of image files that share a
SeriesInstanceUID **and** a grouping key: orientation (ImageOrientationPatient rounded to
:data:`ORIENTATION_DECIMALS`), matrix (Rows, Columns), PixelSpacing (rounded to
:data:`SPACING_DECIMALS` mm), SliceThickness (rounded to :data:`THICKNESS_DECIMALS` mm),
ConvolutionKernel and ImageType. Two reconstructions that share one SeriesInstanceUID thus
become two series.

Keys (``series_uid``): a SeriesInstanceUID with one group keeps the plain UID. One with
several groups keys them ``<SeriesInstanceUID>_<k>``, k = 1, 2, ... in the order of their
grouping keys rendered as text (:meth:`GroupKey.render`: orientation, rows, columns,
pixel spacing, slice thickness, kernel, ImageType) and compared as tuples of strings.

Within a series, files are de-duplicated by SOPInstanceUID (the first path in sorted
order is kept), so the same image under two names counts once.

Images without SeriesInstanceUID (de-identified releases strip it) are grouped by the
fallback key: their folder relative to the searched root, PatientID, StudyID and
SeriesNumber (empty where absent), then the grouping key as above. Their ``series_uid`` is
a UID derived from the fallback key (:func:`fallback_series_uid`, deterministic: the same
files under the same relative folder give the same key on any machine), with ``_<k>``
suffixes as above; ``dicom_series_uid`` is empty and ``reason_detail`` says so.
FrameOfReferenceUID and AcquisitionNumber are not part of the fallback key: real exports
vary them within one stack (a de-identified release writes one FrameOfReferenceUID per
image; sequential scanners one AcquisitionNumber per rotation), which would split a stack
into single images. A SeriesInstanceUID that is not a valid UID (e.g. components with
leading zeros, ``2.0256...``) is kept as it is, with a warning in the log.

Header-level exclusions, first match wins: ``not_ct`` (Modality is not CT), ``localizer``
(ImageType holds LOCALIZER or SCOUT), ``derived`` (a secondary-capture SOP class, or
ImageType value 1 is DERIVED unless the group is an axial primary reformat, see
:func:`is_axial_reformat`), ``localizer`` (a one-image group whose orientation differs from
the largest group of its SeriesInstanceUID), ``unsupported_syntax`` (multi-frame images
without per-frame functional groups), ``unreadable`` (a member file is truncated),
``missing_pixels`` (a member file has no PixelData). Axial primary reformats stay ``ok``
with ``reason_detail`` naming their ImageType (``qc.reformats: exclude`` excludes them as
``derived`` at conversion). Multi-frame images with functional groups (Enhanced CT) are
one record per frame (:func:`cacflow.dicom.read.expand_frames`).
Then, among the groups of one SeriesInstanceUID that share orientation, thickness, kernel
and ImageType but differ in matrix or pixel spacing, groups whose slice positions
interleave (an image of one lies inside the other's range at a position the other lacks)
are one stack with inconsistent pixel geometry: all of them become
``inconsistent_geometry``. Reconstructions with other FOVs at the same positions do not
interleave and stay separate series.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from pydicom.uid import UID, generate_uid

from cacflow.conventions import Reason, Status
from cacflow.dicom.qc import AXIAL_MAX_ANGLE_DEG, DUPLICATE_POSITION_MM, angle_deg
from cacflow.dicom.read import SECONDARY_CAPTURE_PREFIX, FileHeader

ORIENTATION_DECIMALS = 3
"""Direction cosines are rounded to this many decimals for grouping (~0.06 degrees)."""
SPACING_DECIMALS = 3
"""PixelSpacing (mm) is rounded to this many decimals for grouping."""
THICKNESS_DECIMALS = 2
"""SliceThickness (mm) is rounded to this many decimals for grouping."""

CT_MODALITY = "CT"
LOCALIZER_TYPES = frozenset({"LOCALIZER", "SCOUT"})
DERIVED_TYPE = "DERIVED"
PRIMARY_TYPE = "PRIMARY"
REFORMAT_TYPES = frozenset({"MPR", "REFORMATTED", "AXIAL"})
"""ImageType value 3 of a primary reformat (Canon/Toshiba and Siemens write MPR, GE
REFORMATTED, Philips AXIAL)."""
PROJECTION_TYPES = frozenset(
    {"MIP", "MINIP", "MIN_IP", "MAX_IP", "VR", "VRT", "SSD", "CPR", "CURVED", "SCREEN"}
)
"""ImageType values of renderings that are never scorable (projections, volume renderings,
curved reformats, screen captures), whatever else the ImageType says."""
FALLBACK_KEY = ("folder", "PatientID", "StudyID", "SeriesNumber")
"""What groups images without SeriesInstanceUID (then the grouping key)."""

log = logging.getLogger(__name__)


def _rounded(values: Iterable[float] | None, decimals: int) -> tuple[float, ...] | None:
    return None if values is None else tuple(round(v, decimals) + 0.0 for v in values)


@dataclass(frozen=True, order=True)
class GroupKey:
    """What must be equal for two files of one SeriesInstanceUID to form one series."""

    orientation: tuple[float, ...] | None
    rows: int | None
    columns: int | None
    pixel_spacing: tuple[float, ...] | None
    slice_thickness: float | None
    kernel: str
    image_type: str

    @classmethod
    def of(cls, h: FileHeader) -> GroupKey:
        thickness = (
            None if h.slice_thickness is None else round(h.slice_thickness, THICKNESS_DECIMALS)
        )
        return cls(
            orientation=_rounded(h.orientation, ORIENTATION_DECIMALS),
            rows=h.rows,
            columns=h.columns,
            pixel_spacing=_rounded(h.pixel_spacing, SPACING_DECIMALS),
            slice_thickness=thickness,
            kernel=h.kernel,
            image_type=h.image_type,
        )

    def render(self) -> tuple[str, ...]:
        """The key as text, the order used to number groups ``_1``, ``_2``, ..."""

        def txt(v: object) -> str:
            if v is None:
                return ""
            if isinstance(v, tuple):
                return ",".join(f"{x:g}" for x in v)
            return str(v)

        return tuple(
            txt(v)
            for v in (
                self.orientation,
                self.rows,
                self.columns,
                self.pixel_spacing,
                self.slice_thickness,
                self.kernel,
                self.image_type,
            )
        )


@dataclass
class SeriesGroup:
    """One series: de-duplicated member headers (sorted by path) and its key."""

    series_uid: str
    dicom_series_uid: str | None
    key: GroupKey
    headers: list[FileHeader]
    n_duplicates: int = 0
    status: str = Status.OK.value
    reason: str | None = None
    reason_detail: str | None = None
    key_uid: str = ""  # what the group was keyed by: its SeriesInstanceUID or fallback UID


def _dedupe(headers: list[FileHeader]) -> tuple[list[FileHeader], int]:
    """Keep the first header (by path) of each SOPInstanceUID; count the others."""
    seen: set[str] = set()
    kept = []
    for h in sorted(headers, key=lambda h: (h.path, h.frame)):
        sop = f"{h.sop_uid or h.path}#{h.frame}"
        if sop in seen:
            continue
        seen.add(sop)
        kept.append(h)
    return kept, len(headers) - len(kept)


def fallback_series_uid(h: FileHeader, root: str | os.PathLike | None = None) -> str:
    """The series key of an image without SeriesInstanceUID: a UID (pydicom's root, hash of
    :data:`FALLBACK_KEY`) from its folder relative to ``root``, PatientID, StudyID and
    SeriesNumber. The folder enters only as a hash: names hold patient names in real exports."""
    folder = os.path.dirname(h.path)
    if root is not None:
        folder = os.path.relpath(folder, os.fspath(root))
    folder_hash = hashlib.sha256(os.fsencode(folder)).hexdigest()
    key = json.dumps([folder_hash, h.patient_id, h.study_id, h.series_number])
    return str(generate_uid(entropy_srcs=[key]))


def _series_key(h: FileHeader, root: str | os.PathLike | None) -> str | None:
    """The SeriesInstanceUID of an image, its fallback key, or None (not grouped)."""
    if h.series_uid and h.kind in ("dicom", "unreadable"):
        return h.series_uid
    if h.kind == "dicom":
        return fallback_series_uid(h, root)
    return None


def _warn_invalid_uids(uids: Iterable[str]) -> None:
    for uid in sorted(uids):
        if not UID(uid).is_valid:
            log.warning("SeriesInstanceUID %s is not a valid UID; kept as it is", uid)


def group_headers(
    headers: Iterable[FileHeader], root: str | os.PathLike | None = None
) -> list[SeriesGroup]:
    """Group the image files' headers into series, keyed and classified.

    Headers of kind ``dicom`` take part, and ``unreadable`` ones with a SeriesInstanceUID;
    images without SeriesInstanceUID are grouped by the fallback key (folder relative to
    ``root``, see the module docstring). Returns the groups sorted by ``series_uid``.
    """
    by_uid: dict[str, dict[GroupKey, list[FileHeader]]] = defaultdict(lambda: defaultdict(list))
    fallback: set[str] = set()
    for h in headers:
        uid = _series_key(h, root)
        if uid is None:
            continue
        if not h.series_uid:
            fallback.add(uid)
        by_uid[uid][GroupKey.of(h)].append(h)
    _warn_invalid_uids(set(by_uid) - fallback)
    groups: list[SeriesGroup] = []
    for uid, by_key in by_uid.items():
        keys = sorted(by_key, key=GroupKey.render)
        for k, key in enumerate(keys, start=1):
            kept, n_dup = _dedupe(by_key[key])
            g = SeriesGroup(
                series_uid=uid if len(keys) == 1 else f"{uid}_{k}",
                dicom_series_uid=None if uid in fallback else uid,
                key=key,
                headers=kept,
                n_duplicates=n_dup,
                key_uid=uid,
            )
            g.status, g.reason, g.reason_detail = classify(g, by_key)
            if uid in fallback:
                g.reason_detail = join_details(FALLBACK_DETAIL, g.reason_detail)
            groups.append(g)
    _flag_mixed_geometry(groups)
    return sorted(groups, key=lambda g: g.series_uid)


FALLBACK_DETAIL = "no SeriesInstanceUID: grouped by folder, PatientID, StudyID, SeriesNumber"


def join_details(*details: str | None) -> str | None:
    """``reason_detail`` notes joined by ``; `` (None when there is none)."""
    kept = [d for d in details if d]
    return "; ".join(kept) if kept else None


def _projections(g: SeriesGroup) -> np.ndarray:
    """Positions of a group's images along its slice normal (mm); empty when unknown."""
    o = g.key.orientation
    pos = [h.position for h in g.headers if h.position is not None]
    if o is None or not pos:
        return np.empty(0)
    normal = np.cross(o[:3], o[3:])
    return np.sort(np.asarray(pos) @ normal)


def _interleave(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a position of ``a`` lies inside ``b``'s range where ``b`` has no image."""
    if not len(a) or not len(b):
        return False
    inside = a[(a > b[0] + DUPLICATE_POSITION_MM) & (a < b[-1] - DUPLICATE_POSITION_MM)]
    if not len(inside):
        return False
    nearest = np.abs(inside[:, None] - b[None, :]).min(axis=1)
    return bool((nearest > DUPLICATE_POSITION_MM).any())


def _flag_mixed_geometry(groups: list[SeriesGroup]) -> None:
    """Mark interleaved groups that differ only in matrix / pixel spacing (see module doc)."""
    by_stack: dict[tuple[object, ...], list[SeriesGroup]] = defaultdict(list)
    for g in groups:
        k = g.key
        by_stack[(g.key_uid, k.orientation, k.slice_thickness, k.kernel, k.image_type)].append(g)
    for members in by_stack.values():
        if len(members) < 2:
            continue
        proj = {id(g): _projections(g) for g in members}
        mixed = {
            id(g)
            for g in members
            for h in members
            if g is not h
            and (_interleave(proj[id(g)], proj[id(h)]) or _interleave(proj[id(h)], proj[id(g)]))
        }
        for g in members:
            if id(g) in mixed and g.status == Status.OK:
                g.status, g.reason = Status.EXCLUDED.value, Reason.INCONSISTENT_GEOMETRY.value
                g.reason_detail = join_details(
                    "images of one stack differ in matrix or pixel spacing",
                    FALLBACK_DETAIL if g.dicom_series_uid is None else None,
                )


def _is_stray_slice(group: SeriesGroup, by_key: dict[GroupKey, list[FileHeader]]) -> bool:
    """One image whose orientation differs from the largest group of its UID (a scout)."""
    if len(group.headers) != 1 or len(by_key) < 2:
        return False
    largest = max(by_key, key=lambda k: (len(by_key[k]), k.render()))
    return largest.orientation != group.key.orientation


def is_axial_reformat(key: GroupKey) -> bool:
    """True for an axial primary reformat: ImageType ``DERIVED\\PRIMARY\\<MPR|REFORMATTED|
    AXIAL>...`` without a projection / rendering value (:data:`PROJECTION_TYPES`), whose
    slice normal is within :data:`~cacflow.dicom.qc.AXIAL_MAX_ANGLE_DEG` of the patient z
    axis. Volume scanners export their calcium-scoring series this way."""
    values = key.image_type.split("\\")
    if values[:2] != [DERIVED_TYPE, PRIMARY_TYPE] or len(values) < 3:
        return False
    if values[2] not in REFORMAT_TYPES or set(values) & PROJECTION_TYPES:
        return False
    o = key.orientation
    if o is None:
        return False
    normal = np.cross(o[:3], o[3:])
    return (
        bool(np.linalg.norm(normal) > 0)
        and angle_deg(normal, np.array([0.0, 0.0, 1.0])) <= AXIAL_MAX_ANGLE_DEG
    )


REFORMAT_DETAIL = "axial primary reformat (ImageType {})"


def classify(
    group: SeriesGroup, by_key: dict[GroupKey, list[FileHeader]]
) -> tuple[str, str | None, str | None]:
    """(status, reason, reason_detail) of a group as far as headers tell; first match wins.

    An ``ok`` axial primary reformat has ``reason_detail`` :data:`REFORMAT_DETAIL`.
    """
    hs = group.headers
    n = len(hs)
    image_type = group.key.image_type
    modalities = sorted({h.modality for h in hs})
    if modalities != [CT_MODALITY]:
        detail = f"Modality {'/'.join(modalities) or 'missing'}"
        return Status.EXCLUDED.value, Reason.NOT_CT.value, detail
    types = set(image_type.split("\\"))
    if types & LOCALIZER_TYPES:
        return Status.EXCLUDED.value, Reason.LOCALIZER.value, f"ImageType {image_type}"
    if any(h.sop_class.startswith(SECONDARY_CAPTURE_PREFIX) for h in hs):
        return Status.EXCLUDED.value, Reason.DERIVED.value, "secondary capture"
    reformat = is_axial_reformat(group.key)
    if image_type.split("\\")[0] == DERIVED_TYPE and not reformat:
        return Status.EXCLUDED.value, Reason.DERIVED.value, f"ImageType {image_type}"
    if _is_stray_slice(group, by_key):
        return Status.EXCLUDED.value, Reason.LOCALIZER.value, "single image at another orientation"
    if any(h.n_frames > 1 for h in hs):
        detail = "multi-frame images without per-frame functional groups"
        return Status.EXCLUDED.value, Reason.UNSUPPORTED_SYNTAX.value, detail
    bad = sum(h.kind == "unreadable" for h in hs)
    if bad:
        return Status.EXCLUDED.value, Reason.UNREADABLE.value, f"{bad} of {n} files truncated"
    missing = sum(not h.has_pixels for h in hs)
    if missing:
        return (
            Status.EXCLUDED,
            Reason.MISSING_PIXELS.value,
            f"{missing} of {n} files have no PixelData",
        )
    return Status.OK.value, None, (REFORMAT_DETAIL.format(image_type) if reformat else None)
