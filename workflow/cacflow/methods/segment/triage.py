"""CAC-negative triage of the ``segment`` method (seed 003: exclude scans without coronary
calcium, with no false negatives).

Operating point (per ensemble member, on its validation split): the smallest scan score of
the validation scans with reference coronary calcium, so that none of them is called
negative (a scan is negative when its score is *below* the point); 0 (no scan ever called
negative) when the split holds no such scan.

Triage table (``results/<ds>/triage.parquet``; one row per statistic, the columns of the
agreement table): over the ``ok`` series of the dataset with a reference total,
``negative_excluded_fraction`` (truly negative scans, reference total 0, called negative /
truly negative scans), ``false_negatives`` (scans with a reference total above 0 called
negative; target 0), ``false_negative_rate`` (false negatives / positive scans),
``called_negative_fraction`` (called negative / all scans) and ``n_negative``,
``n_positive``; 95 % percentile bootstrap CIs over series (:mod:`cacflow.stats.bootstrap`).
Without a reference, only ``called_negative_fraction`` (and its CI). Only series with
``segment`` rows in the scores table (``ok`` series) count; not-scorable series are
triaged but left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cacflow.conventions import REFERENCE_METHOD, TOTAL
from cacflow.stats.bootstrap import DEFAULT_N_BOOT, bootstrap_sums, percentile_ci

TRIAGE_FILE = "triage.parquet"
"""Per-batch triage scores written by ``cacflow infer segment`` beside its label masks
(torch-free here: the ``triage`` rule runs in the stats environment)."""

METHOD = "segment"
COLUMNS = ("method", "statistic", "value", "ci_low", "ci_high", "n")


def operating_point(scores: np.ndarray, positive: np.ndarray) -> float:
    """The smallest score of the positive scans (0 when there is none): every positive
    scan has a score >= it, so none is called negative (score < point)."""
    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    if not positive.any():
        return 0.0
    return float(scores[positive].min())


def triage_table(
    triage: pd.DataFrame,
    scores: pd.DataFrame | None,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    reference: str = REFERENCE_METHOD,
) -> pd.DataFrame:
    """The triage statistics (module docstring) from the per-series triage calls
    (``series_uid, triage_negative``) and the dataset's scores table (reference totals)."""
    calls = triage[["series_uid", "triage_negative"]].drop_duplicates("series_uid")
    if scores is not None and len(scores):  # series the method scored (ok ones) only
        own = scores[scores["method"] == METHOD]
        scored = own if len(own) else scores
        calls = calls[calls["series_uid"].isin(set(scored["series_uid"]))]
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(seed)
    ref = None
    if scores is not None and len(scores):
        ref = scores[(scores["method"] == reference) & (scores["artery"] == TOTAL)]
    if ref is not None and len(ref):
        ref = ref[["series_uid", "agatston"]]
        both = calls.merge(ref, on="series_uid", how="inner")
        neg_call = both["triage_negative"].astype(bool).to_numpy()
        positive = (both["agatston"].astype(float) > 0).to_numpy()
        # per series: [truly negative, excluded negative, positive, false negative, called neg]
        x = np.stack(
            [~positive, ~positive & neg_call, positive, positive & neg_call, neg_call], axis=1
        ).astype(float)
        sums = x.sum(axis=0)
        boot = bootstrap_sums(x, n_boot, rng)
        n = len(both)

        def add(stat: str, num: int, den: int | None) -> None:
            if den is None:
                value, b = sums[num], boot[:, num]
            else:
                value = sums[num] / sums[den] if sums[den] > 0 else np.nan
                with np.errstate(divide="ignore", invalid="ignore"):
                    b = np.where(boot[:, den] > 0, boot[:, num] / boot[:, den], np.nan)
            lo, hi = percentile_ci(b)
            rows.append(dict(statistic=stat, value=float(value), ci_low=lo, ci_high=hi, n=n))

        add("negative_excluded_fraction", 1, 0)
        add("false_negatives", 3, None)
        add("false_negative_rate", 3, 2)
        rows.append(dict(statistic="n_negative", value=float(sums[0]), n=n))
        rows.append(dict(statistic="n_positive", value=float(sums[2]), n=n))
        called = x[:, 4]
    else:
        called = calls["triage_negative"].astype(bool).to_numpy().astype(float)
    n = len(called)
    b = bootstrap_sums(called[:, None], n_boot, rng)[:, 0] / max(n, 1)
    lo, hi = percentile_ci(b) if n else (np.nan, np.nan)
    value = float(called.mean()) if n else np.nan
    rows.append(dict(statistic="called_negative_fraction", value=value, ci_low=lo, ci_high=hi, n=n))
    out = pd.DataFrame(rows)
    out.insert(0, "method", METHOD)
    return out.reindex(columns=list(COLUMNS))


def write_triage(
    parts: list[Path], scores_path: Path | None, out: Path, settings: dict[str, Any]
) -> pd.DataFrame:
    """``results/<ds>/triage.parquet`` from the per-batch triage tables of ``segment``
    (:data:`TRIAGE_FILE`) and the dataset's ``scores.parquet``."""
    from cacflow.provenance import write_table
    from cacflow.tables import table_meta

    frames = [pd.read_parquet(p) for p in parts if Path(p).is_file()]
    triage = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({"series_uid": [], "triage_negative": []})
    )
    scores = pd.read_parquet(scores_path) if scores_path and Path(scores_path).is_file() else None
    stats = settings.get("stats") or {}
    table = triage_table(
        triage,
        scores,
        n_boot=int(stats.get("n_boot", DEFAULT_N_BOOT)),
        seed=int(stats.get("seed", 0)),
        reference=str(stats.get("reference", REFERENCE_METHOD)),
    )
    write_table(table, out, table_meta(settings))
    return table
