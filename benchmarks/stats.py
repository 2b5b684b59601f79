"""Benchmark: study statistics at NLST scale.

50,000 scans x (reference + 3 methods) x 4 arteries (LAD, LCX, RCA, total): agreement
table with 1000 bootstrap resamples for kappa/accuracy of the four default schemes, the
confusion table, the CAC-negative rule-out (1000 resamples) and subgroups by kernel.
Target (issue 6): <= 60 s on 2 cores. Prints the wall times.

Scores are synthetic: per-artery reference Agatston scores from a zero-inflated
log-normal, methods = reference x log-normal noise with some misses and false positives.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from cacflow.conventions import ARTERIES, DEFAULT_SCHEMES, REFERENCE_METHOD, TOTAL
from cacflow.stats import agreement_table, confusion_table, detection_table, subgroup_table

N_SCANS = 50_000
METHODS = ("convnet", "voxel", "external")
TARGET_S = 60.0


def synthetic_scores(n_scans: int, methods: tuple[str, ...], seed: int = 0) -> pd.DataFrame:
    """Long scores table (CONTRACT §3) of a synthetic cohort."""
    rng = np.random.default_rng(seed)
    uids = np.array([f"1.2.826.0.1.{i}" for i in range(n_scans)])
    ref = rng.lognormal(3.0, 1.8, size=(n_scans, len(ARTERIES)))
    ref *= rng.random((n_scans, len(ARTERIES))) < 0.45  # ~ half of the arteries without CAC
    frames = []
    for name in (REFERENCE_METHOD, *methods):
        if name == REFERENCE_METHOD:
            val = ref
        else:
            val = ref * rng.lognormal(0.05, 0.25, size=ref.shape)
            val *= rng.random(ref.shape) > 0.03  # misses
            val += (rng.random(ref.shape) < 0.03) * rng.lognormal(1.5, 1.0, size=ref.shape)
        per_artery = np.column_stack([val, val.sum(axis=1)])
        for j, artery in enumerate((*ARTERIES, TOTAL)):
            frames.append(
                pd.DataFrame(
                    {
                        "series_uid": uids,
                        "patient_id": uids,
                        "method": name,
                        "artery": artery,
                        "agatston": per_artery[:, j],
                        "volume_mm3": per_artery[:, j] * 0.8,
                        "mass_mg": per_artery[:, j] * 0.2,
                        "n_lesions": (per_artery[:, j] > 0).astype(np.int64),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=N_SCANS)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    scores = synthetic_scores(args.scans, METHODS)
    uids = scores["series_uid"].unique()
    scans = pd.DataFrame(
        {"series_uid": uids, "kernel": np.where(np.arange(uids.size) % 3, "soft", "sharp")}
    )
    steps = {
        "agreement": lambda: agreement_table(scores, DEFAULT_SCHEMES, n_boot=args.n_boot),
        "confusion": lambda: confusion_table(scores, DEFAULT_SCHEMES),
        "rule-out": lambda: detection_table(None, scores=scores, n_boot=args.n_boot),
        "subgroups": lambda: subgroup_table(
            scores, scans, ["kernel"], DEFAULT_SCHEMES, n_boot=args.n_boot
        ),
    }
    times = {}
    for name, step in steps.items():
        t0 = time.perf_counter()
        step()
        times[name] = time.perf_counter() - t0
    total = sum(times.values())
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
    print(
        f"stats benchmark: {args.scans} scans x {len(METHODS)} methods x 4 arteries, "
        f"n_boot={args.n_boot}: {parts}; total {total:.1f} s (target <= {TARGET_S:.0f} s)"
    )
    if total > TARGET_S:
        raise SystemExit(f"stats benchmark too slow: {total:.1f} s > {TARGET_S:.0f} s")


if __name__ == "__main__":
    main()
