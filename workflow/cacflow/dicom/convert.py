"""Conversion: one NIfTI volume (int16 HU) per usable series, one scans row per series.

Conversion works from the manifest of :func:`cacflow.dicom.discover.discover`, whose
header pass is the only parse of the headers: geometry QC (:mod:`cacflow.dicom.qc`) runs on
the manifest's per-file positions before any pixel is read; native little-endian 16-bit
pixels are then read with ``numpy.fromfile`` at the offset the header pass found (checked
against the Pixel Data tag), other syntaxes are decoded by pydicom (or GDCM); each slice
becomes int16 HU with its own rescale and lands at its place along the slice normal in one
preallocated array. Series are spread over one process pool; a series that fails never
stops the batch: its row is ``excluded`` with a reason.

Volumes: ``<out_dir>/<series_uid>.nii`` + JSON sidecar (:func:`cacflow.volume.write_volume`),
axis order (z, y, x), origin = centre of the first voxel (LPS mm), spacing (column, row,
increment) mm, direction columns (row direction, column direction, slice normal). The
sidecar holds series_uid, kernel, manufacturer and the native geometry: no identifiers.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from cacflow.contract import SCANS_SCHEMA
from cacflow.conventions import Reason, Status
from cacflow.dicom.discover import decode_path, discover_rows
from cacflow.dicom.grouping import REFORMAT_DETAIL, join_details
from cacflow.dicom.parallel import parallel_map
from cacflow.dicom.qc import QcConfig, QcFailure, check_present, order_stack
from cacflow.dicom.read import (
    DicomReadError,
    PixelFormat,
    decode_slice,
    read_stored_native,
    stored_to_hu,
)
from cacflow.provenance import provenance, write_table
from cacflow.volume import Geometry, Volume, sidecar_path, write_volume

if TYPE_CHECKING:
    import pandas as pd

# Start-up matters here: ``cacflow convert`` on one series is compared with dcm2niix
# (benchmarks/convert.py), and imports were most of the gap. So this module imports neither
# pandas (only the DataFrame-facing functions do, lazily) nor SimpleITK (gantry-tilt
# resampling and GDCM decoding import it when a series needs them).

__all__ = [
    "QcConfig",
    "SCANS_SCHEMA",
    "convert_batch",
    "convert_dir",
    "convert_dir_table",
    "convert_series",
    "write_scans",
]

SCANS_COLUMNS = tuple(SCANS_SCHEMA.names)
SCANS_FILE = "scans.parquet"
NIFTI_SUFFIX = ".nii"
COUNT_PREFIX = "count."
"""Prefix of the file-count keys in the scans table's metadata."""


def volume_path(out_dir: str | os.PathLike, series_uid: str) -> Path:
    """Where the volume of ``series_uid`` is written."""
    return Path(out_dir) / f"{series_uid}{NIFTI_SUFFIX}"


def _is_missing(v: Any) -> bool:
    """None, or a scalar NaN / NaT (what ``np.isscalar(v) and pd.isna(v)`` tells, without
    importing pandas; pandas' own NA is not a numpy scalar, so it never counted here)."""
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return math.isnan(v)
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(v))
    if isinstance(v, complex | np.complexfloating):
        return math.isnan(v.real) or math.isnan(v.imag)
    return False


