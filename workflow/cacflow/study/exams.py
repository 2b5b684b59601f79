"""One series per exam: a documented, deterministic selection rule.

An *exam* is one imaging visit of a participant (a DICOM study). It may hold several
reconstructions (soft and sharp kernels, several thicknesses); the study tables use one of
them, chosen by :func:`select_exams`:

1. only usable series (``status == ok``) are candidates; ``excluded`` and ``not_scorable``
   series are never chosen (an exam without a usable series is kept, with no series);
2. preferred kernel family first (``exam_select.prefer_kernel``, default ``soft``;
   families from :data:`KERNEL_FAMILIES`, per vendor convention);
3. then the slice thickness closest to ``exam_select.thickness_mm`` (default: the
   dataset's analysis thickness, 3 mm);
4. then most slices (a longer stack covers the heart more surely);
5. then the smallest ``series_uid`` (text order), so the choice never depends on row order.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cacflow.config import default_of
from cacflow.conventions import Status

DEFAULT_THICKNESS_MM: float = default_of("datasets", "*", "resample", "thickness_mm")
"""Target slice thickness (mm) of the selection when neither config nor resample gives one:
the schema's default analysis thickness (``datasets.<name>.resample.thickness_mm``)."""


class KernelFamily(enum.StrEnum):
    """Reconstruction-kernel families ranked by the selection rule."""

    SOFT = "soft"
    SHARP = "sharp"
    UNKNOWN = "unknown"


KERNEL_FAMILIES: dict[str, tuple[str, ...]] = {
    # Regular expressions matched (case-insensitive, whole value) against the first value
    # of ConvolutionKernel. Siemens: letter(s) + sharpness number (B30f, Br36d, I30f, Qr40):
    # <= 49 soft, >= 50 sharp. GE: STANDARD, SOFT, SMOOTH / BONE, LUNG, EDGE, DETAIL,
    # SHARP. Philips: A, B, C, CB, UB, XCA / D, E, L, YA, YB, YC. Canon/Toshiba: FC01-FC19
    # soft body / FC30+ (lung, bone). Unlisted kernels are `unknown` (ranked between).
    "soft": (
        r"[A-Z]{1,2}[rsv]?[0-4][0-9][a-z]?(\\.*)?",
        r"(STANDARD|STND|SOFT|SMOOTH|SOFT TISSUE|BODY)",
        r"(A|B|C|CB|UB|XCA)",
        r"FC(0[0-9]|1[0-9])",
    ),
    "sharp": (
        r"[A-Z]{1,2}[rsv]?[5-9][0-9][a-z]?(\\.*)?",
        r"(BONE|BONEPLUS|LUNG|EDGE|DETAIL|SHARP|CHEST)",
        r"(D|E|L|YA|YB|YC|YD)",
        r"FC([3-9][0-9])",
    ),
}


@dataclass(frozen=True)
class SelectionRule:
    """Config ``datasets.<name>.exam_select``; see the module docstring for the order."""

    prefer_kernel: KernelFamily = KernelFamily.SOFT
    thickness_mm: float = DEFAULT_THICKNESS_MM
    families: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(KERNEL_FAMILIES))

    @classmethod
    def from_config(
        cls, cfg: dict[str, Any] | None, analysis_thickness_mm: float | None = None
    ) -> SelectionRule:
        cfg = cfg or {}
        thickness = cfg.get("thickness_mm") or analysis_thickness_mm or DEFAULT_THICKNESS_MM
        families = dict(KERNEL_FAMILIES)
        for name, patterns in (cfg.get("kernel_families") or {}).items():
            families[KernelFamily(name).value] = tuple(patterns)
        return cls(KernelFamily(cfg.get("prefer_kernel", "soft")), float(thickness), families)

    def describe(self) -> str:
        """The rule in one sentence (printed in the report)."""
        return (
            f"usable series only; {self.prefer_kernel} kernel first; slice thickness closest "
            f"to {self.thickness_mm:g} mm; most slices; then smallest series_uid"
        )


