"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from wf import REPO


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


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
