"""One self-contained HTML report per dataset (CONTRACT §3 ``report.html``).

The page holds everything inline: CSS in a ``<style>`` element, figures as base64 PNG, no
scripts, no external fonts or links. It is written for a clinical reader: each section
starts with one or two sentences saying what the numbers mean.

Privacy: the report shows aggregates only: no patient IDs, no free-text exclusion details
(they may hold file paths), and never names or birth dates; series UIDs appear only in the
captions of the per-scan figures (decision feedback, scan QC pictures).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from cacflow.conventions import REFERENCE_METHOD, TOTAL, Reason, Status
from cacflow.provenance import config_hash as _config_hash
from cacflow.report import plots
from cacflow.stats.agreement import (
    ACCURACY_PREFIX,
    BA_BIAS,
    BA_LOA_HIGH,
    BA_LOA_LOW,
    ICC,
    KAPPA_PREFIX,
    LOG_SUFFIX,
    PEARSON,
    SPEARMAN,
    agreement_metadata,
)
from cacflow.stats.confusion import matrix_from_table
from cacflow.stats.pairs import ARTERY_ORDER

TEMPLATE = "template.html"
DASH = "–"  # shown for a value that is not defined (NaN)

REASON_TEXT: dict[str, str] = {
    Reason.NOT_CT: "not a CT image series",
    Reason.LOCALIZER: "localizer / scout image",
    Reason.DERIVED: "derived or secondary image (MIP, rendering, screen capture, dose page)",
    Reason.TOO_FEW_SLICES: "too few slices to cover the heart",
    Reason.GAP: "missing slices (gap in slice positions)",
    Reason.INCONSISTENT_GEOMETRY: "slices with inconsistent orientation, size or spacing",
    Reason.GANTRY_TILT: "gantry tilt",
    Reason.MISSING_PIXELS: "slices without pixel data",
    Reason.UNREADABLE: "files that could not be read",
    Reason.DUPLICATE_POSITION: "several slices at the same position",
    Reason.NOT_AXIAL: "not an axial acquisition",
    Reason.UNSUPPORTED_SYNTAX: "compressed in a format that cannot be decoded, or "
    "multi-frame without per-frame geometry",
    Reason.THICK_SLICES: "not scorable: native slices thicker than scorable.max_slice_thickness_mm",
    Reason.HEART_NOT_FOUND: "not scorable: no heart found (no lungs or mediastinum)",
    Reason.HEART_NOT_IN_FOV: "not scorable: the heart reaches the edge of the field of view",
    Reason.CONTRAST: "not scorable: contrast-enhanced blood pool",
    Reason.NOISE: "not scorable: image noise above scorable.max_noise_hu (sharp / lung kernel)",
}
"""Plain-language description of each exclusion and not-scorable reason code."""

USABLE_NOTES: dict[str, str] = {
    "no SeriesInstanceUID": "without SeriesInstanceUID (grouped by folder)",
    "axial primary reformat": "axial primary reformats",
    "gantry tilt": "gantry tilt corrected",
    "native ": "scored on native slices thicker than the analysis thickness",
}
"""``reason_detail`` prefixes of usable series the cohort flow counts, and their wording."""

COUNT_LABELS: dict[str, str] = {
    "files_found": "Files found in the DICOM folder",
    "dicom_files": "DICOM files",
    "series_found": "Image series found",
}
"""Labels of the main steps of the cohort flow; other count keys are shown as given."""

COUNT_ALIASES: dict[str, str] = {
    "n_files": "files_found",
    "n_dicom": "dicom_files",
    "n_not_dicom": "non_dicom_files",
    "n_unreadable": "unreadable_files",
    "n_non_image": "non_image_files",
    "n_duplicates": "duplicate_files",
    "n_series": "series_found",
}
"""Count keys as ``cacflow convert`` writes them (``count.<key>`` in scans.parquet)."""

ASIDE_TEXT: dict[str, dict[str, str]] = {
    "dicom_files": {"non_dicom_files": "not DICOM", "unreadable_files": "unreadable"},
    "series_found": {
        "non_image_files": "non-image DICOM (e.g. DICOMDIR)",
        "duplicate_files": "duplicate copies",
    },
}
"""Files that leave the flow beside a step (shown when non-zero): ignored, never series."""

ARTERY_TEXT = {
    "LAD": "LAD",
    "LCX": "LCX",
    "RCA": "RCA",
    TOTAL: "Total",
    "TAC": "Thoracic aorta (not coronary)",
    "AV": "Aortic valve (not coronary)",
    "MV": "Mitral valve (not coronary)",
}


def glossary(conventions: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The glossary, with the run's own conventions (threshold, artery groups, minimum
    lesion area) rendered from ``conventions['scoring']`` (defaults where not given)."""
    from cacflow.conventions import ScoringConventions

    conv = ScoringConventions.from_config(conventions.get("scoring") or {})
    groups = "; ".join(
        f"{artery} counts {', '.join(labels)}" for artery, labels in conv.artery_groups.items()
    )
    agatston = (
        "Calcium score: per slice, the area of each calcified lesion "
        f"(>= {conv.threshold_hu:g} HU, at least {conv.min_lesion.area_mm2:g} mm²) times a "
        "weight of its densest voxel (1-4), summed over the heart."
    )
    return [
        ("Agatston score", agatston),
        ("Arteries", f"Annotation labels per reported artery: {groups} (scoring.artery_groups)."),
        *GLOSSARY,
    ]


