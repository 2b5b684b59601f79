"""Lesion detection (seed 002 style) and CAC-negative rule-out (seed 003 style).

**Lesion matching.** The lesions table holds one position per lesion (``x, y, z``: mm,
LPS patient frame), not its voxels, so lesions are matched by position: a method lesion
and a reference lesion of the same series match when their positions are at most
``match_radius_mm`` apart. Matching is one-to-one; where a lesion has several candidates
the assignment maximises the number of matches, then minimises the summed distance
(Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``). Per artery (LAD, LCX,
RCA) only lesions with the same artery label can match (a LAD lesion labelled LCX counts
as a miss in LAD and a false positive in LCX, as in seed 002 Table II); for ``total``
(any coronary calcium) the labels are ignored and the non-coronary regions stay out.
The non-coronary regions TAC, AV, MV are scopes of their own where both the method and
the reference score that region (scores.parquet has their rows); ``OTHER`` calcium is
left out.

Lesion statistics per method x artery (CIs: percentile bootstrap of series):
``lesion_sensitivity`` (matched reference lesions / reference lesions), ``lesion_ppv``,
``lesion_f1`` (2 TP / (reference + method lesions)), ``fp_lesions_per_scan``,
``fn_lesions_per_scan``, ``volume_sensitivity`` (volume of matched reference lesions /
all reference volume: the share of calcium found), ``fp_volume_per_scan_mm3`` (volume of
unmatched method lesions per scan) and ``fn_volume_per_scan_mm3``. Voxel-overlap
metrics need the masks and are not computed here.

**Rule-out.** From the scores: a scan is CAC-positive when its score is above
:data:`CAC_POSITIVE_ABOVE` (0). ``ruleout_sensitivity``, ``ruleout_specificity``,
``ruleout_npv``, ``ruleout_ppv``, ``ruleout_false_negatives`` (count of CAC-positive scans
the method calls negative; seed 003 requires 0) and ``ruleout_negative_fraction`` (share
of scans the method calls CAC-negative: the scans a rule-out would spare), per artery.

``n`` is the number of series used.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from cacflow.conventions import ARTERIES, REFERENCE_METHOD, REGIONS, TOTAL
from cacflow.stats.agreement import TABLE_COLUMNS
from cacflow.stats.bootstrap import DEFAULT_N_BOOT, bootstrap_sums, percentile_ci
from cacflow.stats.pairs import ARTERY_ORDER, check_scores, iter_pairs

MATCH_RADIUS_MM = 5.0
"""Default largest distance (mm) between the positions of two lesions that match."""

CAC_POSITIVE_ABOVE = 0.0
"""A scan (or artery) is CAC-positive when its Agatston score is above this value."""

LESION_COLUMNS = ("series_uid", "method", "artery", "volume_mm3", "x", "y", "z")

# per-series additive quantities, in this column order
_N_REF, _TP, _N_MET, _REF_VOL, _TP_VOL, _FP_VOL, _FN_VOL, _SCANS = range(8)

_Ratio = Callable[[np.ndarray], np.ndarray]


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


LESION_STATISTICS: dict[str, _Ratio] = {
    "lesion_sensitivity": lambda s: _div(s[..., _TP], s[..., _N_REF]),
    "lesion_ppv": lambda s: _div(s[..., _TP], s[..., _N_MET]),
    "lesion_f1": lambda s: _div(2 * s[..., _TP], s[..., _N_REF] + s[..., _N_MET]),
    "fp_lesions_per_scan": lambda s: _div(s[..., _N_MET] - s[..., _TP], s[..., _SCANS]),
    "fn_lesions_per_scan": lambda s: _div(s[..., _N_REF] - s[..., _TP], s[..., _SCANS]),
    "volume_sensitivity": lambda s: _div(s[..., _TP_VOL], s[..., _REF_VOL]),
    "fp_volume_per_scan_mm3": lambda s: _div(s[..., _FP_VOL], s[..., _SCANS]),
    "fn_volume_per_scan_mm3": lambda s: _div(s[..., _FN_VOL], s[..., _SCANS]),
}

# rule-out 2 x 2 cells, in this column order
_TPR, _FNR, _TNR, _FPR = range(4)

RULEOUT_STATISTICS: dict[str, _Ratio] = {
    "ruleout_sensitivity": lambda s: _div(s[..., _TPR], s[..., _TPR] + s[..., _FNR]),
    "ruleout_specificity": lambda s: _div(s[..., _TNR], s[..., _TNR] + s[..., _FPR]),
    "ruleout_npv": lambda s: _div(s[..., _TNR], s[..., _TNR] + s[..., _FNR]),
    "ruleout_ppv": lambda s: _div(s[..., _TPR], s[..., _TPR] + s[..., _FPR]),
    "ruleout_false_negatives": lambda s: s[..., _FNR],
    "ruleout_negative_fraction": lambda s: _div(s[..., _TNR] + s[..., _FNR], s.sum(axis=-1)),
}


# ------------------------------------------------------------------ matching


def match_lesions(
    ref: pd.DataFrame, met: pd.DataFrame, *, radius_mm: float, keys: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one position matching of lesions; returns (ref_matched, met_matched) masks.

    ``ref`` and ``met`` need ``x, y, z`` (mm) and the ``keys`` columns (e.g. ``series_uid``
    or ``series_uid, artery``); candidates share all keys and lie within ``radius_mm``.
    """
    ref_ok = np.zeros(len(ref), dtype=bool)
    met_ok = np.zeros(len(met), dtype=bool)
    if ref.empty or met.empty:
        return ref_ok, met_ok
    a = ref[[*keys, "x", "y", "z"]].assign(ri=np.arange(len(ref)))
    b = met[[*keys, "x", "y", "z"]].assign(mi=np.arange(len(met)))
    cand = a.merge(b, on=list(keys), suffixes=("_r", "_m"))
    d = np.sqrt(sum((cand[f"{c}_r"].to_numpy() - cand[f"{c}_m"].to_numpy()) ** 2 for c in "xyz"))
    cand = cand.assign(d=d)[d <= radius_mm]
    if cand.empty:
        return ref_ok, met_ok
    # pairs whose two lesions have no other candidate are matched directly
    unique = ~cand["ri"].duplicated(keep=False) & ~cand["mi"].duplicated(keep=False)
    simple = cand[unique]
    ref_ok[simple["ri"].to_numpy()] = True
    met_ok[simple["mi"].to_numpy()] = True
    conflicted = cand[~unique]
    for _, grp in conflicted.groupby(list(keys), sort=False):
        ri, r_inv = np.unique(grp["ri"].to_numpy(), return_inverse=True)
        mi, m_inv = np.unique(grp["mi"].to_numpy(), return_inverse=True)
        big = radius_mm * (len(grp) + 1) + 1.0  # worse than any set of real matches
        cost = np.full((ri.size, mi.size), big)
        cost[r_inv, m_inv] = grp["d"].to_numpy()
        rows, cols = linear_sum_assignment(cost)
        keep = cost[rows, cols] < big
        ref_ok[ri[rows[keep]]] = True
        met_ok[mi[cols[keep]]] = True
    return ref_ok, met_ok


