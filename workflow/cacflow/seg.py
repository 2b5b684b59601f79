"""Optional export of a label mask as a DICOM Segmentation (highdicom).

For viewing the reference standard or a method's calcium labels in a DICOM viewer or PACS
beside the source series. Not called by the workflow: a DICOM object carries the source's
patient and study modules, so by default the patient's name and birth date are blanked
(``keep_identifiers=True`` keeps them, for use inside the clinic only).

The mask is written on its own grid (``geometry``: the analysis grid, e.g. 3 mm / 1.5 mm
resampled slices), with explicit plane positions in the source's frame of reference;
one segment per :class:`cacflow.conventions.Label` (segment number = Label value).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from cacflow import __version__
from cacflow.conventions import REFERENCE_METHOD, Label
from cacflow.provenance import atomic_path
from cacflow.volume import Geometry

MANUFACTURER = "cacflow"
BLANKED_IDENTIFIERS = ("PatientName", "PatientBirthDate")
"""Attributes emptied in the written object unless identifiers are kept."""

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
_TYPE2_FROM_SOURCE = (
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
"""Attributes highdicom copies from the source; a source lacking one gets it empty."""


def _header(ds: Dataset) -> Dataset:
    """The header of a source image (no pixel data), missing type 2 attributes empty."""
    hdr = Dataset()
    for elem in ds:
        if elem.keyword != "PixelData":
            hdr.add(elem)
    for keyword in _TYPE2_FROM_SOURCE:
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


def _planes(
    geometry: Geometry, n_slices: int
) -> tuple[list[hd.PlanePositionSequence], hd.PlaneOrientationSequence, hd.PixelMeasuresSequence]:
    """Plane positions (one per slice), orientation and pixel measures of ``geometry``."""
    patient = hd.CoordinateSystemNames.PATIENT
    d = np.asarray(geometry.direction, dtype=float).reshape(3, 3)
    positions = [
        hd.PlanePositionSequence(patient, [float(v) for v in geometry.index_to_world([0, 0, k])])
        for k in range(n_slices)
    ]
    orientation = hd.PlaneOrientationSequence(patient, [*d[:, 0].tolist(), *d[:, 1].tolist()])
    thickness = geometry.slice_thickness_mm or geometry.increment_mm
    measures = hd.PixelMeasuresSequence(
        pixel_spacing=[float(geometry.spacing[1]), float(geometry.spacing[0])],  # row, column
        slice_thickness=float(thickness),
        spacing_between_slices=float(geometry.increment_mm),
    )
    return positions, orientation, measures


def write_dicom_seg(
    mask: np.ndarray,
    geometry: Geometry,
    source_images: Sequence[Dataset],
    path: str | os.PathLike,
    *,
    method: str = REFERENCE_METHOD,
    series_number: int = 900,
    keep_identifiers: bool = False,
) -> Dataset:
    """Write ``mask`` (z, y, x; uint8 Label values) as a DICOM SEG file; return it.

    ``geometry``: the mask's grid (LPS mm). ``source_images``: datasets of the source
    series (headers suffice), in the same frame of reference. Segments are the Labels
    present in the mask; empty slices are omitted.
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
    seg = hd.seg.Segmentation(
        source_images=[_header(ds) for ds in source_images],
        pixel_array=np.ascontiguousarray(mask, dtype=np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(lab, method) for lab in described],
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=f"cacflow {method}",
        software_versions=__version__,
        device_serial_number="0",
        plane_positions=positions,
        plane_orientation=orientation,
        pixel_measures=measures,
        series_description=f"cacflow {method} calcium labels",
    )
    if not keep_identifiers:
        for keyword in BLANKED_IDENTIFIERS:
            if keyword in seg:
                setattr(seg, keyword, "")
    with atomic_path(Path(path)) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return seg