GLOSSARY: list[tuple[str, str]] = [
    (
        "ICC",
        "Intraclass correlation coefficient ICC(A,1) (two-way model, absolute agreement, single "
        "measures). 1 means identical scores; above 0.90 is usually called excellent.",
    ),
    (
        "Bland-Altman",
        "Bias is the mean difference method - reference; 95 % of differences are expected "
        "between the lower and upper limits of agreement (bias -/+ 1.96 SD).",
    ),
    (
        "Weighted kappa",
        "Cohen's kappa with linear weights on the risk categories: 1 is perfect agreement, "
        "0 is chance; a scan two categories off counts twice as much as one off.",
    ),
    ("Accuracy", "Share of scans placed in the same risk category as by the reference."),
    (
        "95 % CI",
        "95 % confidence interval (in brackets). Kappa, accuracy and detection intervals "
        "come from bootstrap resamples of scans (percentile method; settings under "
        "Conventions, statistics.bootstrap); ICC, correlation and Bland-Altman intervals "
        "from their formulas.",
    ),
    (
        "Rule-out",
        "A scan is CAC-positive when its score is above 0. Sensitivity: positive scans the "
        "method finds; NPV: share of scans the method calls negative that are negative.",
    ),
]


@dataclass
class Table:
    """A table ready for the template; cells are display strings."""

    columns: list[str]
    rows: list[list[str]]
    numeric_from: int = 1
    note: str = ""


