"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from wf import REPO, run_snakemake, tiny_config

IMPORT_TIME_ENV = {"PYTHONPROFILEIMPORTTIME": "1"}
"""Environment of the tiny run: every Python process (each job's `cacflow <step>`) writes the
modules it imports to its stderr, i.e. into the job's log (tests/test_envs.py reads them)."""


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CPU end-to-end run of the workflow on a 6-scan cohort (3 mm and 1 mm series, two
    batches, every method of config/config.yaml); returns its working directory. The jobs'
    logs also list the modules each step imported (:data:`IMPORT_TIME_ENV`)."""
    workdir = tmp_path_factory.mktemp("tiny")
    cfg = tiny_config(workdir)
    run_snakemake(workdir, "--cores", "2", "--configfile", str(cfg), env=IMPORT_TIME_ENV)
    return workdir


@pytest.fixture(scope="session")
def real_series():
    """Read one of the shared real series by short name (``wf.REAL_SERIES``), cached for
    the session; skips when the shared data is not on this machine."""
    from cacflow.insert import read_series
    from wf import REAL_CT, REAL_SERIES

    if not REAL_CT.is_dir():
        pytest.skip(f"shared real CT series not found at {REAL_CT}")
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = read_series(REAL_SERIES[name])
        return cache[name]

    return get
