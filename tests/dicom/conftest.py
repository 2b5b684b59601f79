"""Fixtures for the DICOM tests: real files written with pydicom (cacflow.dicom.write)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cacflow.dicom.write import SeriesSpec, phantom, write_ct_series

N_SLICES = 12
"""Slices of a default test series (>= the default qc.min_slices of 10)."""

SeriesWriter = Callable[..., tuple[np.ndarray, SeriesSpec, list[Path]]]


@pytest.fixture
def write_series(tmp_path: Path) -> SeriesWriter:
    """Write a CT series: ``write_series(subdir, n=12, seed=0, **SeriesSpec fields)``.

    Returns (HU array (z, y, x) in position order, spec, paths in slice order).
    """

    def _write(
        subdir: str = "s", n: int = N_SLICES, seed: int = 0, name: str = "IM{k:04d}.dcm", **kw
    ) -> tuple[np.ndarray, SeriesSpec, list[Path]]:
        spec = SeriesSpec(**kw)
        hu = phantom(n, seed=seed)
        paths = write_ct_series(hu, tmp_path / "dicom" / subdir, spec, name=name)
        return hu, spec, paths

    return _write


@pytest.fixture
def dicom_dir(tmp_path: Path) -> Path:
    d = tmp_path / "dicom"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"