def _scalar(v: Any) -> Any:
    """``v`` with pandas/numpy missing values as None and numpy scalars as Python ones."""
    if _is_missing(v):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _base_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The scans row of a manifest row before conversion."""
    out = {c: _scalar(row.get(c)) for c in SCANS_COLUMNS}
    out["slice_increment_mm"] = None
    out["n_slices"] = _scalar(row.get("n_files"))
    return out


def _exclude(out: dict[str, Any], reason: Reason, detail: str) -> dict[str, Any]:
    out.update(status=Status.EXCLUDED.value, reason=reason.value, reason_detail=detail)
    return out


def _decode_reason(syntaxes: str) -> Reason:
    """``unsupported_syntax`` when a transfer syntax of the series (``/``-joined) has no
    installed pydicom decoder, else ``unreadable`` (the data themselves are broken)."""
    from pydicom.pixels import get_decoder

    for ts in syntaxes.split("/"):
        try:
            if not get_decoder(ts).is_available:
                return Reason.UNSUPPORTED_SYNTAX
        except (NotImplementedError, ValueError):
            return Reason.UNSUPPORTED_SYNTAX
    return Reason.UNREADABLE


def is_reformat_detail(detail: str | None) -> bool:
    """True when a manifest ``reason_detail`` marks an axial primary reformat."""
    marker = REFORMAT_DETAIL.split("{")[0]
    return bool(detail) and any(p.startswith(marker) for p in str(detail).split("; "))


def _pixel_format(row: Mapping[str, Any]) -> PixelFormat | None:
    text = row.get("pixel_format")
    if not text:
        return None
    d = json.loads(text)
    d["padding"] = None if d["padding"] is None else tuple(d["padding"])
    return PixelFormat(**d)


def _slice_hu(row: Mapping[str, Any], i: int, fmt: PixelFormat | None) -> np.ndarray:
    """HU (int16, (y, x)) of file ``i`` of the series ``row``."""
    path = decode_path(str(row["files"][i]))
    offset = int(row["pixel_offsets"][i])
    frames = row.get("frames")
    frame = -1 if frames is None or _is_missing(frames) else int(frames[i])
    slope, intercept = float(row["rescale_slopes"][i]), float(row["rescale_intercepts"][i])
    if fmt is None or offset < 0:
        return decode_slice(path, frame, (slope, intercept) if frame >= 0 else None)
    rows, columns = int(row["rows"]), int(row["columns"])
    stored = read_stored_native(path, offset, rows, columns, fmt, max(frame, 0))
    return stored_to_hu(stored, slope, intercept, fmt.padding)


def _pixels(row: Mapping[str, Any], order: np.ndarray, threads: int = 1) -> np.ndarray:
    """HU (int16, (z, y, x)) of the series' files in stack ``order``.

    ``threads`` > 1 reads slices concurrently (file reads and numpy release the GIL).
    """
    fmt = _pixel_format(row)
    shape = (int(row["rows"]), int(row["columns"]))
    hu = np.empty((len(order), *shape), dtype=np.int16)
    syntaxes = str(row.get("transfer_syntax") or "unknown")

    def fill(z: int) -> None:
        try:
            sl = _slice_hu(row, int(order[z]), fmt)
        except DicomReadError as exc:
            raise QcFailure(Reason.UNREADABLE, f"image {z}: {exc}") from exc
        except Exception as exc:  # a decoder's error: name the syntax, never the file
            raise QcFailure(
                _decode_reason(syntaxes),
                f"image {z}: {type(exc).__name__} decoding transfer syntax {syntaxes}",
            ) from exc
        if sl.shape != shape:
            raise QcFailure(Reason.UNREADABLE, f"image {z}: pixel array shape {sl.shape}")
        hu[z] = sl

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fill, range(len(order))))
    else:
        for z in range(len(order)):
            fill(z)
    return hu


def build_volume(
    row: Mapping[str, Any], qc: QcConfig, threads: int = 1
) -> tuple[Volume, str | None]:
    """Check and assemble the series of one manifest row: (volume, reason_detail).

    Raises :class:`QcFailure` when the series is excluded.
    """
    n = len(row["files"])
    if n < qc.min_slices:
        raise QcFailure(Reason.TOO_FEW_SLICES, f"{n} images < qc.min_slices {qc.min_slices}")
    positions = np.asarray(row["positions"], dtype=float).reshape(n, 3)
    orientation = _scalar_or_list(row.get("orientation"))
    row_sp, col_sp = _scalar(row.get("pixel_spacing_mm")), _scalar(row.get("pixel_spacing_col_mm"))
    spacing = None if row_sp is None or col_sp is None else (row_sp, col_sp)
    check_present(
        orientation, positions, spacing, _scalar(row.get("rows")), _scalar(row.get("columns"))
    )
    stack = order_stack(np.asarray(orientation, dtype=float), positions, qc)
    hu = _pixels(row, stack.order, threads)
    thickness = _scalar(row.get("slice_thickness_mm")) or stack.increment_mm
    increment = stack.increment_mm if stack.increment_mm > 0 else (thickness or 1.0)
    detail = None
    if stack.tilt_deg > qc.max_tilt_deg:  # gantry_tilt == 'resample' (else QC raised)
        from cacflow.dicom.tilt import resample_tilted

        hu, geom = resample_tilted(
            hu,
            stack.origin,
            stack.row_dir,
            stack.col_dir,
            stack.step_dir,
            (col_sp, row_sp, increment),
            thickness,
        )
        detail = f"gantry tilt {stack.tilt_deg:.2f} deg resampled onto an orthogonal grid"
    else:
        direction = np.column_stack([stack.row_dir, stack.col_dir, stack.normal]).ravel()
        geom = Geometry(
            origin=tuple(float(v) for v in stack.origin),
            spacing=(float(col_sp), float(row_sp), float(increment)),
            direction=tuple(float(v) for v in direction),
            slice_thickness_mm=float(thickness),
        )
    meta = {
        "kernel": row.get("kernel"),
        "manufacturer": row.get("manufacturer"),
        "native_slice_thickness_mm": float(thickness),
        "native_slice_increment_mm": float(increment),
        "n_slices": n,
        "gantry_tilt_deg": round(stack.tilt_deg, 3),
    }
    return Volume(hu, geom, meta), detail


def _scalar_or_list(v: Any) -> list[float] | None:
    if _is_missing(v):
        return None
    return [float(x) for x in v]


def convert_series(
    row: Mapping[str, Any], out_dir: str | os.PathLike, qc: QcConfig, threads: int = 1
) -> dict[str, Any]:
    """Convert one manifest row; return its scans row. Never raises for a bad series.

    ``threads``: slices read concurrently within the series.
    """
    out = _base_row(row)
    path = volume_path(out_dir, str(row["series_uid"]))
    for stale in (path, sidecar_path(path)):
        stale.unlink(missing_ok=True)
    if row.get("status") != Status.OK.value:
        return out
    header_detail = _scalar(row.get("reason_detail"))
    if qc.reformats == "exclude" and is_reformat_detail(header_detail):
        return _exclude(out, Reason.DERIVED, f"{header_detail}; qc.reformats: exclude")
    try:
        vol, detail = build_volume(row, qc, threads)
    except QcFailure as f:
        return _exclude(out, f.reason, join_details(f.detail, header_detail))
    except Exception as exc:  # noqa: BLE001 - one bad series never stops the batch
        detail = f"{type(exc).__name__} while reading the series"
        return _exclude(out, Reason.UNREADABLE, join_details(detail, header_detail))
    vol.meta = {"series_uid": str(row["series_uid"]), **vol.meta}
    write_volume(vol, path)
    out.update(
        status=Status.OK.value,
        reason=None,
        reason_detail=join_details(header_detail, detail),
        slice_thickness_mm=vol.meta["native_slice_thickness_mm"],
        slice_increment_mm=vol.meta["native_slice_increment_mm"],
        n_slices=vol.meta["n_slices"],
    )
    return out


_NUMPY_OF_ARROW = {pa.int64(): np.int64, pa.float64(): np.float64}


def _plain_column(values: list[Any], typ: pa.DataType) -> pa.Array | None:
    """``values`` (Python str / int / float or None) as an Arrow array built from buffers,
    or None when a value is of another kind.

    Why: every ``pyarrow.array`` call on Python objects (and so ``Table.from_pylist``)
    imports pandas to check for pandas objects, ~0.25 s of a ~1.2 s single-series convert.
    Arrays built from buffers hold the same values and nulls, so the table is equal to
    ``Table.from_pylist``'s (tests/test_convert_lean.py checks it).
    """
    valid = [v is not None for v in values]
    n, n_null = len(values), valid.count(False)
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if n_null else None
    present = [v for v in values if v is not None]
    if typ == pa.string():
        if not all(type(v) is str for v in present):
            return None
        raw = [v.encode("utf-8") if v is not None else b"" for v in values]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum([len(b) for b in raw], out=offsets[1:])
        buffers = [bitmap, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))]
        return pa.Array.from_buffers(typ, n, buffers, n_null)
    np_type = _NUMPY_OF_ARROW.get(typ)
    kinds = (int,) if np_type is np.int64 else (int, float)
    if np_type is None or not all(type(v) in kinds for v in present):
        return None
    data = np.array([v if v is not None else 0 for v in values], dtype=np_type)
    return pa.Array.from_buffers(typ, n, [bitmap, pa.py_buffer(data)], n_null)


def scans_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Scans rows as an Arrow table of :data:`SCANS_SCHEMA` (``Table.from_pylist``)."""
    columns = [_plain_column([r.get(f.name) for r in rows], f.type) for f in SCANS_SCHEMA]
    if any(c is None for c in columns):  # an unusual value: let pyarrow convert it
        return pa.Table.from_pylist(rows, schema=SCANS_SCHEMA)
    return pa.Table.from_arrays(columns, schema=SCANS_SCHEMA)