def _series_quantities(
    ref: pd.DataFrame, met: pd.DataFrame, n_series: int, radius_mm: float, artery: str
) -> np.ndarray:
    """Per-series additive quantities (columns ``_N_REF`` .. ``_SCANS``) of one scope.

    ``ref`` / ``met``: lesions with ``sidx`` (series position 0 .. n_series - 1),
    ``artery``, ``volume_mm3`` and ``x, y, z``.
    """
    if artery == TOTAL:  # any coronary calcium: the regions stay out of the total
        ref = ref[ref["artery"].isin(ARTERIES)]
        met = met[met["artery"].isin(ARTERIES)]
    else:
        ref = ref[ref["artery"] == artery]
        met = met[met["artery"] == artery]
    ref = ref.reset_index(drop=True)
    met = met.reset_index(drop=True)
    ref_ok, met_ok = match_lesions(ref, met, radius_mm=radius_mm, keys=("sidx",))
    ri = ref["sidx"].to_numpy()
    mi = met["sidx"].to_numpy()
    rv = ref["volume_mm3"].to_numpy(dtype=float)
    mv = met["volume_mm3"].to_numpy(dtype=float)

    def per_series(index: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=weights, minlength=n_series)

    x = np.zeros((n_series, 8))
    x[:, _N_REF] = per_series(ri, np.ones(ri.size))
    x[:, _TP] = per_series(ri, ref_ok.astype(float))
    x[:, _N_MET] = per_series(mi, np.ones(mi.size))
    x[:, _REF_VOL] = per_series(ri, rv)
    x[:, _TP_VOL] = per_series(ri, np.where(ref_ok, rv, 0.0))
    x[:, _FP_VOL] = per_series(mi, np.where(met_ok, 0.0, mv))
    x[:, _FN_VOL] = per_series(ri, np.where(ref_ok, 0.0, rv))
    x[:, _SCANS] = 1.0
    return x


