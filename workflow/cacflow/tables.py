"""Reading input tables and the column layout of the output tables (CONTRACT §3)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

SCANS_COLUMNS = (
    "series_uid",
    "dicom_series_uid",
    "patient_id",
    "status",
    "reason",
    "reason_detail",
    "slice_thickness_mm",
    "slice_increment_mm",
    "pixel_spacing_mm",
    "n_slices",
    "kernel",
    "manufacturer",
)
SCORES_COLUMNS = (
    "series_uid",
    "patient_id",
    "method",
    "artery",
    "agatston",
    "volume_mm3",
    "mass_mg",
    "n_lesions",
)
LESIONS_COLUMNS = (
    "series_uid",
    "method",
    "artery",
    "label",
    "agatston",
    "volume_mm3",
    "mass_mg",
    "peak_hu",
    "n_voxels",
    "x",
    "y",
    "z",
)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or Parquet table; a one-line ValueError names the file when it cannot."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # any parser error becomes one line naming the file
        raise ValueError(f"{path}: cannot read table ({type(exc).__name__}: {exc})") from exc


def with_columns(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Columns of ``columns`` first (added as missing values when absent), then the rest."""
    out = df.copy()
    for c in columns:
        if c not in out.columns:
            out[c] = None
    rest = [c for c in out.columns if c not in columns]
    return out[list(columns) + rest]
