"""DICOM Segmentation (SEG) export of label masks (highdicom).

For viewing the reference standard or a method's calcium labels in a DICOM viewer or PACS
beside the source series. The workflow's ``seg`` step (:func:`export_report_segs`) writes
one SEG per pictured scan (the report's outliers and sample, :mod:`cacflow.report.qc`) and
label source (the reference, every method with registry output ``labels``).

The mask is written on its own grid (``geometry``: the analysis grid, e.g. 3 mm / 1.5 mm
resampled slices), with explicit plane positions in the source's frame of reference;
one segment per :class:`cacflow.conventions.Label` (segment number = Label value).

Privacy (CONTRACT §5). highdicom copies the whole patient and study modules of the first
source image; by default it is handed an allowlist header instead (:data:`SOURCE_KEPT`:
UIDs, geometry, image type facts), so the patient's name, ID, birth date and sex and the
study's date, time, ID, accession number and referring physician come out empty, and no
other patient or study attribute is copied. Instance creation date and time are dropped,
content date and time are a fixed dummy (:data:`CONTENT_DATE`). The UIDs a viewer needs to
align the SEG with its series are kept: StudyInstanceUID, FrameOfReferenceUID and the
referenced series and instances. ``keep_identifiers=True`` copies the source's header
as highdicom does (for use inside the clinic only).

Determinism: the SEG's own UIDs (series, instance, dimension organisation) are derived
from the source series, the label source and the mask's content (:func:`seg_uids`), and no
clock time is written, so a rerun writes identical bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from cacflow import __version__
from cacflow.conventions import REFERENCE_METHOD, Label
from cacflow.provenance import atomic_path
from cacflow.volume import Geometry

if TYPE_CHECKING:
    import pandas as pd

MANUFACTURER = "cacflow"
SERIES_NUMBER = 900
"""SeriesNumber of every written SEG (viewers sort series by it; the sources' are lower)."""
BLANKED_IDENTIFIERS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)
"""Type 2 patient and study attributes highdicom always writes: empty unless identifiers
are kept."""
SOURCE_KEPT = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "Modality",
    "ImageType",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
)
"""Source attributes handed to highdicom unless identifiers are kept: an allowlist of what
the SEG references (UIDs) and what highdicom reads to match its planes to the source's
(geometry; a multi-frame source's functional groups, read, never copied)."""
CONTENT_DATE = "19000101"
CONTENT_TIME = "000000"
"""ContentDate/ContentTime (type 1 in the multi-frame functional groups module): a fixed
dummy, as DICOM PS3.15's basic confidentiality profile replaces dates ("D"). The run's
date would make every rerun differ and, run next to the scan, hint at the study date."""
_CLOCK_ATTRIBUTES = ("InstanceCreationDate", "InstanceCreationTime", "SeriesDate", "SeriesTime")
"""Set by highdicom from the clock or the source (type 3): removed."""
SEG_SUFFIX = ".dcm"

_REGION = {
    Label.LAD: codes.SCT.LeftAnteriorDescendingCoronaryArtery,
    Label.LCX: codes.SCT.CircumflexCoronaryArtery,
    Label.RCA: codes.SCT.RightCoronaryArtery,
    Label.LM: codes.SCT.LeftMainCoronaryArtery,
    Label.AV: codes.SCT.AorticValve,
    Label.MV: codes.SCT.MitralValve,
    Label.TAC: codes.SCT.ThoracicAorta,
}
_VALVES = (Label.AV, Label.MV)


def _header(ds: Dataset, keep_identifiers: bool) -> Dataset:
    """The header highdicom reads from a source image: the allowlist :data:`SOURCE_KEPT`
    (every attribute but the pixel data when ``keep_identifiers``), with the type 2
    identifiers of :data:`BLANKED_IDENTIFIERS` present (empty unless kept)."""
    hdr = Dataset()
    for elem in ds:
        if elem.keyword == "PixelData":
            continue
        if keep_identifiers or elem.keyword in SOURCE_KEPT:
            hdr.add(elem)
    for keyword in BLANKED_IDENTIFIERS:
        if keyword not in hdr:
            setattr(hdr, keyword, "")
    return hdr


def _segment(label: Label, method: str) -> hd.seg.SegmentDescription:
    """Description of the segment holding voxels of ``label``."""
    prop = (
        codes.SCT.CalcifiedHeartValve if label in _VALVES else codes.SCT.CalcifiedAtheromatousPlaque
    )
    manual = method == REFERENCE_METHOD
    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"cacflow {method}",
        family=codes.cid7162.ArtificialIntelligence,
        version=__version__,
    )
    region = _REGION.get(label)
    return hd.seg.SegmentDescription(
        segment_number=int(label),
        segment_label=label.name,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=prop,
        algorithm_type=(
            hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
            if manual
            else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        ),
        algorithm_identification=algorithm,
        anatomic_regions=[region] if region is not None else None,
    )


