"""Fixtures for the synthetic-cohort tests: one small cohort written once per session, and
an independent reader of its DICOM series (pydicom only, sorted by position)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from cacflow.synth import generate_cohort

COHORT_SEED = 11
COHORT_SCANS = 5
COHORT_MATRIX = 128


@dataclass
class Cohort:
    root: Path
    seed: int
    n_scans: int
    truth: pd.DataFrame
    lesions: pd.DataFrame
    annotations: pd.DataFrame
    scans: pd.DataFrame


@dataclass
class Series:
    """A series read back: HU (z, y, x) in position order, geometry, and its datasets in
    the same order."""

    hu: np.ndarray
    origin: np.ndarray  # LPS mm of voxel (0, 0, 0)
    row_dir: np.ndarray  # LPS unit vector along increasing column index (x)
    col_dir: np.ndarray  # LPS unit vector along increasing row index (y)
    normal: np.ndarray
    pixel_mm: tuple[float, float]  # (row spacing, column spacing)
    increment_mm: float
    datasets: list[pydicom.Dataset]
    files: list[Path]

    def index_of(self, xyz: np.ndarray) -> tuple[int, int, int]:
        """Nearest voxel (z, y, x) of an LPS point."""
        rel = np.asarray(xyz, float) - self.origin
        i = rel @ self.row_dir / self.pixel_mm[1]
        j = rel @ self.col_dir / self.pixel_mm[0]
        k = rel @ self.normal / self.increment_mm
        return int(round(k)), int(round(j)), int(round(i))


def read_series(folder: Path) -> Series:
    """Read every file of ``folder`` and stack them by position along the slice normal."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    dss = [pydicom.dcmread(p) for p in files]
    iop = np.array(dss[0].ImageOrientationPatient, float)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    pos = [float(np.dot(np.array(d.ImagePositionPatient, float), normal)) for d in dss]
    order = np.argsort(pos)
    dss = [dss[i] for i in order]
    files = [files[i] for i in order]
    hu = np.stack(
        [
            d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept)
            for d in dss
        ]
    )
    steps = np.diff(np.sort(pos))
    return Series(
        hu=hu,
        origin=np.array(dss[0].ImagePositionPatient, float),
        row_dir=row_dir,
        col_dir=col_dir,
        normal=normal,
        pixel_mm=(float(dss[0].PixelSpacing[0]), float(dss[0].PixelSpacing[1])),
        increment_mm=float(np.median(steps)) if steps.size else 0.0,
        datasets=dss,
        files=files,
    )


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    root = tmp_path_factory.mktemp("synth")
    generate_cohort(root, COHORT_SCANS, COHORT_SEED, matrix=COHORT_MATRIX)
    return Cohort(
        root=root,
        seed=COHORT_SEED,
        n_scans=COHORT_SCANS,
        truth=pd.read_csv(root / "truth.csv"),
        lesions=pd.read_csv(root / "truth_lesions.csv", keep_default_na=False),
        annotations=pd.read_csv(root / "annotations.csv"),
        scans=pd.read_csv(root / "cohort.csv"),
    )


@pytest.fixture(scope="session")
def series(cohort: Cohort) -> dict[str, Series]:
    """Every series of the cohort read back, keyed by SeriesInstanceUID."""
    out = {}
    for row in cohort.scans.itertuples():
        s = read_series(cohort.root / row.dicom_dir)
        out[str(s.datasets[0].SeriesInstanceUID)] = s
    return out