# ------------------------------------------------------------------ formatting


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals and thousands separators; a dash for NaN."""
    if value is None or not np.isfinite(value):
        return DASH
    text = f"{value:,.{digits}f}"
    return text[1:] if text.startswith("-") and float(text[1:].replace(",", "")) == 0 else text


def fmt_ci(value: float, low: float, high: float, digits: int = 3) -> str:
    """``value [low, high]`` (the interval omitted when undefined)."""
    if not np.isfinite(value):
        return DASH
    if not (np.isfinite(low) and np.isfinite(high)):
        return fmt(value, digits)
    return f"{fmt(value, digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


def fmt_pct_ci(value: float, low: float, high: float) -> str:
    """A fraction as a percentage with its interval: ``93.0 % [90.9, 94.9]``."""
    if not np.isfinite(value):
        return DASH
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{100 * value:.1f} %"
    return f"{100 * value:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"


def fmt_value(value: Any) -> str:
    """A configuration value: scalars as text, lists/mappings as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested mapping -> sorted ``(dotted.key, value text)`` pairs, leaves only."""
    out: list[tuple[str, str]] = []
    for key in sorted(mapping, key=str):
        value = mapping[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += flatten(value, f"{name}.")
        else:
            out.append((name, fmt_value(value)))
    return out


# ---------------------------------------------------------------- statistics


class StatLookup:
    """Fast access to a long statistics table (``method, artery, statistic, ...``)."""

    def __init__(self, table: pd.DataFrame | None, keys: Sequence[str] = ("method", "artery")):
        self.keys = list(keys)
        if table is None or table.empty:
            self._t = pd.DataFrame(
                columns=[*self.keys, "statistic", "value", "ci_low", "ci_high", "n"]
            )
        else:
            self._t = table.set_index([*self.keys, "statistic"]).sort_index()

    def get(self, *key: str) -> tuple[float, float, float, int]:
        """(value, ci_low, ci_high, n) or NaNs with n 0."""
        try:
            row = self._t.loc[tuple(key)]
        except KeyError:
            return (np.nan, np.nan, np.nan, 0)
        if isinstance(row, pd.DataFrame):
            row = row.iloc[0]
        return (float(row["value"]), float(row["ci_low"]), float(row["ci_high"]), int(row["n"]))

    def ci(self, *key: str, digits: int = 3) -> str:
        v, lo, hi, _ = self.get(*key)
        return fmt_ci(v, lo, hi, digits)

    def pct(self, *key: str) -> str:
        v, lo, hi, _ = self.get(*key)
        return fmt_pct_ci(v, lo, hi)

    def n(self, *prefix: str) -> int:
        """Largest n of any statistic under the key prefix."""
        try:
            sub = self._t.loc[tuple(prefix)]
        except KeyError:
            return 0
        return int(sub["n"].max()) if len(sub) else 0


def schemes_in(agreement: pd.DataFrame | None) -> list[str]:
    """Scheme names in the order their kappa rows appear."""
    if agreement is None or agreement.empty:
        return []
    stats = agreement["statistic"]
    return [s[len(KAPPA_PREFIX) :] for s in pd.unique(stats[stats.str.startswith(KAPPA_PREFIX)])]


def agreement_tables(agreement: pd.DataFrame, methods: list[str]) -> dict[str, Table]:
    """The readable agreement tables: total, risk categories, per artery, log Bland-Altman."""
    look = StatLookup(agreement)
    out: dict[str, Table] = {}
    rows = []
    for m in methods:
        if look.n(m, TOTAL) == 0:
            continue
        bias = look.get(m, TOTAL, BA_BIAS)
        lo, hi = look.get(m, TOTAL, BA_LOA_LOW)[0], look.get(m, TOTAL, BA_LOA_HIGH)[0]
        rows.append(
            [
                m,
                str(look.n(m, TOTAL)),
                look.ci(m, TOTAL, ICC),
                look.ci(m, TOTAL, PEARSON),
                look.ci(m, TOTAL, SPEARMAN),
                fmt_ci(*bias[:3], digits=1),
                f"{fmt(lo, 1)} to {fmt(hi, 1)}",
            ]
        )
    if rows:
        out["total"] = Table(
            [
                "Method",
                "Scans",
                "ICC [95 % CI]",
                "Pearson r",
                "Spearman ρ",
                "Bias [95 % CI]",
                "Limits of agreement",
            ],
            rows,
        )
    schemes = schemes_in(agreement)
    rows = []
    for m in methods:
        for s in schemes:
            v = look.get(m, TOTAL, KAPPA_PREFIX + s)
            if v[3] == 0:
                continue
            rows.append(
                [
                    m,
                    s,
                    str(v[3]),
                    look.ci(m, TOTAL, KAPPA_PREFIX + s),
                    look.pct(m, TOTAL, ACCURACY_PREFIX + s),
                ]
            )
    if rows:
        out["categories"] = Table(
            ["Method", "Scheme", "Scans", "Weighted κ [95 % CI]", "Accuracy [95 % CI]"], rows, 2
        )
    rows = []
    for m in methods:
        for a in ARTERY_ORDER:
            if look.n(m, a) == 0:
                continue
            lo, hi = look.get(m, a, BA_LOA_LOW)[0], look.get(m, a, BA_LOA_HIGH)[0]
            rows.append(
                [
                    m,
                    ARTERY_TEXT.get(a, a),
                    str(look.n(m, a)),
                    look.ci(m, a, ICC),
                    fmt_ci(*look.get(m, a, BA_BIAS)[:3], digits=1),
                    f"{fmt(lo, 1)} to {fmt(hi, 1)}",
                ]
            )
    if any(r[1] != ARTERY_TEXT[TOTAL] for r in rows):
        out["arteries"] = Table(
            ["Method", "Artery", "Scans", "ICC [95 % CI]", "Bias [95 % CI]", "Limits of agreement"],
            rows,
            2,
        )
    if agreement["statistic"].eq(BA_BIAS + LOG_SUFFIX).any():
        rows = []
        for m in methods:
            v = look.get(m, TOTAL, BA_BIAS + LOG_SUFFIX)
            if v[3] == 0:
                continue
            lo = look.get(m, TOTAL, BA_LOA_LOW + LOG_SUFFIX)[0]
            hi = look.get(m, TOTAL, BA_LOA_HIGH + LOG_SUFFIX)[0]
            rows.append([m, str(v[3]), fmt_ci(*v[:3], digits=3), f"{fmt(lo)} to {fmt(hi)}"])
        if rows:
            out["log"] = Table(
                ["Method", "Scans", "Bias of ln(score+1) [95 % CI]", "Limits of agreement"], rows
            )
    return out


# ----------------------------------------------------------------- the cohort


def method_title(method: str, reference: str) -> str:
    """Display name of a source of scores; the reference is called the reference standard."""
    if method == reference:
        return (
            "Reference standard" if method == REFERENCE_METHOD else f"{method} (reference standard)"
        )
    return str(method)


def cohort_flow(
    scans: pd.DataFrame, scores: pd.DataFrame, counts: Mapping[str, Any] | None, reference: str
) -> dict[str, Any]:
    """Boxes of the cohort flow (value, label, aside), the exclusion table, scored counts.

    Main line: files found -> DICOM files -> series found -> usable series -> scored;
    files that are not DICOM and excluded series are shown beside the step they leave.
    """
    counts = {COUNT_ALIASES.get(k, k): v for k, v in (counts or {}).items()}
    asides = {
        step: "; ".join(
            f"{fmt_count(counts[key])} {text}" for key, text in keys.items() if counts.get(key)
        )
        for step, keys in ASIDE_TEXT.items()
    }
    for keys in ASIDE_TEXT.values():
        for key in keys:
            counts.pop(key, None)
    steps: list[tuple[str, str, str]] = []
    for key in ("files_found", "dicom_files"):
        if key in counts:
            steps.append((fmt_count(counts.pop(key)), COUNT_LABELS[key], asides.get(key, "")))
    n_found = counts.pop("series_found", None)
    for key, value in counts.items():
        steps.append((fmt_count(value), key.replace("_", " "), ""))
    excluded = None
    if not scans.empty:
        status = scans["status"] if "status" in scans else pd.Series(Status.OK, index=scans.index)
        is_ok = status == Status.OK
        n_series = n_found if n_found is not None else len(scans)
        steps.append((fmt_count(n_series), COUNT_LABELS["series_found"], asides["series_found"]))
        n_excl = int((~is_ok).sum())
        n_unscorable = int((status == Status.NOT_SCORABLE).sum())
        left_out = f"{n_excl - n_unscorable:,} excluded" if n_excl > n_unscorable else ""
        if n_unscorable:
            left_out = "; ".join(x for x in (left_out, f"{n_unscorable:,} not scorable") if x)
        steps.append(
            (
                fmt_count(int(is_ok.sum())),
                "Series usable for scoring",
                "; ".join(
                    [f"{left_out} (table below)" if n_excl else "none excluded"]
                    + usable_notes(scans[is_ok])
                ),
            )
        )
        if n_excl:
            reasons = (
                scans.loc[~is_ok, "reason"]
                if "reason" in scans
                else pd.Series("unknown", index=scans.index[~is_ok])
            )
            tally = reasons.fillna("unknown").astype(str).value_counts().sort_index()
            excluded = Table(
                ["Reason", "Meaning", "Series"],
                [[r, REASON_TEXT.get(r, ""), f"{int(c):,}"] for r, c in tally.items()],
                2,
            )
    scored = []
    total = scores[scores["artery"] == TOTAL] if not scores.empty else scores
    for method in pd.unique(total["method"]) if not total.empty else []:
        sub = total[total["method"] == method]
        scored.append([method_title(method, reference), f"{int(sub['agatston'].notna().sum()):,}"])
    if scored:
        n_ref = total.loc[total["method"] == reference, "agatston"].notna().sum()
        steps.append((fmt_count(int(n_ref)), "Series with a reference score", ""))
    return {
        "steps": steps,
        "excluded": excluded,
        "scored": Table(["Scores from", "Series scored"], scored) if scored else None,
        "statistics_only": scans.empty,
    }


def usable_notes(ok: pd.DataFrame) -> list[str]:
    """Counts of usable series kept with a note (:data:`USABLE_NOTES`), e.g.
    ``"5 without SeriesInstanceUID (grouped by folder)"``; notes are ``; ``-joined in
    ``reason_detail``."""
    if "reason_detail" not in ok or ok.empty:
        return []
    notes = ok["reason_detail"].dropna().astype(str).str.split("; ")
    out = []
    for prefix, text in USABLE_NOTES.items():
        n = int(notes.map(lambda parts, p=prefix: any(x.startswith(p) for x in parts)).sum())
        if n:
            out.append(f"{n:,} {text}")
    return out


def fmt_count(value: Any) -> str:
    """An integer count with thousands separators (other values as given)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return fmt_value(value)