def scans_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Scans rows as a DataFrame with the columns and types of :data:`SCANS_SCHEMA`."""
    return scans_table(rows).to_pandas()


def _convert_rows(
    rows: list[dict[str, Any]], out_dir: str | os.PathLike, qc: QcConfig, workers: int
) -> list[dict[str, Any]]:
    """The scans rows of manifest ``rows`` (see :func:`convert_batch`)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    n_ok = sum(r.get("status") == Status.OK.value for r in rows)
    if n_ok < workers:  # too few series for the pool: read the slices of each in threads
        work = partial(convert_series, out_dir=Path(out_dir), qc=qc, threads=workers)
        return [work(r) for r in rows]
    work = partial(convert_series, out_dir=Path(out_dir), qc=qc)
    return list(parallel_map(work, rows, workers))


def convert_batch(
    manifest: pd.DataFrame, out_dir: str | os.PathLike, qc: QcConfig, *, workers: int = 1
) -> pd.DataFrame:
    """Convert every series (row) of ``manifest``; return the scans rows in manifest order.

    Excluded rows pass through; the others are read, checked and written as
    ``out_dir/<series_uid>.nii``.
    """
    return scans_frame(_convert_rows(manifest.to_dict("records"), out_dir, qc, workers))


def convert_dir_table(
    dicom_dir: str | os.PathLike, out_dir: str | os.PathLike, qc: QcConfig, *, workers: int = 1
) -> pa.Table:
    """:func:`convert_dir` returning the scans table as Arrow, without importing pandas.

    The manifest rows go from :func:`cacflow.dicom.discover.discover_rows` to conversion as
    plain dicts (the values :func:`cacflow.dicom.discover.discover`'s DataFrame holds, with
    None for its NaN), and ``scans.parquet`` is written from the Arrow table of the scans
    rows: the same table and metadata as writing :func:`scans_frame` with
    :data:`SCANS_SCHEMA` (scans rows never hold NaN, only None).
    """
    manifest, counts = discover_rows(dicom_dir, workers=workers)
    scans = scans_table(_convert_rows(manifest, out_dir, qc, workers))
    write_scans(scans, out_dir, qc, counts)
    return scans


def write_scans(
    scans: pd.DataFrame | pa.Table,
    out_dir: str | os.PathLike,
    qc: QcConfig,
    counts: Mapping[str, int] | None = None,
) -> None:
    """``out_dir/scans.parquet`` (:data:`SCANS_SCHEMA`) with provenance, the QC settings
    and, for a whole folder, the file counts of discovery (keys ``count.<name>``)."""
    meta = provenance(conventions={"qc": asdict(qc)})
    meta |= {f"{COUNT_PREFIX}{k}": str(v) for k, v in (counts or {}).items()}
    write_table(scans, Path(out_dir) / SCANS_FILE, meta=meta, schema=SCANS_SCHEMA)


def convert_dir(
    dicom_dir: str | os.PathLike, out_dir: str | os.PathLike, qc: QcConfig, *, workers: int = 1
) -> pd.DataFrame:
    """Discover and convert a whole folder: ``out_dir/*.nii`` and ``out_dir/scans.parquet``.

    The parquet metadata holds provenance, the QC settings and the file counts of
    :func:`cacflow.dicom.discover.discover` (keys ``count.<name>``, e.g. ``count.n_files``).
    """
    return convert_dir_table(dicom_dir, out_dir, qc, workers=workers).to_pandas()