def _estimates(
    x: np.ndarray, statistics: dict[str, _Ratio], n_blocks: int, n_boot: int, seed: int
) -> list[list[tuple[str, float, float, float]]]:
    """(statistic, value, ci_low, ci_high) per block of columns of ``x``.

    ``x`` holds ``n_blocks`` blocks of equal width side by side (one per artery); one set
    of bootstrap resamples of its rows serves every block.
    """
    sums = x.sum(axis=0)
    boot = bootstrap_sums(x, n_boot, np.random.default_rng(seed)) if n_boot else None
    width = x.shape[1] // n_blocks
    out = []
    for b in range(n_blocks):
        cols = slice(b * width, (b + 1) * width)
        block = []
        for name, fn in statistics.items():
            ci = percentile_ci(fn(boot[:, cols])) if boot is not None else (np.nan, np.nan)
            block.append((name, float(fn(sums[cols])), *ci))
        out.append(block)
    return out


# -------------------------------------------------------------------- tables


def _lesion_methods(lesions: pd.DataFrame, scores: pd.DataFrame | None) -> list[str]:
    """Names with lesion-level data: in ``lesions``, or with known ``n_lesions`` in scores
    (a method that found no calcium has no lesion rows but ``n_lesions`` 0; an external
    table has NaN there)."""
    names = [str(m) for m in pd.unique(lesions["method"])]
    if scores is not None and "n_lesions" in scores.columns:
        known = scores["n_lesions"].notna().groupby(scores["method"], sort=False).all()
        names += [str(m) for m, ok in known.items() if ok and m not in names]
    return names


def _lesion_rows(
    lesions: pd.DataFrame,
    scores: pd.DataFrame | None,
    *,
    reference: str,
    methods: Collection[str] | None,
    radius_mm: float,
    n_boot: int,
    seed: int,
) -> list[tuple]:
    missing = [c for c in LESION_COLUMNS if c not in lesions.columns]
    if missing:
        raise ValueError(f"lesions table lacks columns {missing}")
    names = _lesion_methods(lesions, scores)
    if reference not in names:
        return []
    coronary = lesions[lesions["artery"].isin(ARTERY_ORDER)]
    if scores is not None:
        wide = check_scores(scores, reference, "agatston")
        uids = wide.series_uid
        ref_total = np.isfinite(wide.column(TOTAL, reference))
    else:
        uids = np.asarray(pd.factorize(lesions["series_uid"], sort=True)[1], dtype=object)
        ref_total = np.ones(uids.size, dtype=bool)
    # series position of each lesion (-1: series not in the scores)
    coronary = coronary.assign(sidx=pd.Index(uids).get_indexer(coronary["series_uid"]))
    coronary = coronary[coronary["sidx"] >= 0]
    ref = coronary[coronary["method"] == reference]
    candidates = [m for m in names if m != reference]
    if methods is not None:
        candidates = [m for m in candidates if m in set(methods)]
    rows: list[tuple] = []
    for method in candidates:
        used = ref_total.copy()
        if scores is not None:
            used &= np.isfinite(wide.column(TOTAL, method))
        if not used.any():
            continue
        # renumber the series used 0 .. n - 1 (sorted by series_uid)
        new_index = np.cumsum(used) - 1
        met = coronary[coronary["method"] == method]
        ref_m = ref[used[ref["sidx"].to_numpy()]]
        met = met[used[met["sidx"].to_numpy()]]
        ref_m = ref_m.assign(sidx=new_index[ref_m["sidx"].to_numpy()])
        met = met.assign(sidx=new_index[met["sidx"].to_numpy()])
        n_series = int(used.sum())
        # one set of resamples for all arteries of a method: the scopes share the series
        scopes = [a for a in ARTERY_ORDER if a not in REGIONS]
        if scores is not None:  # a region only where both sides score it
            scopes += [
                r
                for r in REGIONS
                if r in wide.arteries
                and np.isfinite(wide.column(r, reference)).any()
                and np.isfinite(wide.column(r, method)).any()
            ]
        x = np.hstack([_series_quantities(ref_m, met, n_series, radius_mm, a) for a in scopes])
        est = _estimates(x, LESION_STATISTICS, len(scopes), n_boot, seed)
        for artery, stats in zip(scopes, est, strict=True):
            rows += [(method, artery, *e, n_series) for e in stats]
    return rows