def score_summary(scores: pd.DataFrame, reference: str) -> Table | None:
    """Per method: scans, scans with calcium, median and maximum total Agatston score."""
    if scores.empty:
        return None
    total = scores[(scores["artery"] == TOTAL) & scores["agatston"].notna()]
    rows = []
    for method in pd.unique(total["method"]):
        a = total.loc[total["method"] == method, "agatston"].to_numpy(dtype=float)
        name = method_title(method, reference)
        rows.append(
            [
                name,
                f"{a.size:,}",
                f"{int((a > 0).sum()):,} ({100 * np.mean(a > 0):.0f} %)",
                fmt(float(np.median(a)), 1),
                fmt(float(np.percentile(a, 75)), 1),
                fmt(float(a.max()), 1),
            ]
        )
    return Table(
        [
            "Scores from",
            "Scans",
            "Scans with calcium (> 0)",
            "Median",
            "75th percentile",
            "Maximum",
        ],
        rows,
    )


# ------------------------------------------------------------------ figures


def method_figures(
    scores: pd.DataFrame,
    agreement: pd.DataFrame,
    confusion: pd.DataFrame,
    methods: list[str],
    reference: str,
) -> list[dict[str, Any]]:
    """Per method: the scatter/Bland-Altman figure and the confusion heatmaps (data URIs)."""
    look = StatLookup(agreement)
    out = []
    total = scores[scores["artery"] == TOTAL] if not scores.empty else scores
    wide = (
        total.pivot(index="series_uid", columns="method", values="agatston")
        if not total.empty
        else pd.DataFrame()
    )
    for m in methods:
        item: dict[str, Any] = {"method": m, "agreement": None, "confusion": None}
        if reference in wide.columns and m in wide.columns:
            pair = wide[[reference, m]].dropna()
            if len(pair):
                ba = {
                    "bias": look.get(m, TOTAL, BA_BIAS)[0],
                    "low": look.get(m, TOTAL, BA_LOA_LOW)[0],
                    "high": look.get(m, TOTAL, BA_LOA_HIGH)[0],
                }
                ba_log = None
                if np.isfinite(look.get(m, TOTAL, BA_BIAS + LOG_SUFFIX)[0]):
                    ba_log = {
                        "bias": look.get(m, TOTAL, BA_BIAS + LOG_SUFFIX)[0],
                        "low": look.get(m, TOTAL, BA_LOA_LOW + LOG_SUFFIX)[0],
                        "high": look.get(m, TOTAL, BA_LOA_HIGH + LOG_SUFFIX)[0],
                    }
                item["agreement"] = plots.agreement_figure(
                    pair[reference].to_numpy(float), pair[m].to_numpy(float), m, ba, ba_log
                )
        sub = confusion[confusion["method"] == m] if not confusion.empty else confusion
        if not sub.empty:
            item["confusion"] = [
                confusion_heatmap(confusion, look, m, str(scheme))
                for scheme in pd.unique(sub["scheme"])
            ]
        if item["agreement"] or item["confusion"]:
            out.append(item)
    return out


