"""Method `segment` through the workflow on a tiny synthetic cohort with the shipped
weights: masks on the analysis grid, scores, detection rows and the triage table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cacflow.volume import read_volume
from wf import REPO, copy_config, run_snakemake

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    not (REPO / "resources" / "models" / "segment.pt").is_file(), reason="no shipped weights"
)
def test_segment_end_to_end(tmp_path: Path) -> None:
    copy_config(tmp_path)
    user = {
        "datasets": {
            "tiny": {
                "synthetic": {"n_scans": 4, "seed": 7, "matrix": 96, "thicknesses_mm": [3.0]},
                "resample": {"thickness_mm": 3.0, "increment_mm": 3.0},
            }
        },
        "methods": ["segment"],
        "segment": {"weights": str(REPO / "resources" / "models" / "segment.pt")},
        "run": ["tiny"],
        "batch_size": 4,
        "stats": {"n_boot": 20},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(user))
    run_snakemake(tmp_path, "--cores", "2", "--configfile", "tiny.yaml")
    res = tmp_path / "results" / "tiny"
    scores = pd.read_parquet(res / "scores.parquet")
    assert set(scores["method"]) == {"reference", "segment"}
    det = pd.read_parquet(res / "detection.parquet")
    assert "segment" in set(det["method"])
    tri = pd.read_parquet(res / "triage.parquet")
    assert "negative_excluded_fraction" in set(tri["statistic"])
    for mask_path in (res / "work" / "labels" / "segment").rglob("*.nii"):
        image = read_volume(res / "work" / "resampled" / mask_path.parent.name / mask_path.name)
        mask = read_volume(mask_path).array
        assert mask.shape == image.array.shape
        assert (mask[image.array < 130] == 0).all()
        assert np.isin(mask, np.arange(9)).all()
    assert 'id="triage"' in (res / "report.html").read_text()