def _ruleout_rows(scores: pd.DataFrame, *, reference: str, n_boot: int, seed: int) -> list[tuple]:
    rows: list[tuple] = []
    for p in iter_pairs(scores, reference=reference):
        pos_ref = p.reference > CAC_POSITIVE_ABOVE
        pos_met = p.values > CAC_POSITIVE_ABOVE
        x = np.column_stack(
            [pos_ref & pos_met, pos_ref & ~pos_met, ~pos_ref & ~pos_met, ~pos_ref & pos_met]
        ).astype(float)
        (est,) = _estimates(x, RULEOUT_STATISTICS, 1, n_boot, seed)
        rows += [(p.method, p.artery, *e, p.n) for e in est]
    return rows


def detection_table(
    lesions: pd.DataFrame | None,
    *,
    scores: pd.DataFrame | None = None,
    reference: str = REFERENCE_METHOD,
    match_radius_mm: float = MATCH_RADIUS_MM,
    methods: Collection[str] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """Lesion detection and CAC-negative rule-out per method x artery.

    ``lesions``: lesions table (CONTRACT §3; ``x, y, z`` in mm, LPS) or None. ``scores``:
    the scores table; it gives the rule-out statistics and the set of scans (a scan
    without any lesion still counts in the per-scan averages). Without ``scores``, the
    scans are those with at least one lesion in ``lesions``. Lesion statistics are given
    for names with lesion-level data (module docstring), ``methods`` narrows them.
    Columns ``method, artery, statistic, value, ci_low, ci_high, n``; the lesion rows of a
    method come before its rule-out rows.
    """
    lesion_rows: list[tuple] = []
    if lesions is not None and not lesions.empty:
        lesion_rows = _lesion_rows(
            lesions,
            scores,
            reference=reference,
            methods=methods,
            radius_mm=match_radius_mm,
            n_boot=n_boot,
            seed=seed,
        )
    ruleout: list[tuple] = []
    if scores is not None and not scores.empty:
        check_scores(scores, reference, "agatston")
        ruleout = _ruleout_rows(scores, reference=reference, n_boot=n_boot, seed=seed)
    df = pd.DataFrame.from_records(lesion_rows + ruleout, columns=TABLE_COLUMNS)
    df = df.astype({"value": float, "ci_low": float, "ci_high": float, "n": "int64"})
    order = {m: i for i, m in enumerate(pd.unique(df["method"]))}
    df = df.sort_values("method", key=lambda s: s.map(order), kind="stable")
    df = df.reset_index(drop=True)
    df.attrs["match_radius_mm"] = match_radius_mm
    df.attrs["cac_positive_above"] = CAC_POSITIVE_ABOVE
    return df
