"""A small but complete sample dataset for the report tests (all tables of CONTRACT §3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from cacflow.conventions import ARTERIES, DEFAULT_SCHEMES, TOTAL
from cacflow.stats import agreement_table, confusion_table, detection_table, subgroup_table
from cacflow.tables import LESIONS_COLUMNS, SCORES_COLUMNS

N_SERIES = 60
SCORE_COLUMNS = list(SCORES_COLUMNS)


def sample_scans(n: int = N_SERIES, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    uids = [f"1.2.826.0.1.3680043.{i}" for i in range(n + 4)]
    status = ["ok"] * n + ["excluded"] * 4
    reason = [None] * n + ["localizer", "gap", "gap", "too_few_slices"]
    return pd.DataFrame(
        {
            "series_uid": uids,
            "patient_id": [f"P{i // 2:03d}" for i in range(n + 4)],
            "status": status,
            "reason": reason,
            "reason_detail": [None] * n + ["/data/SECRET_NAME/loc"] * 4,
            "slice_thickness_mm": rng.choice([1.0, 3.0], n + 4),
            "slice_increment_mm": 1.5,
            "pixel_spacing_mm": 0.7,
            "n_slices": 120,
            "kernel": rng.choice(["B30f", "B60f"], n + 4),
            "manufacturer": "SIEMENS",
        }
    )


def sample_scores(scans: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ok = scans[scans["status"] == "ok"]
    n = len(ok)
    ref = rng.lognormal(3.0, 1.6, (n, 3)) * (rng.random((n, 3)) < 0.5)
    methods: dict[str, np.ndarray | None] = {
        "reference": ref,
        "convnet": ref * rng.lognormal(0.05, 0.3, ref.shape) * (rng.random(ref.shape) > 0.05),
        "nocalcium": np.zeros_like(ref),
        "vendor": None,  # external table: totals only
    }
    frames = []
    for name, per in methods.items():
        total = ref.sum(axis=1) * rng.lognormal(0.0, 0.2, n) if per is None else per.sum(axis=1)
        for j, artery in enumerate((*ARTERIES, TOTAL)):
            if per is None:
                value = total if artery == TOTAL else np.full(n, np.nan)
                n_les = np.full(n, np.nan)
            else:
                value = per[:, j] if artery != TOTAL else total
                n_les = (value > 0).astype(float)
            frames.append(
                pd.DataFrame(
                    {
                        "series_uid": ok["series_uid"].to_numpy(),
                        "patient_id": ok["patient_id"].to_numpy(),
                        "method": name,
                        "artery": artery,
                        "agatston": value,
                        "volume_mm3": value * 0.8,
                        "mass_mg": value * 0.15,
                        "n_lesions": n_les,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)[SCORE_COLUMNS]


def sample_lesions(scores: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One lesion per positive artery; convnet lesions lie 1 mm from the reference ones."""
    rng = np.random.default_rng(seed)
    rows = []
    per = scores[(scores["artery"] != TOTAL) & (scores["agatston"] > 0)]
    for r in per.itertuples():
        if r.method not in ("reference", "convnet"):
            continue
        base = np.array(
            [int(r.series_uid.rsplit(".", 1)[1]) % 50, ARTERIES.index(r.artery) * 30.0, 10.0]
        )
        base = np.abs(base).astype(float)
        shift = np.array([1.0, 0.0, 0.0]) if r.method == "convnet" else np.zeros(3)
        x, y, z = base + shift
        rows.append(
            (
                r.series_uid,
                r.method,
                r.artery,
                r.artery,
                r.agatston,
                r.volume_mm3,
                r.mass_mg,
                400.0 + rng.random() * 300,
                int(r.volume_mm3 / 0.5) + 1,
                x,
                y,
                z,
            )
        )
    cols = list(LESIONS_COLUMNS)
    return pd.DataFrame(rows, columns=cols)


def sample_report_inputs(n_boot: int = 100) -> dict[str, Any]:
    scans = sample_scans()
    scores = sample_scores(scans)
    lesions = sample_lesions(scores)
    agreement = agreement_table(scores, DEFAULT_SCHEMES, n_boot=n_boot, ba_log=True)
    return {
        "dataset": "demo",
        "scans": scans,
        "scores": scores,
        "agreement": agreement,
        "confusion": confusion_table(scores, DEFAULT_SCHEMES),
        "conventions": {
            "scoring": {"threshold_hu": 130, "connectivity": 26, "min_lesion": {"voxels": 1}},
            "schemes": {
                k: {"edges": list(v.edges), "closed": str(v.closed)}
                for k, v in DEFAULT_SCHEMES.items()
            },
            "resample": {"thickness_mm": 3.0, "increment_mm": 1.5},
        },
        "counts": {  # as cacflow convert writes them
            "n_files": 7712,
            "n_dicom": 7700,
            "n_not_dicom": 12,
            "n_unreadable": 0,
            "n_non_image": 1,
            "n_duplicates": 3,
            "n_series": 64,
        },
        "lesions": lesions,
        "detection": detection_table(lesions, scores=scores, n_boot=n_boot),
        "subgroups": subgroup_table(
            scores, scans, ["kernel", "slice_thickness_mm"], DEFAULT_SCHEMES, n_boot=n_boot
        ),
        "reference_points": pd.DataFrame(
            {
                "series_uid": ["a", "a", "b", "b", "c"],
                "label": ["LAD", "RCA", "LAD", "LM", "LAD"],
                "x": 0.0,
                "y": 0.0,
                "z": 0.0,
                "matched": [False, False, False, True, True],
                "conflict": [False, False, False, True, True],
            }
        ),
        "date": "2026-01-01",
    }


@pytest.fixture(scope="session")
def report_inputs() -> dict[str, Any]:
    return sample_report_inputs()
