"""Atomic writes and provenance metadata for every table the workflow writes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: this module is imported by every step
    import pandas as pd
    import pyarrow as pa

META_PREFIX = "cacflow."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    A process killed mid-write leaves at most a stray ``.tmp`` file, never a truncated
    output. The temporary name keeps the final suffix so writers that dispatch on it work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp_p = Path(tmp)
    try:
        yield tmp_p
        os.replace(tmp_p, path)
    finally:
        if tmp_p.exists():
            tmp_p.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it becomes ``path`` on success.

    For the per-batch folder outputs: a job killed mid-way leaves no half-filled folder
    that a resumed run could mistake for a finished one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def config_hash(cfg: Any) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of a config mapping."""
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def provenance(cfg_hash: str = "", conventions: dict[str, Any] | None = None) -> dict[str, str]:
    """Metadata stored in every Parquet file: version, config hash, conventions (JSON)."""
    from cacflow import __version__

    return {
        "version": __version__,
        "config_hash": cfg_hash,
        "conventions": json.dumps(conventions or {}, sort_keys=True, default=str),
    }


def write_table(
    df: pd.DataFrame | pa.Table,
    path: str | os.PathLike,
    meta: dict[str, str] | None = None,
    schema: pa.Schema | None = None,
) -> None:
    """Write ``df`` to Parquet atomically with ``cacflow.*`` schema metadata.

    Row order and column order are kept as given; the index is dropped. ``df`` may be an
    Arrow table (cast to ``schema`` when given), which spares importing pandas.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(df, pa.Table):
        table = df if schema is None or df.schema.equals(schema) else df.cast(schema)
    else:
        table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md.pop(b"pandas", None)
    for k, v in (meta or {}).items():
        md[(META_PREFIX + k).encode()] = str(v).encode()
    table = table.replace_schema_metadata(md)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_meta(path: str | os.PathLike) -> dict[str, str]:
    """The ``cacflow.*`` metadata of a Parquet file, prefix removed."""
    import pyarrow.parquet as pq

    md = pq.read_schema(path).metadata or {}
    return {
        k.decode()[len(META_PREFIX) :]: v.decode()
        for k, v in md.items()
        if k.decode().startswith(META_PREFIX)
    }