def confusion_heatmap(
    confusion: pd.DataFrame, look: StatLookup, method: str, scheme: str
) -> dict[str, Any]:
    """One confusion matrix as an HTML heatmap: labels, and per cell count and colours.

    Colour is the share of the reference row (row = reference category), so a dark
    diagonal means agreement whatever the category sizes.
    """
    mat = matrix_from_table(confusion, method, scheme)
    counts = mat.to_numpy()
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    background, text = plots.heatmap_colors(share)
    k = counts.shape[0]
    cells = [
        [
            {
                "count": f"{int(counts[i, j]):,}",
                "bg": background[i, j],
                "fg": text[i, j],
                "diag": i == j,
            }
            for j in range(k)
        ]
        for i in range(k)
    ]
    kappa = look.get(method, TOTAL, KAPPA_PREFIX + scheme)[0]
    acc = look.get(method, TOTAL, ACCURACY_PREFIX + scheme)[0]
    return {
        "scheme": scheme,
        "labels": [str(c) for c in mat.index],
        "cells": cells,
        "row_totals": [f"{int(r):,}" for r in rows[:, 0]],
        "subtitle": f"κ {fmt(kappa)} · accuracy {fmt(100 * acc, 1)} %",
    }


# --------------------------------------------------------- other sections


def subgroup_tables(subgroups: pd.DataFrame | None) -> list[dict[str, Any]]:
    """One table per grouping column: group x method with ICC, bias, kappa and accuracy."""
    if subgroups is None or subgroups.empty:
        return []
    look = StatLookup(subgroups, keys=("group_by", "group", "method", "artery"))
    schemes = schemes_in(subgroups)
    out = []
    for by in pd.unique(subgroups["group_by"]):
        sub = subgroups[subgroups["group_by"] == by]
        rows = []
        for (group, method, artery), _ in sub.groupby(["group", "method", "artery"], sort=False):
            key = (by, group, method, artery)
            row = [str(group), str(method)]
            if artery != TOTAL:
                row[1] += f" ({artery})"
            row += [str(look.n(*key)), look.ci(*key, ICC), fmt_ci(*look.get(*key, BA_BIAS)[:3], 1)]
            for s in schemes:
                k = look.get(*key, KAPPA_PREFIX + s)[0]
                a = look.get(*key, ACCURACY_PREFIX + s)[0]
                row.append(f"{fmt(k, 2)} / {fmt(100 * a, 0)} %" if np.isfinite(a) else DASH)
            rows.append(row)
        columns = ["Group", "Method", "Scans", "ICC [95 % CI]", "Bias [95 % CI]"]
        columns += [f"{s}: κ / acc." for s in schemes]
        out.append({"by": column_title(str(by)), "table": Table(columns, rows, 2)})
    return out