def kernel_family(kernels: pd.Series, families: dict[str, tuple[str, ...]]) -> pd.Series:
    """Family (``soft``, ``sharp``, ``unknown``) of each ConvolutionKernel value.

    >>> kernel_family(pd.Series(["B30f", "I30f\\\\3", "B70f", "LUNG", "STANDARD", None]),
    ...               KERNEL_FAMILIES).tolist()
    ['soft', 'soft', 'sharp', 'sharp', 'soft', 'unknown']
    """
    text = kernels.fillna("").astype(str).str.strip()
    out = pd.Series(KernelFamily.UNKNOWN.value, index=kernels.index, dtype=object)
    codes = text.unique()
    lookup: dict[str, str] = {}
    compiled = {f: [re.compile(p, re.IGNORECASE) for p in ps] for f, ps in families.items()}
    for code in codes:
        lookup[code] = KernelFamily.UNKNOWN.value
        for fam, patterns in compiled.items():
            if any(p.fullmatch(code) for p in patterns):
                lookup[code] = fam
                break
    out[:] = text.map(lookup).to_numpy()
    return out


EXAM_COLUMNS = (
    "patient_id",
    "exam_id",
    "series_uid",
    "n_candidates",
    "n_usable",
    "kernel_family",
    "slice_thickness_mm",
    "why",
)


def select_exams(series: pd.DataFrame, rule: SelectionRule) -> pd.DataFrame:
    """One row per exam with the chosen series (:data:`EXAM_COLUMNS`).

    ``series``: one row per series with ``series_uid, patient_id, exam_id, status`` and,
    where known, ``kernel, slice_thickness_mm`` (mm), ``n_slices``. ``n_candidates`` counts
    every series of the exam, ``n_usable`` the ``ok`` ones; ``why`` states the chosen
    series' kernel family, thickness and slice count, or ``no usable series``.
    """
    df = series.copy()
    for col in ("kernel", "slice_thickness_mm", "n_slices"):
        if col not in df.columns:
            df[col] = np.nan
    df["kernel_family"] = kernel_family(df["kernel"], rule.families)
    prefer = rule.prefer_kernel.value
    rank = {prefer: 0, KernelFamily.UNKNOWN.value: 1}
    df["_kernel_rank"] = df["kernel_family"].map(rank).fillna(2)
    thick = pd.to_numeric(df["slice_thickness_mm"], errors="coerce")
    df["_dthick"] = (thick - rule.thickness_mm).abs().fillna(np.inf)
    df["_slices"] = -pd.to_numeric(df["n_slices"], errors="coerce").fillna(0)
    df["_usable"] = df["status"].eq(Status.OK)
    keys = ["patient_id", "exam_id"]
    counts = df.groupby(keys, sort=False).agg(
        n_candidates=("series_uid", "size"), n_usable=("_usable", "sum")
    )
    usable = df[df["_usable"]].sort_values(
        [*keys, "_kernel_rank", "_dthick", "_slices", "series_uid"], kind="stable"
    )
    chosen = usable.drop_duplicates(keys, keep="first").set_index(keys)
    out = counts.join(
        chosen[["series_uid", "kernel_family", "slice_thickness_mm", "n_slices"]], how="left"
    ).reset_index()
    out["n_usable"] = out["n_usable"].astype("int64")
    out["why"] = _why(out)
    out = out.sort_values(keys, kind="stable").reset_index(drop=True)
    return out[list(EXAM_COLUMNS)]


def _why(out: pd.DataFrame) -> pd.Series:
    thick = out["slice_thickness_mm"].map(lambda t: "?" if pd.isna(t) else f"{t:g}")
    slices = out["n_slices"].map(lambda n: "?" if pd.isna(n) else str(int(n)))
    text = (
        out["kernel_family"].astype(str)
        + " kernel, "
        + thick
        + " mm, "
        + slices
        + " slices; "
        + out["n_usable"].astype(str)
        + " of "
        + out["n_candidates"].astype(str)
        + " series usable"
    )
    return text.where(out["series_uid"].notna(), "no usable series")
