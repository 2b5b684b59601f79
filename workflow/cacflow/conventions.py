"""Closed vocabularies and the scoring conventions, each one a named value.

Every number that is a convention lives here (or in config, which overrides the
defaults here); no module repeats a bare literal such as 130.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any

CALCIUM_THRESHOLD_HU = 130.0
"""Default calcium threshold in HU: a voxel is calcium when HU >= this value."""

AGATSTON_WEIGHT_EDGES_HU = (130.0, 200.0, 300.0, 400.0)
"""Lower edges (HU, closed on the left) of the Agatston density weight bands 1, 2, 3, 4."""

AGATSTON_REFERENCE_THICKNESS_MM = 3.0
"""Agatston is defined on 3 mm slices every 3 mm."""

MASS_CALIBRATION = 0.001
"""Default mass calibration factor c in mg per (HU * mm^3): mass = c * sum(HU) * voxel volume."""

SNAP_RADIUS_MM = 1.5
"""An annotation point on a voxel below threshold snaps to the nearest calcium voxel within this
radius (mm, Euclidean in patient coordinates), else it is reported as unmatched."""

METAL_MIN_HU = 2000.0
"""Peak HU from which a calcium-threshold component is metal, not calcium: stent struts,
sternal wires, surgical clips and pacemaker leads write 2,000 HU up to the 3,071 HU ceiling
of 12-bit images, while calcium stays below it (cortical bone about 1,000-1,900 HU at
120 kVp; the densest reference lesions of the held-out synthetic v2 set peak at 1,557 HU).
Readers leave stents out of the Agatston score; the methods leave the whole component out
(the blooming round the metal is no calcium)."""

PADDING_HU = -1024
"""HU written where the scanner marks padding (PixelPaddingValue) or outside the field of view."""


class Artery(enum.StrEnum):
    """Coronary arteries reported in score tables. LM is scored as part of LAD."""

    LAD = "LAD"
    LCX = "LCX"
    RCA = "RCA"


ARTERIES: tuple[str, ...] = tuple(a.value for a in Artery)
TOTAL = "total"
REGIONS: tuple[str, ...] = ("TAC", "AV", "MV")
"""Non-coronary regions with their own scores.parquet rows (thoracic aorta, aortic valve,
mitral valve / annulus), for the sources that provide them; never part of ``total``."""
REFERENCE_METHOD = "reference"


class Label(enum.IntEnum):
    """Voxel values of label masks (NIfTI, uint8) written for the reference and each method.

    0 is background. LM keeps its own value in masks and is mapped to LAD when scoring
    (config ``scoring.artery_groups``). AV/MV/TAC/OTHER are non-coronary: scored in the
    lesion table, never in coronary totals.
    """

    LAD = 1
    LCX = 2
    RCA = 3
    LM = 4
    AV = 5
    MV = 6
    TAC = 7
    OTHER = 8


class Status(enum.StrEnum):
    """Series status in ``scans.parquet`` (CONTRACT §5)."""

    OK = "ok"
    EXCLUDED = "excluded"
    NOT_SCORABLE = "not_scorable"


class Reason(enum.StrEnum):
    """Why a series is excluded (``scans.parquet`` column ``reason``); documented in README."""

    NOT_CT = "not_ct"
    LOCALIZER = "localizer"
    DERIVED = "derived"
    TOO_FEW_SLICES = "too_few_slices"
    GAP = "gap"
    INCONSISTENT_GEOMETRY = "inconsistent_geometry"
    GANTRY_TILT = "gantry_tilt"
    MISSING_PIXELS = "missing_pixels"
    UNREADABLE = "unreadable"
    DUPLICATE_POSITION = "duplicate_position"
    NOT_AXIAL = "not_axial"
    UNSUPPORTED_SYNTAX = "unsupported_syntax"
    # not_scorable (read correctly, but no score can be trusted; cacflow.scorable)
    THICK_SLICES = "thick_slices"
    HEART_NOT_FOUND = "heart_not_found"
    HEART_NOT_IN_FOV = "heart_not_in_fov"
    CONTRAST = "contrast"
    NOISE = "noise"


class Closure(enum.StrEnum):
    """Which side of a risk-category interval is closed."""

    LEFT = "left"  # [e_i, e_i+1)
    RIGHT = "right"  # (e_i, e_i+1]


class IncrementFactor(enum.StrEnum):
    """How Agatston is scaled for overlapping slices."""

    INCREMENT_OVER_3 = "increment/3"  # CONTRACT default
    INCREMENT_OVER_THICKNESS = "increment/thickness"  # de Vos et al. 2019


class ConflictRule(enum.StrEnum):
    """How a reference component hit by points of different labels is labelled."""

    MAJORITY = "majority"  # the label of most points; ties -> lowest Label value
    NEAREST = "nearest"  # each voxel takes the label of the nearest point (mm, LPS)


@dataclass(frozen=True)
class Scheme:
    """A risk stratification: category edges (Agatston units) and their closed side."""

    name: str
    edges: tuple[float, ...]
    closed: Closure

    def labels(self) -> list[str]:
        """Human-readable category labels, lowest first, e.g. ``['<1', '[1,10)', ...]``."""
        e = [_fmt(x) for x in self.edges]
        if self.closed is Closure.LEFT:
            inner = [f"[{a},{b})" for a, b in zip(e[:-1], e[1:], strict=True)]
            return [f"<{e[0]}", *inner, f">={e[-1]}"]
        inner = [f"({a},{b}]" for a, b in zip(e[:-1], e[1:], strict=True)]
        return [f"<={e[0]}", *inner, f">{e[-1]}"]


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


DEFAULT_SCHEMES: dict[str, Scheme] = {
    "A": Scheme("A", (1, 10, 100, 400), Closure.LEFT),
    "B": Scheme("B", (10, 100, 1000), Closure.RIGHT),
    "C": Scheme("C", (10, 100, 400, 1000), Closure.LEFT),
    "nlst4": Scheme("nlst4", (0, 100, 300), Closure.RIGHT),
}


@dataclass(frozen=True)
class MinLesion:
    """Minimum lesion size; a lesion must meet every bound that is > 0 to count."""

    voxels: int = 1
    area_mm2: float = 1.0  # largest in-slice cross-section area, mm^2 (Agatston: >= 1 mm^2)
    volume_mm3: float = 0.0


@dataclass(frozen=True)
class ScoringConventions:
    """All conventions of the scoring engine (config section ``scoring``).

    Units: HU for thresholds, mm / mm^2 / mm^3 for sizes, mg for mass.
    """

    threshold_hu: float = CALCIUM_THRESHOLD_HU
    connectivity: int = 26  # 3D: 6, 18, 26; 2D (in-slice): 4, 8
    min_lesion: MinLesion = field(default_factory=MinLesion)
    weight_edges_hu: tuple[float, ...] = AGATSTON_WEIGHT_EDGES_HU
    increment_factor: IncrementFactor = IncrementFactor.INCREMENT_OVER_3
    mass_calibration: float = MASS_CALIBRATION
    snap_radius_mm: float = SNAP_RADIUS_MM
    reference_connectivity: int = 26  # connectivity of reference components (points -> lesions)
    conflict_rule: ConflictRule = ConflictRule.MAJORITY
    artery_groups: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"LAD": ("LAD", "LM"), "LCX": ("LCX",), "RCA": ("RCA",)}
    )

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> ScoringConventions:
        """Build from the ``scoring`` config mapping (missing keys take the defaults)."""
        cfg = dict(cfg or {})
        kw: dict[str, Any] = {}
        for key in ("threshold_hu", "connectivity", "mass_calibration", "snap_radius_mm"):
            if key in cfg:
                kw[key] = cfg[key]
        if "reference_connectivity" in cfg:
            kw["reference_connectivity"] = int(cfg["reference_connectivity"])
        if "conflict_rule" in cfg:
            kw["conflict_rule"] = ConflictRule(cfg["conflict_rule"])
        if "min_lesion" in cfg:
            kw["min_lesion"] = MinLesion(**cfg["min_lesion"])
        if "weight_edges_hu" in cfg:
            kw["weight_edges_hu"] = tuple(float(x) for x in cfg["weight_edges_hu"])
        if "increment_factor" in cfg:
            kw["increment_factor"] = IncrementFactor(cfg["increment_factor"])
        if "artery_groups" in cfg:
            kw["artery_groups"] = {k: tuple(v) for k, v in cfg["artery_groups"].items()}
        return cls(**kw)

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d, sort_keys=True, default=str)


def schemes_from_config(cfg: dict[str, Any] | None) -> dict[str, Scheme]:
    """Risk schemes from the ``schemes`` config mapping (name -> {edges, closed})."""
    if not cfg:
        return dict(DEFAULT_SCHEMES)
    return {
        name: Scheme(name, tuple(float(e) for e in s["edges"]), Closure(s["closed"]))
        for name, s in cfg.items()
    }