UNIT_SUFFIXES = {"_mm": "mm", "_mm2": "mm²", "_mm3": "mm³", "_hu": "HU"}


def column_title(column: str) -> str:
    """``slice_thickness_mm`` -> ``slice thickness (mm)``."""
    for suffix, unit in UNIT_SUFFIXES.items():
        if column.endswith(suffix):
            return f"{column[: -len(suffix)].replace('_', ' ')} ({unit})"
    return column.replace("_", " ")


LESION_COLUMNS = [
    ("lesion_sensitivity", "Sensitivity (lesions)", "pct"),
    ("lesion_ppv", "Positive predictive value", "pct"),
    ("lesion_f1", "F1", "num"),
    ("fp_lesions_per_scan", "False-positive lesions / scan", "num2"),
    ("fp_volume_per_scan_mm3", "False-positive volume / scan (mm³)", "num1"),
    ("volume_sensitivity", "Calcium volume found", "pct"),
]
RULEOUT_COLUMNS = [
    ("ruleout_sensitivity", "Sensitivity", "pct"),
    ("ruleout_specificity", "Specificity", "pct"),
    ("ruleout_npv", "NPV", "pct"),
    ("ruleout_ppv", "PPV", "pct"),
    ("ruleout_false_negatives", "False negatives", "int"),
    ("ruleout_negative_fraction", "Called CAC-negative", "pct"),
]


def _cell(look: StatLookup, key: tuple[str, ...], kind: str) -> str:
    v, lo, hi, _ = look.get(*key)
    if kind == "pct":
        return fmt_pct_ci(v, lo, hi)
    if kind == "int":
        return fmt(v, 0)
    digits = {"num": 3, "num2": 2, "num1": 1}[kind]
    return fmt_ci(v, lo, hi, digits)


def detection_tables(detection: pd.DataFrame | None) -> dict[str, Table]:
    """Lesion detection and rule-out tables (method x artery)."""
    if detection is None or detection.empty:
        return {}
    look = StatLookup(detection)
    out: dict[str, Table] = {}
    for name, spec in (("lesion", LESION_COLUMNS), ("ruleout", RULEOUT_COLUMNS)):
        first = spec[0][0]
        present = detection[detection["statistic"] == first]
        rows = []
        for _, r in present.iterrows():
            key = (r["method"], r["artery"])
            row = [str(r["method"]), ARTERY_TEXT.get(r["artery"], r["artery"]), f"{int(r['n']):,}"]
            row += [_cell(look, (*key, stat), kind) for stat, _, kind in spec]
            rows.append(row)
        if rows:
            out[name] = Table(["Method", "Artery", "Scans", *[c[1] for c in spec]], rows, 2)
    return out


