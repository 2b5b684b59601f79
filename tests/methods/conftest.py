"""Shared fixtures of the method tests: the held-out datasets, each run once per session
through the workflow with every method whose tests read it (:data:`HELDOUT`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wf import REAL_CT, run_dataset

TARGET_TABLES = ["agreement.parquet", "detection.parquet", "lesions.parquet", "triage.parquet"]
"""Tables built on a held-out dataset with a reference standard (stats also writes
``confusion.parquet``; ``scans`` and ``scores`` come with them)."""
HELDOUT: dict[str, tuple[dict | None, list[str], list[str]]] = {
    "heldout_v2": (None, ["hu-threshold", "segment"], TARGET_TABLES),
    "inserted": (None, ["hu-threshold", "direct", "segment"], TARGET_TABLES),
    "inserted_gated": (None, ["hu-threshold"], TARGET_TABLES[:3]),
    "real": (
        {"dicom_dir": str(REAL_CT)},
        ["hu-threshold", "direct", "segment"],
        ["scores.parquet", "triage.parquet"],
    ),
}
"""Held-out dataset -> (entry: None for config/config.yaml's, methods, targets). Seeds as
in config/config.yaml, so the same scans as the model cards' figures: ``heldout_v2`` (24
synthetic v2 scans, seed 2003), ``inserted`` (the two real backgrounds of
shared/data/real_ct with calcium inserted under seeds 101-105, chest and 200 mm cardiac
FOV), ``inserted_gated`` (the same backgrounds, seeds 201-205, in a gated calcium scan's
geometry: 200 / 160 mm on a 512 matrix, range round the heart), ``real`` (the real
CAC-free chest CTs of shared/data/real_ct). A test of another
method on one of them adds the method here (a method's scores do not depend on the
others')."""


def _run(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    spec, methods, targets = HELDOUT[name]
    return run_dataset(tmp_path_factory.mktemp(name), name, spec, methods=methods, targets=targets)


@pytest.fixture(scope="session")
def heldout_v2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory, "heldout_v2")


@pytest.fixture(scope="session")
def inserted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory, "inserted")


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory, "real")


@pytest.fixture(scope="session")
def inserted_gated_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory, "inserted_gated")
