"""The contract tables (CONTRACT §3) as pyarrow schemas: one home for their columns and
types, used by the writers (convert's scans table is written with :data:`SCANS_SCHEMA`),
by :func:`check_table` (the tables and stats steps check what they write; the end-to-end
tests check every output) and by the readers (column order).

A table may hold more columns than its schema (extensions, documented in README); it must
hold every schema column with a compatible type. Imports only pyarrow (``cacflow convert``
start-up is benchmarked).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

SCANS_SCHEMA = pa.schema(
    [
        ("series_uid", pa.string()),
        ("dicom_series_uid", pa.string()),
        ("patient_id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("reason_detail", pa.string()),
        ("modality", pa.string()),
        ("slice_thickness_mm", pa.float64()),
        ("slice_increment_mm", pa.float64()),
        ("pixel_spacing_mm", pa.float64()),
        ("pixel_spacing_col_mm", pa.float64()),
        ("n_slices", pa.int64()),
        ("kernel", pa.string()),
        ("manufacturer", pa.string()),
        ("rows", pa.int64()),
        ("columns", pa.int64()),
        ("n_files", pa.int64()),
        ("batch", pa.string()),
    ]
)
"""Columns of a batch's ``scans.parquet`` as ``cacflow convert`` writes it (CONTRACT §3 plus
matrix, file count and batch). ``n_slices``: images in the series after de-duplication (the
volume depth for ok series not resampled for tilt); ``pixel_spacing_mm`` is the row spacing."""

DATASET_SCANS_SCHEMA = SCANS_SCHEMA.append(pa.field("noise_hu", pa.float64())).append(
    pa.field("blood_pool_hu", pa.float64())
)
"""``results/<ds>/scans.parquet``: the batch columns plus the not-scorable measurements
(noise and blood-pool HU on the analysis image; NaN where not measured)."""

SCORES_SCHEMA = pa.schema(
    [
        ("series_uid", pa.string()),
        ("patient_id", pa.string()),
        ("method", pa.string()),
        ("artery", pa.string()),
        ("agatston", pa.float64()),
        ("volume_mm3", pa.float64()),
        ("mass_mg", pa.float64()),
        ("n_lesions", pa.float64()),
    ]
)
"""``scores.parquet``: series x source x artery (LAD, LCX, RCA, total; TAC, AV, MV where the
source provides them). ``n_lesions`` is a count, NaN for sources without lesions."""

LESIONS_SCHEMA = pa.schema(
    [
        ("series_uid", pa.string()),
        ("method", pa.string()),
        ("artery", pa.string()),
        ("label", pa.string()),
        ("agatston", pa.float64()),
        ("volume_mm3", pa.float64()),
        ("mass_mg", pa.float64()),
        ("peak_hu", pa.float64()),
        ("n_voxels", pa.int64()),
        ("x", pa.float64()),
        ("y", pa.float64()),
        ("z", pa.float64()),
    ]
)
"""``lesions.parquet``: one row per lesion; position ``x, y, z`` in mm (LPS)."""

AGREEMENT_SCHEMA = pa.schema(
    [
        ("method", pa.string()),
        ("artery", pa.string()),
        ("statistic", pa.string()),
        ("value", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n", pa.int64()),
    ]
)
"""``agreement.parquet`` and ``detection.parquet``: method x artery x statistic."""

CONFUSION_SCHEMA = pa.schema(
    [
        ("method", pa.string()),
        ("scheme", pa.string()),
        ("reference_category", pa.string()),
        ("method_category", pa.string()),
        ("count", pa.int64()),
    ]
)
"""``confusion.parquet``: method x scheme x cell."""

TABLES: dict[str, pa.Schema] = {
    "scans": DATASET_SCANS_SCHEMA,
    "scores": SCORES_SCHEMA,
    "lesions": LESIONS_SCHEMA,
    "agreement": AGREEMENT_SCHEMA,
    "detection": AGREEMENT_SCHEMA,
    "confusion": CONFUSION_SCHEMA,
}
"""The contract table of each dataset output file name (``results/<ds>/<name>.parquet``)."""


def _compatible(have: pa.DataType, want: pa.DataType) -> bool:
    """Whether a column of type ``have`` holds values of the schema type ``want``: the same
    family (string, floating / integer numbers, boolean); an all-null column fits any."""
    if pa.types.is_null(have) or have == want:
        return True
    families = (
        (pa.types.is_string, pa.types.is_large_string),
        (pa.types.is_floating, pa.types.is_integer),
        (pa.types.is_boolean,),
    )
    for family in families:
        if any(f(want) for f in family):
            return any(f(have) for f in family) or (
                pa.types.is_integer(have) and pa.types.is_floating(want)
            )
    return False


def check_table(table: Any, schema: pa.Schema, name: str) -> None:
    """Raise ValueError (one line naming table ``name``) when ``table`` (a pandas DataFrame
    or an Arrow table) lacks a column of ``schema`` or holds it with an incompatible type."""
    arrow = (
        table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)
    )
    missing = [f.name for f in schema if f.name not in arrow.schema.names]
    if missing:
        raise ValueError(f"{name}: missing contract columns {missing}")
    bad = [
        f"{f.name} ({arrow.schema.field(f.name).type}, want {f.type})"
        for f in schema
        if not _compatible(arrow.schema.field(f.name).type, f.type)
    ]
    if bad:
        raise ValueError(f"{name}: columns of the wrong type: {', '.join(bad)}")