def lesion_summary(lesions: pd.DataFrame | None) -> Table | None:
    """Lesions per method x artery: count, scans with lesions, median volume."""
    if lesions is None or lesions.empty:
        return None
    rows = []
    for (method, artery), grp in lesions.groupby(["method", "artery"], sort=True):
        vol = grp["volume_mm3"].to_numpy(dtype=float) if "volume_mm3" in grp else np.array([])
        rows.append(
            [
                str(method),
                str(artery),
                f"{len(grp):,}",
                f"{grp['series_uid'].nunique():,}",
                fmt(float(np.median(vol)), 1) if vol.size else DASH,
            ]
        )
    return Table(
        ["Method", "Artery / label", "Lesions", "Scans with lesions", "Median volume (mm³)"],
        rows,
        2,
    )


def reference_point_summary(points: pd.DataFrame | None) -> Table | None:
    """Annotation points per label: all, unmatched (no calcium), with conflicting labels,
    and (with ``point_status``) those on no scored series.

    ``points``: one row per annotation point (``reference_points.parquet``) with
    ``label``, ``series_uid`` and a boolean ``matched``; without ``matched`` every row is
    taken as unmatched. ``point_status`` (:class:`cacflow.reference.PointStatus`), when
    present, splits the unmatched: ``unmatched`` (no calcium) from ``unknown_series``,
    ``excluded_series`` and ``outside_volume`` (not on a scored series). ``conflict``
    (boolean), when present, counts points whose lesion also received another label.
    None when there are no points.
    """
    if points is None or points.empty:
        return None
    unmatched = ~points["matched"].fillna(False).astype(bool) if "matched" in points else True
    has_status = "point_status" in points
    off_series = (
        ~points["point_status"].isin(["matched", "snapped", "unmatched"]) if has_status else False
    )
    df = points.assign(
        _label=points["label"].fillna("unlabelled").astype(str) if "label" in points else "all",
        _unmatched=unmatched & ~off_series,
        _off=off_series,
        _conflict=points["conflict"].fillna(False).astype(bool) if "conflict" in points else False,
    )
    has_uid = "series_uid" in df

    def row(name: str, grp: pd.DataFrame) -> list[str]:
        bad = grp[grp["_unmatched"]]
        scans = f"{bad['series_uid'].nunique():,}" if has_uid else DASH
        out = [name, f"{len(grp):,}", f"{len(bad):,}", scans]
        if has_status:
            out.append(f"{int(grp['_off'].sum()):,}")
        return out + ([f"{int(grp['_conflict'].sum()):,}"] if "conflict" in points else [])

    rows = [row(str(name), grp) for name, grp in df.groupby("_label", sort=True)]
    rows.append(row("All", df))
    columns = ["Label", "Points", "Without calcium", "Scans with such points"]
    if has_status:
        columns.append("Not on a scored series (unknown, excluded, outside the volume)")
    if "conflict" in points:
        columns.append("On a lesion with conflicting labels")
    return Table(columns, rows)


# ----------------------------------------------------------------- the page


def statistics_meta(agreement: pd.DataFrame) -> dict[str, str]:
    """How the statistics were computed: the fixed definitions, updated with the table's
    ``attrs`` (which also name the bootstrap settings when the table was computed here)."""
    meta = agreement_metadata()
    meta.pop("bootstrap")  # its numbers are only known from the table itself
    meta.update({str(k): str(v) for k, v in agreement.attrs.items()})
    return meta


def _feedback_item(f: Mapping[str, Any]) -> dict[str, Any]:
    """A feedback figure with its caption numbers formatted."""
    return {
        **f,
        "predicted": fmt(f["predicted"], 1),
        "score": fmt(f.get("score"), 1),
        "reference": fmt(f.get("reference"), 1),
    }


def _unscorable_text(reason: str | None) -> str:
    """``not scorable: <why>`` of a not-scorable reason code."""
    text = REASON_TEXT.get(reason or "", reason or "reason not given")
    return text if text.startswith("not scorable") else f"not scorable: {text}"