def plane_positions(geometry: Geometry, n_slices: int) -> np.ndarray:
    """ImagePositionPatient (n_slices, 3; LPS mm) of the slices of ``geometry``: the centre
    of voxel (x=0, y=0) of each slice z."""
    return np.asarray(geometry.index_to_world([[0, 0, k] for k in range(n_slices)]), float)


def _planes(
    geometry: Geometry, n_slices: int
) -> tuple[list[hd.PlanePositionSequence], hd.PlaneOrientationSequence, hd.PixelMeasuresSequence]:
    """Plane positions (one per slice), orientation and pixel measures of ``geometry``."""
    patient = hd.CoordinateSystemNames.PATIENT
    d = np.asarray(geometry.direction, dtype=float).reshape(3, 3)
    positions = [
        hd.PlanePositionSequence(patient, [float(v) for v in xyz])
        for xyz in plane_positions(geometry, n_slices)
    ]
    orientation = hd.PlaneOrientationSequence(patient, [*d[:, 0].tolist(), *d[:, 1].tolist()])
    thickness = geometry.slice_thickness_mm or geometry.increment_mm
    measures = hd.PixelMeasuresSequence(
        pixel_spacing=[float(geometry.spacing[1]), float(geometry.spacing[0])],  # row, column
        slice_thickness=float(thickness),
        spacing_between_slices=float(geometry.increment_mm),
    )
    return positions, orientation, measures


def seg_uids(
    mask: np.ndarray, geometry: Geometry, source_images: Sequence[Dataset], method: str
) -> dict[str, str]:
    """The SEG's ``series``, ``instance`` and ``dimension_organization`` UIDs: derived
    (:func:`pydicom.uid.generate_uid` entropy) from the source series and instances, the
    label source ``method``, the grid and the mask's voxels, so a rerun on the same data
    gives the same UIDs and a changed mask new ones."""
    content = hashlib.sha256(np.ascontiguousarray(mask, dtype=np.uint8).tobytes())
    content.update(repr((mask.shape, geometry)).encode())
    base = [
        method,
        *sorted({str(ds.SeriesInstanceUID) for ds in source_images}),
        *sorted(str(ds.SOPInstanceUID) for ds in source_images),
        content.hexdigest(),
    ]
    return {
        what: generate_uid(entropy_srcs=[*base, what])
        for what in ("series", "instance", "dimension_organization")
    }


def _make_deterministic(seg: Dataset, dimension_uid: str) -> None:
    """Replace what highdicom takes from the clock or draws at random."""
    for keyword in _CLOCK_ATTRIBUTES:
        if keyword in seg:
            delattr(seg, keyword)
    for item in seg.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:  # type 3; highdicom's clock
            del item.ContributionDateTime
    seg.ContentDate, seg.ContentTime = CONTENT_DATE, CONTENT_TIME
    for item in seg.get("DimensionOrganizationSequence", []):
        item.DimensionOrganizationUID = dimension_uid
    for item in seg.get("DimensionIndexSequence", []):
        item.DimensionOrganizationUID = dimension_uid


def write_dicom_seg(
    mask: np.ndarray,
    geometry: Geometry,
    source_images: Sequence[Dataset],
    path: str | os.PathLike,
    *,
    method: str = REFERENCE_METHOD,
    series_number: int = SERIES_NUMBER,
    keep_identifiers: bool = False,
) -> Dataset:
    """Write ``mask`` (z, y, x; uint8 Label values) as a DICOM SEG file; return it.

    ``geometry``: the mask's grid (LPS mm). ``source_images``: datasets of the source
    series (headers suffice), in the same frame of reference. Segments are the Labels
    present in the mask (and every Label below the largest: highdicom numbers segments
    consecutively); empty slices are omitted. Identifiers: see the module docstring.
    """
    values = sorted(int(v) for v in np.unique(mask) if v)
    unknown = [v for v in values if v not in {int(lab) for lab in Label}]
    if unknown:
        raise ValueError(f"mask holds values {unknown} that are not cacflow Labels")
    if not values:
        raise ValueError("mask holds no labelled voxel; a DICOM SEG needs one")
    # highdicom numbers segments 1..n consecutively: describe every Label up to the largest
    described = [lab for lab in sorted(Label, key=int) if int(lab) <= values[-1]]
    positions, orientation, measures = _planes(geometry, mask.shape[0])
    uids = seg_uids(mask, geometry, source_images, method)
    seg = hd.seg.Segmentation(
        source_images=[_header(ds, keep_identifiers) for ds in source_images],
        pixel_array=np.ascontiguousarray(mask, dtype=np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(lab, method) for lab in described],
        series_instance_uid=uids["series"],
        series_number=series_number,
        sop_instance_uid=uids["instance"],
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=f"cacflow {method}",
        software_versions=__version__,
        device_serial_number="0",
        plane_positions=positions,
        plane_orientation=orientation,
        pixel_measures=measures,
        series_description=f"cacflow {method} calcium labels",
        content_date=CONTENT_DATE,
        content_time=CONTENT_TIME,
    )
    _make_deterministic(seg, uids["dimension_organization"])
    # highdicom swaps in the source's pixel measures when the pixel spacing matches, slice
    # thickness included: the analysis grid's slices are the resampled ones
    seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence = measures
    with atomic_path(Path(path)) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return seg


