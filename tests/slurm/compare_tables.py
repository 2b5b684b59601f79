"""Compare the Parquet tables of two runs of one dataset (e.g. local vs SLURM).

Usage: python tests/slurm/compare_tables.py RESULTS_A RESULTS_B [--tables scans scores ...]

Every ``*.parquet`` directly under either ``results/<ds>`` folder (but ``--exclude``d ones)
must exist in both, with
the same columns and the same rows (row order ignored: rows are sorted on every column
first). Floating-point values must agree to ``RTOL`` / ``ATOL``; everything else exactly. The
provenance metadata is ignored (it holds run-specific times). Exit status 0 when all tables
are equal, 1 otherwise, with one line per difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

RTOL = 1e-9
ATOL = 1e-9
"""Tolerances of float columns: both runs execute the same code on the same files; the
tolerances only absorb summation order (e.g. BLAS with another thread count), which moves a
zero bias to 1e-14."""


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted on every column (as text for sorting only), index reset."""
    if df.empty:
        return df.reset_index(drop=True)
    keys = df.astype(str)
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return df.loc[order].reset_index(drop=True)


def table_differences(
    a: pd.DataFrame, b: pd.DataFrame, rtol: float = RTOL, atol: float = ATOL
) -> list[str]:
    """Human-readable differences between two tables; empty when they are equal."""
    if list(a.columns) != list(b.columns):
        return [f"columns differ: {list(a.columns)} vs {list(b.columns)}"]
    if len(a) != len(b):
        return [f"row counts differ: {len(a)} vs {len(b)}"]
    a, b = canonical(a), canonical(b)
    problems = []
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_float_dtype(x) and pd.api.types.is_float_dtype(y):
            same = np.isclose(x.to_numpy(), y.to_numpy(), rtol=rtol, atol=atol, equal_nan=True)
        else:
            same = np.array([_same(u, v) for u, v in zip(x, y, strict=True)], dtype=bool)
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            problems.append(
                f"column {col!r}: {int((~same).sum())} rows differ (first: {x.iloc[i]!r} vs "
                f"{y.iloc[i]!r})"
            )
    return problems


def _same(u: object, v: object) -> bool:
    if _missing(u) and _missing(v):
        return True
    if isinstance(u, np.ndarray | list) or isinstance(v, np.ndarray | list):
        return np.array_equal(np.asarray(u), np.asarray(v))
    return bool(u == v)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def compare_folders(
    first: Path, second: Path, tables: list[str] | None = None, exclude: tuple[str, ...] = ()
) -> list[str]:
    """Differences between the Parquet tables of two results folders, table by table.

    ``tables`` None compares every ``*.parquet`` of either folder except ``exclude``.
    """
    found = {p.stem for p in first.glob("*.parquet")} | {p.stem for p in second.glob("*.parquet")}
    names = tables or sorted(found - set(exclude))
    if not names:
        return [f"{first}: no Parquet tables"]
    problems = []
    for name in names:
        pa_, pb = first / f"{name}.parquet", second / f"{name}.parquet"
        missing = [str(p) for p in (pa_, pb) if not p.exists()]
        if missing:
            problems.append(f"{name}: missing {', '.join(missing)}")
            continue
        diffs = table_differences(pd.read_parquet(pa_), pd.read_parquet(pb))
        problems += [f"{name}: {d}" for d in diffs]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--tables", nargs="*", help="table names (default: every *.parquet)")
    parser.add_argument("--exclude", nargs="*", default=[], help="table names to skip")
    args = parser.parse_args(argv)
    problems = compare_folders(args.first, args.second, args.tables, tuple(args.exclude))
    for line in problems:
        print(line)
    if not problems:
        print(f"tables equal: {args.first} == {args.second}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