def _qc_view(qc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The QC section with its caption numbers and reasons formatted; None without
    pictures."""
    if not qc or not (qc["pictures"] or qc.get("missing")):
        return None
    items = [
        {
            **f,
            "score": fmt(f.get("score"), 1),
            "reference": fmt(f.get("reference"), 1),
            "others": ", ".join(f"{s} {fmt(v, 1)}" for s, v in f.get("others", [])),
            "reason": _unscorable_text(f.get("reason")) if f["status"] != "ok" else None,
            "segs": f.get("segs", []),
        }
        for f in qc["pictures"]
    ]
    n_unscorable = sum(f["status"] != "ok" for f in items)
    n_out = sum(f["outlier"] for f in items)
    return {
        **qc,
        "pictures": items,
        "n_shown_outliers": n_out,
        "n_not_scorable": n_unscorable,
        "n_sampled": len(items) - n_out - n_unscorable,
        "seg_dir": qc.get("seg_dir"),
    }


def _template() -> jinja2.Template:
    """The page template (package data), HTML-escaping every value."""
    text = resources.files("cacflow.report").joinpath(TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(text)


def render_report(
    *,
    dataset: str,
    scans: pd.DataFrame,
    scores: pd.DataFrame,
    agreement: pd.DataFrame,
    confusion: pd.DataFrame,
    conventions: Mapping[str, Any],
    counts: Mapping[str, Any] | None = None,
    lesions: pd.DataFrame | None = None,
    detection: pd.DataFrame | None = None,
    subgroups: pd.DataFrame | None = None,
    reference_points: pd.DataFrame | None = None,
    reference: str = REFERENCE_METHOD,
    config_hash: str | None = None,
    date: str | None = None,
    feedback: Sequence[Mapping[str, Any]] | None = None,
    provenance_rows: Sequence[Sequence[str]] | None = None,
    qc: Mapping[str, Any] | None = None,
) -> str:
    """The report of one dataset as one self-contained HTML page (returned as text).

    ``conventions``: every convention used (nested mapping; each leaf is printed).
    ``counts``: cohort-flow counts before series were formed, keys as ``cacflow convert``
    writes them (``n_files``, ``n_dicom``, ``n_not_dicom``, ``n_unreadable``,
    ``n_non_image``, ``n_duplicates``, ``n_series``; see :data:`COUNT_ALIASES`); other keys
    are shown as given. ``config_hash`` defaults to ``conventions['config_hash']``, else the
    hash of ``conventions``; ``date`` (ISO, header only) to today. ``scans`` may be empty
    (statistics-only dataset). ``reference``: the name of the reference in ``scores``.
    ``feedback``: decision-feedback figures of the ``direct`` method
    (:func:`cacflow.report.feedback.feedback_examples`). ``provenance_rows``: (item, text)
    pairs saying what data the report shows and what each method was trained on.
    ``qc``: the scan QC pictures (:func:`cacflow.report.qc.qc_section`).
    """
    from cacflow import __version__

    methods = [m for m in pd.unique(scores["method"]) if m != reference] if not scores.empty else []
    sections = {
        "cohort": cohort_flow(scans, scores, counts, reference),
        "score_summary": score_summary(scores, reference),
        "conventions": Table(
            ["Setting", "Value"],
            [list(kv) for kv in flatten(conventions)]
            + [[f"statistics.{k}", str(v)] for k, v in sorted(statistics_meta(agreement).items())],
            2,
        ),
        "agreement": agreement_tables(agreement, methods) if not agreement.empty else {},
        "figures": method_figures(scores, agreement, confusion, methods, reference),
        "subgroups": subgroup_tables(subgroups),
        "detection": detection_tables(detection),
        "lesions": lesion_summary(lesions),
        "reference_points": reference_point_summary(reference_points),
        "provenance": Table(["", "What it is"], [list(r) for r in provenance_rows or []])
        if provenance_rows
        else None,
    }
    detection_meta = detection.attrs if detection is not None else {}
    toc = [("cohort", "Cohort"), ("scores", "Scores"), ("agreement", "Agreement")]
    if sections["figures"]:
        toc.append(("figures", "Plots per method"))
    if _qc_view(qc):
        toc.append(("qc", "Scan QC pictures"))
    if feedback:
        toc.append(("feedback", "Decision feedback"))
    if sections["subgroups"]:
        toc.append(("subgroups", "Subgroups"))
    if sections["detection"] or sections["lesions"]:
        toc.append(("detection", "Detection"))
    if sections["reference_points"] is not None:
        toc.append(("points", "Annotation points"))
    toc += [("conventions", "Conventions"), ("glossary", "Glossary")]
    return _template().render(
        dataset=dataset,
        version=__version__,
        config_hash=config_hash
        or conventions.get("config_hash")
        or _config_hash(dict(conventions)),
        date=date or _dt.date.today().isoformat(),
        reference=reference,
        methods=methods,
        toc=toc,
        glossary=glossary(conventions),
        match_radius_mm=detection_meta.get("match_radius_mm"),
        feedback=[_feedback_item(f) for f in feedback or []],
        qc=_qc_view(qc),
        **sections,
    )