# --- the workflow's `seg` step ------------------------------------------------------------
INDEX_COLUMNS = ("series_uid", "source", "why", "file", "n_voxels", "segments")
"""Columns of the SEG folder's table (:data:`cacflow.report.qc.SEG_INDEX_FILE`), one row
per exported scan and label source. ``why``: ``outlier`` or ``sample`` (the report's reason
to picture the scan); ``file``: the SEG's path relative to the SEG folder
(``<source>/<series_uid>.dcm``), empty where the mask labels no voxel (no SEG written);
``segments``: the Label names present, space separated."""


def label_sources(settings: dict[str, Any]) -> list[str]:
    """The reference, then each configured method whose registry output is ``labels``
    (voxel masks; ``slice_scores`` methods such as ``direct`` have none)."""
    from cacflow.methods.registry import METHODS
    from cacflow.report.qc import REFERENCE_SOURCE

    methods = [m for m in settings.get("methods", []) if m in METHODS]
    return [REFERENCE_SOURCE, *(m for m in methods if METHODS[m].output == "labels")]


def source_headers(files: Sequence[str]) -> list[Dataset]:
    """Headers (no pixel data) of a series' files as the manifest lists them (a multi-frame
    file, listed once per frame, is read once)."""
    import pydicom

    from cacflow.dicom.discover import decode_path

    paths = sorted({decode_path(str(f)) for f in files})
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


def export_scan(
    uid: str,
    work: Path,
    batch: str,
    files: Sequence[str],
    sources: Sequence[str],
    out: Path,
) -> list[dict[str, Any]]:
    """SEG files of scan ``uid`` (batch ``batch`` of the work folder) for each label source
    with a mask, on the analysis grid; one index row each (without ``why``). No row where
    the analysis volume is gone (a work folder cleaned after the run: the report says how many
    chosen scans it could not picture)."""
    from cacflow.volume import read_geometry, read_volume

    image = work / "resampled" / batch / f"{uid}.nii"
    if not image.exists():
        return []
    geometry = read_geometry(image)
    headers: list[Dataset] | None = None
    rows = []
    for source in sources:
        path = work / "labels" / source / batch / f"{uid}.nii"
        if not path.exists():
            continue
        mask = read_volume(path).array
        present = [lab.name for lab in sorted(Label, key=int) if (mask == lab).any()]
        rel = None
        if present:
            headers = headers if headers is not None else source_headers(files)
            rel = f"{source}/{uid}{SEG_SUFFIX}"
            write_dicom_seg(mask, geometry, headers, out / rel, method=source)
        rows.append(
            {
                "series_uid": uid,
                "source": source,
                "file": rel,
                "n_voxels": int(np.count_nonzero(mask)),
                "segments": " ".join(present),
            }
        )
    return rows


def export_report_segs(
    work: Path,
    manifest: Path,
    settings: dict[str, Any],
    scans: pd.DataFrame,
    scores: pd.DataFrame,
    out: Path,
) -> pd.DataFrame:
    """Write the SEG files of the scans the report pictures as scored scans (outliers and
    sample, :func:`cacflow.report.qc.select_scans`; not-scorable scans have no method masks)
    under ``out/<source>/<series_uid>.dcm`` and the index ``out/index.parquet``
    (:data:`INDEX_COLUMNS`); return the index. ``work``: the dataset's work folder (analysis
    volumes ``resampled/<batch>/``, masks ``labels/<source>/<batch>/``)."""
    import pandas as pd

    from cacflow.provenance import provenance, write_table
    from cacflow.report.qc import SEG_INDEX_FILE, batch_of, select_scans
    from cacflow.tables import read_table

    reference = (settings.get("stats") or {}).get("reference", REFERENCE_METHOD)
    chosen = [c for c in select_scans(settings, scans, scores, reference).chosen if not c.reason]
    uids = [c.series_uid for c in chosen]
    table = read_table(manifest)
    files = dict(zip(table["series_uid"], table["files"], strict=True))
    where = batch_of(manifest, int(settings["batch_size"]), uids)
    sources = label_sources(settings)
    rows = []
    for c in chosen:
        if c.series_uid not in where:
            raise ValueError(f"{manifest}: no series {c.series_uid}")
        why = "outlier" if c.outlier else "sample"
        for row in export_scan(
            c.series_uid, work, where[c.series_uid], files[c.series_uid], sources, out
        ):
            rows.append({**row, "why": why})
    index = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    index["n_voxels"] = index["n_voxels"].astype("int64")
    out.mkdir(parents=True, exist_ok=True)
    write_table(index, out / SEG_INDEX_FILE, provenance(str(settings.get("config_hash") or "")))
    return index
