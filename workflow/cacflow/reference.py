"""The reference standard: point annotations -> label masks; score tables given as files.

A reference lesion is the connected component (``reference_connectivity``, default 3D
26-connected) of calcium voxels (HU >= ``threshold_hu``) that contains an annotated point
(world mm, LPS). A point on a voxel below threshold snaps to the nearest calcium voxel
centre within ``snap_radius_mm`` (Euclidean, mm, patient frame); beyond it the point is
reported unmatched with its distance to the nearest calcium voxel. Labels are matched
case-insensitively to :class:`cacflow.conventions.Label` names; any other label (e.g.
``aorta``) is kept as ``OTHER`` (non-coronary).

Conflicts: a component receiving points of different labels is flagged on every one of
its points and resolved by ``conflict_rule``:

- ``majority`` (default): the whole component takes the label of most of its points;
  a tie goes to the label listed first in :data:`LABEL_PRIORITY` (lowest Label value:
  LAD, LCX, RCA, LM, AV, MV, TAC, OTHER).
- ``nearest``: every voxel of the component takes the label of the nearest of the
  component's points (Euclidean mm from the annotated positions); equal distances go to
  the label first in :data:`LABEL_PRIORITY`. The parts may be scored as several lesions.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cacflow.calcium import label_components
from cacflow.conventions import ARTERIES, TOTAL, ConflictRule, Label, ScoringConventions, Status
from cacflow.tables import SCORES_COLUMNS
from cacflow.volume import Geometry, Volume

LABEL_PRIORITY: tuple[Label, ...] = tuple(sorted(Label, key=int))
"""Tie-break order of conflicting labels: the first listed wins."""

ANNOTATION_COLUMNS = ("series_uid", "x", "y", "z", "label")
SCORE_TABLE_REQUIRED = ("series_uid", "agatston")
SCORE_TABLE_OPTIONAL = ("LAD", "LCX", "RCA", "volume_mm3", "mass_mg", "patient_id")
LONG_SCORE_COLUMNS = tuple(c for c in SCORES_COLUMNS if c != "method")
REPORT_COLUMNS = (
    "x",
    "y",
    "z",
    "label",
    "matched",
    "snapped_distance_mm",
    "nearest_calcium_mm",
    "component",
    "component_voxels",
    "conflict",
    "resolved_label",
)
"""Per-point report of :func:`reference_labels` (after any columns the points carried)."""

_INITIAL_SEARCH_MM = 4.0  # first half-width of the nearest-calcium search box; doubles
_INITIAL_COMPONENT_MM = 16.0  # first half-width of the box a component is labelled in; doubles
_DIST_ATOL_MM = 1e-6  # float residue when comparing a distance with the snap radius
_STRING_COLUMNS = ("series_uid", "patient_id", "label")


def label_of(name: str) -> Label:
    """The Label of an annotation label string (case-insensitive); unknown -> OTHER."""
    key = str(name).strip().upper()
    return Label[key] if key in Label.__members__ else Label.OTHER


# --- reference masks ---------------------------------------------------------------------


def reference_labels(
    vol: Volume, points: pd.DataFrame, conv: ScoringConventions
) -> tuple[np.ndarray, pd.DataFrame]:
    """Reference label mask of one series from its annotation points.

    ``vol``: HU image (z, y, x). ``points``: columns ``x, y, z`` (LPS mm) and ``label``.
    Returns the uint8 mask (Label values, 0 background, same shape as ``vol.array``) and a
    per-point report: the points' own columns, then ``matched``, ``snapped_distance_mm``
    (0 when the point lies in a calcium voxel; NaN when unmatched), ``nearest_calcium_mm``
    (NaN when the image holds no calcium), ``component`` (1, 2, ... numbering this
    series' components in the order of the points; 0 when unmatched),
    ``component_voxels``, ``conflict`` and ``resolved_label`` (the label its voxel got;
    None when unmatched).

    Components are labelled in a box around each point that grows until the component
    no longer touches a cut face of the box, so only the neighbourhood of the points is
    read (the result equals labelling the whole image).
    """
    hu, geom = vol.array, vol.geometry
    rule = ConflictRule(conv.conflict_rule)
    mask = np.zeros(hu.shape, dtype=np.uint8)
    report = points.reset_index(drop=True).copy()
    if not len(points):
        for c in REPORT_COLUMNS:
            if c not in report.columns:
                report[c] = pd.Series(dtype=object)
        return mask, report
    xyz = points[["x", "y", "z"]].to_numpy(dtype=float)
    hits = [_locate(hu, conv.threshold_hu, geom, p, conv.snap_radius_mm) for p in xyz]
    components: list[_Component] = []
    comp = np.zeros(len(points), dtype=np.int64)
    for i, (_, _, voxel) in enumerate(hits):
        if voxel is None:
            continue
        found = [k for k, c in enumerate(components, 1) if c.contains(voxel)]
        if not found:
            components.append(
                _component_at(hu, conv.threshold_hu, voxel, conv.reference_connectivity, geom)
            )
            found = [len(components)]
        comp[i] = found[0]
    labels = np.array([label_of(v) for v in points["label"]], dtype=np.int64)
    conflict = np.zeros(len(points), dtype=bool)
    for k, c in enumerate(components, 1):
        members = np.flatnonzero(comp == k)
        values = labels[members]
        conflict[members] = np.unique(values).size > 1
        if conflict[members[0]] and rule is ConflictRule.NEAREST:
            _split_nearest(mask, c, geom, xyz[members], values)
        else:
            mask[c.box][c.voxels] = _majority(values)
    sizes = np.array([0] + [c.size for c in components])
    report["matched"] = comp > 0
    report["snapped_distance_mm"] = [
        h[1] if c > 0 else np.nan for h, c in zip(hits, comp, strict=True)
    ]
    report["nearest_calcium_mm"] = [h[0] for h in hits]
    report["component"] = comp
    report["component_voxels"] = sizes[comp]
    report["conflict"] = conflict
    report["resolved_label"] = [
        Label(int(mask[h[2]])).name if c > 0 else None for h, c in zip(hits, comp, strict=True)
    ]
    return mask, report


@dataclass(frozen=True)
class _Component:
    """One connected component: a box (slices, z y x) and its voxels inside the box."""

    box: tuple[slice, slice, slice]
    voxels: np.ndarray

    @property
    def size(self) -> int:
        return int(np.count_nonzero(self.voxels))

    def contains(self, zyx: tuple[int, int, int]) -> bool:
        local = [v - s.start for v, s in zip(zyx, self.box, strict=True)]
        inside = all(0 <= v < n for v, n in zip(local, self.voxels.shape, strict=True))
        return inside and bool(self.voxels[tuple(local)])


def _component_at(
    hu: np.ndarray, threshold: float, seed: tuple[int, int, int], connectivity: int, g: Geometry
) -> _Component:
    """The component of calcium voxels holding voxel ``seed`` (z, y, x).

    Labels a box around the seed; while the seed's component touches a face where the box
    cuts the image, the box doubles. A component that touches no cut face is complete.
    """
    shape = np.asarray(hu.shape)
    centre = np.asarray(seed)
    half = np.ceil(_INITIAL_COMPONENT_MM / np.asarray(g.spacing, dtype=float)[::-1]).astype(int)
    while True:
        lo = np.maximum(centre - half, 0)
        hi = np.minimum(centre + half + 1, shape)
        box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        cc = label_components(hu[box] >= threshold, connectivity)
        voxels = cc == cc[tuple(centre - lo)]
        cut = [
            (lo[a] > 0 and voxels.take(0, axis=a).any())
            or (hi[a] < shape[a] and voxels.take(-1, axis=a).any())
            for a in range(3)
        ]
        if not any(cut):
            return _Component(box, voxels)
        half *= 2


def _majority(values: np.ndarray) -> int:
    """The most frequent Label value; ties -> the first in LABEL_PRIORITY."""
    counts = {int(v): int(np.sum(values == v)) for v in np.unique(values)}
    best = max(counts.values())
    return next(int(lab) for lab in LABEL_PRIORITY if counts.get(int(lab), 0) == best)


def _split_nearest(
    mask: np.ndarray, comp: _Component, geom: Geometry, xyz: np.ndarray, labels: np.ndarray
) -> None:
    """Label each voxel of ``comp`` with the label of the nearest point (mm)."""
    rank = {int(lab): i for i, lab in enumerate(LABEL_PRIORITY)}
    order = np.argsort([rank[int(v)] for v in labels], kind="stable")
    xyz, labels = xyz[order], labels[order]
    local = np.nonzero(comp.voxels)
    zyx = [v + s.start for v, s in zip(local, comp.box, strict=True)]
    world = geom.index_to_world(np.column_stack(zyx[::-1]))
    d2 = ((world[:, None, :] - xyz[None, :, :]) ** 2).sum(axis=2)
    mask[tuple(zyx)] = labels[np.argmin(d2, axis=1)].astype(np.uint8)


def _locate(
    hu: np.ndarray, threshold: float, geom: Geometry, point: np.ndarray, snap_radius_mm: float
) -> tuple[float, float, tuple[int, int, int] | None]:
    """(nearest calcium distance, snapped distance, voxel (z, y, x) or None) of a point.

    A point whose own voxel (nearest voxel centre) is calcium has distance 0 and that
    voxel; a point with a non-finite coordinate is unmatched with NaN distances.
    Otherwise the nearest calcium voxel centre is found by an exact search in boxes that
    double in size; it is the point's voxel when within ``snap_radius_mm``.
    """
    if not np.all(np.isfinite(point)):
        return np.nan, np.nan, None
    ijk = np.rint(geom.world_to_index(point)).astype(int)  # (x, y, z)
    zyx = (int(ijk[2]), int(ijk[1]), int(ijk[0]))
    if all(0 <= v < n for v, n in zip(zyx, hu.shape, strict=True)) and hu[zyx] >= threshold:
        return 0.0, 0.0, zyx
    dist, voxel = _nearest_calcium(hu, threshold, geom, point)
    if voxel is not None and dist <= snap_radius_mm + _DIST_ATOL_MM:
        return dist, dist, voxel
    return dist, np.nan, None


def _nearest_calcium(
    hu: np.ndarray, threshold: float, geom: Geometry, point: np.ndarray
) -> tuple[float, tuple[int, int, int] | None]:
    """Distance (mm) from ``point`` to the nearest calcium voxel centre, and that voxel.

    Exact: a box of half-width r mm holds every voxel within r of the point, so a minimum
    <= r found in it is global. Ties go to the first voxel in (z, y, x) order.
    """
    centre = geom.world_to_index(point)[::-1]  # (z, y, x) continuous
    spacing = np.asarray(geom.spacing, dtype=float)[::-1]
    shape = np.asarray(hu.shape)
    r = _INITIAL_SEARCH_MM
    while True:
        half = np.ceil(r / spacing) + 1
        lo = np.clip(np.floor(centre - half), 0, shape - 1).astype(int)
        hi = np.clip(np.ceil(centre + half), 0, shape - 1).astype(int)
        whole = bool(np.all(lo == 0) and np.all(hi == shape - 1))
        sub = hu[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1]
        found = np.argwhere(sub >= threshold)
        if found.size:
            zyx = found + lo
            d = np.linalg.norm(geom.index_to_world(zyx[:, ::-1]) - point, axis=1)
            k = int(np.argmin(d))
            if d[k] <= r or whole:
                return float(d[k]), (int(zyx[k, 0]), int(zyx[k, 1]), int(zyx[k, 2]))
        if whole:
            return float("nan"), None
        r *= 2.0


# --- input tables ------------------------------------------------------------------------


def _read(path: str | os.PathLike) -> pd.DataFrame:
    """Read CSV or Parquet; identifiers and labels stay strings (leading zeros kept)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            df = pd.read_parquet(path)
        elif suffix in {".csv", ".txt"}:
            df = pd.read_csv(path, dtype={c: str for c in _STRING_COLUMNS})
        elif suffix == ".tsv":
            df = pd.read_csv(path, sep="\t", dtype={c: str for c in _STRING_COLUMNS})
        else:
            raise ValueError(f"unknown table format '{suffix}' (use .csv or .parquet)")
    except Exception as exc:  # any parser error becomes one line naming the file
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: cannot read table: {msg}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _require(df: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")


def _numeric(df: pd.DataFrame, path: Path, col: str, *, allow_missing: bool) -> pd.Series:
    """Column ``col`` as float; a one-line ValueError names the first bad row (1-based)."""
    raw = df[col]
    num = pd.to_numeric(raw, errors="coerce").astype(float)
    blank = raw.isna() | raw.astype(str).str.strip().eq("")
    bad = num.isna() & ~blank
    if allow_missing is False:
        bad |= blank
    bad |= np.isinf(num)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}: column {col} row {i + 1}: not a number ({raw.iloc[i]!r})")
    return num


def _strings(df: pd.DataFrame, path: Path, col: str) -> pd.Series:
    s = df[col].astype(object).where(df[col].notna(), None)
    s = s.map(lambda v: None if v is None else str(v).strip())
    empty = s.isna() | s.eq("")
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise ValueError(f"{path}: column {col} row {i + 1}: empty")
    return s


def read_annotations(path: str | os.PathLike) -> pd.DataFrame:
    """Point annotations (CONTRACT §2): ``series_uid, x, y, z, label`` (+ ``patient_id``).

    CSV or Parquet; x, y, z in mm, LPS. Every column is kept; labels are stripped of
    surrounding blanks. Raises a one-line ValueError naming the file and the problem.
    """
    path = Path(path)
    df = _read(path)
    _require(df, path, ANNOTATION_COLUMNS)
    out = df.copy()
    for c in ("series_uid", "label"):
        out[c] = _strings(df, path, c)
    for c in ("x", "y", "z"):
        out[c] = _numeric(df, path, c, allow_missing=False)
    return out.reset_index(drop=True)


def read_score_table(path: str | os.PathLike) -> pd.DataFrame:
    """A reference_scores / external_scores table in the long scores format.

    Input: ``series_uid, agatston`` and optionally ``LAD, LCX, RCA`` (per-artery
    Agatston), ``volume_mm3``, ``mass_mg``, ``patient_id``; one row per series. Output:
    columns ``series_uid, patient_id, artery, agatston, volume_mm3, mass_mg, n_lesions``;
    a ``total`` row per series (``agatston`` from the table's ``agatston``), plus one row
    per artery column the table has. Unknown values (an absent column, an empty cell,
    per-artery volume and mass, ``n_lesions``) are NaN; ``patient_id`` is None when absent.
    Rows come per series in table order, arteries in the order LAD, LCX, RCA, total.
    """
    path = Path(path)
    df = _read(path)
    _require(df, path, SCORE_TABLE_REQUIRED)
    uid = _strings(df, path, "series_uid")
    dup = uid[uid.duplicated()]
    if len(dup):
        raise ValueError(f"{path}: series_uid {dup.iloc[0]} appears more than once")
    values = {}
    for c in ("agatston", *ARTERIES, "volume_mm3", "mass_mg"):
        if c in df.columns:
            values[c] = _numeric(df, path, c, allow_missing=True)
            if (values[c] < 0).any():
                raise ValueError(f"{path}: column {c} holds negative values")
    if "patient_id" in df.columns:
        pid = df["patient_id"].astype(object).where(df["patient_id"].notna(), None)
    else:
        pid = pd.Series([None] * len(df), dtype=object)
    nan = np.full(len(df), np.nan)

    def column(name: str) -> np.ndarray:
        return values[name].to_numpy() if name in values else nan

    parts = []
    for artery in (*ARTERIES, TOTAL):
        src = "agatston" if artery == TOTAL else artery
        if src not in values:
            continue
        is_total = artery == TOTAL
        part = pd.DataFrame(
            {
                "series_uid": uid.to_numpy(),
                "patient_id": pid.to_numpy(),
                "artery": artery,
                "agatston": column(src),
                "volume_mm3": column("volume_mm3") if is_total else nan,
                "mass_mg": column("mass_mg") if is_total else nan,
                "n_lesions": nan,
                "_row": np.arange(len(df)),
                "_art": len(parts),
            }
        )
        parts.append(part)
    out = pd.concat(parts, ignore_index=True).sort_values(["_row", "_art"], kind="stable")
    return out.drop(columns=["_row", "_art"]).reset_index(drop=True)[list(LONG_SCORE_COLUMNS)]


# --- annotation keys -> series -----------------------------------------------------------


class PointStatus(enum.StrEnum):
    """What became of an annotation row (``reference_points.parquet`` column
    ``point_status``); every row of the annotations table gets one."""

    MATCHED = "matched"  # on a calcium voxel
    SNAPPED = "snapped"  # moved to calcium within snap_radius_mm
    UNMATCHED = "unmatched"  # no calcium within snap_radius_mm
    UNKNOWN_SERIES = "unknown_series"  # its series_uid names no series of the dataset
    EXCLUDED_SERIES = "excluded_series"  # the series is excluded (scans.parquet says why)
    OUTSIDE_VOLUME = "outside_volume"  # a SeriesInstanceUID with several series, none holds it


ANNOTATION_ROW = "annotation_row"
"""0-based row of the point in the annotations table (what ties report rows to input rows)."""
ANNOTATED_SERIES = "annotation_series_uid"
"""The ``series_uid`` as the annotations table gave it (a SeriesInstanceUID or a key)."""
N_CANDIDATES = "n_candidate_series"
"""Series of the annotated SeriesInstanceUID whose volume holds the point."""
CONTAINS_TOLERANCE = 0.5
"""A point is inside a series' volume when it lies within the voxel grid grown by this
fraction of a voxel (in-plane) or of the slice distance (along the normal) on each side."""
_BOX_COLUMNS = (
    "series_uid",
    "dicom_series_uid",
    "status",
    "orientation",
    "positions",
    "pixel_spacing_mm",
    "pixel_spacing_col_mm",
    "rows",
    "columns",
)


def contains(box: Mapping[str, Any], xyz: np.ndarray) -> np.ndarray:
    """Which points ``xyz`` (n, 3; LPS mm) lie in the volume of manifest row ``box``
    (orientation, per-image positions, pixel spacing, matrix), within
    :data:`CONTAINS_TOLERANCE` voxel."""
    o = np.asarray(box["orientation"], dtype=float)
    pos = np.asarray(box["positions"], dtype=float).reshape(-1, 3)
    if o.size != 6 or not len(pos) or np.isnan(pos).any():
        return np.zeros(len(xyz), dtype=bool)
    r, c = o[:3], o[3:]
    n = np.cross(r, c)
    proj = np.sort(pos @ n)
    step = float(np.median(np.diff(proj))) if len(proj) > 1 else 0.0
    rel = xyz - pos[np.argmin(pos @ n)]
    u = rel @ r / float(box["pixel_spacing_col_mm"])
    v = rel @ c / float(box["pixel_spacing_mm"])
    w = xyz @ n
    t = CONTAINS_TOLERANCE
    return (
        (u >= -t)
        & (u <= int(box["columns"]) - 1 + t)
        & (v >= -t)
        & (v <= int(box["rows"]) - 1 + t)
        & (w >= proj[0] - t * step)
        & (w <= proj[-1] + t * step)
    )


def read_series_boxes(manifest: str | os.PathLike, keys: set[str]) -> pd.DataFrame:
    """Manifest rows (geometry columns) of the usable series whose SeriesInstanceUID is one
    of ``keys`` but is split into several series (``<uid>_<k>``)."""
    import pyarrow.parquet as pq

    ids = pq.read_table(manifest, columns=["series_uid", "dicom_series_uid"]).to_pandas()
    split = ids[ids["dicom_series_uid"].isin(keys) & (ids["series_uid"] != ids["dicom_series_uid"])]
    if split.empty:
        return pd.DataFrame(columns=list(_BOX_COLUMNS))
    wanted = split["series_uid"].tolist()
    rows = pq.read_table(
        manifest, columns=list(_BOX_COLUMNS), filters=[("series_uid", "in", wanted)]
    ).to_pandas()
    return rows[rows["status"] == Status.OK].reset_index(drop=True)


def resolve_series(points: pd.DataFrame, boxes: pd.DataFrame) -> pd.DataFrame:
    """Annotation points with ``series_uid`` resolved to series keys.

    A point whose ``series_uid`` is the SeriesInstanceUID of several series (two
    reconstructions, a localizer sharing the UID: keys ``<uid>_<k>``) goes to the usable
    series in ``boxes`` (:func:`read_series_boxes`) whose volume holds it; when several
    hold it, it goes to each of them, flagged by :data:`N_CANDIDATES` > 1 (``ambiguous``);
    when none does, it keeps the UID (:data:`N_CANDIDATES` 0). Any other point keeps its
    key (:data:`N_CANDIDATES` 1). Adds :data:`ANNOTATED_SERIES`, :data:`N_CANDIDATES` and
    ``ambiguous``; the points' other columns (e.g. :data:`ANNOTATION_ROW`) are kept.
    """
    out = points.assign(**{ANNOTATED_SERIES: points["series_uid"], N_CANDIDATES: 1})
    if boxes.empty or out.empty:
        return out.assign(ambiguous=False)
    parts = [out[~out["series_uid"].isin(set(boxes["dicom_series_uid"]))]]
    for uid, members in boxes.groupby("dicom_series_uid", sort=True):
        pts = out[out["series_uid"] == uid]
        if pts.empty:
            continue
        xyz = pts[["x", "y", "z"]].to_numpy(dtype=float)
        inside = np.column_stack([contains(b, xyz) for b in members.to_dict("records")])
        counts = inside.sum(axis=1)
        parts.append(pts[counts == 0].assign(**{N_CANDIDATES: 0}))
        for k, key in enumerate(members["series_uid"]):
            hit = inside[:, k]
            parts.append(pts[hit].assign(series_uid=key, **{N_CANDIDATES: counts[hit]}))
    res = pd.concat(parts, ignore_index=True)
    if ANNOTATION_ROW in res:
        res = res.sort_values([ANNOTATION_ROW, "series_uid"], kind="stable")
    return res.reset_index(drop=True).assign(ambiguous=lambda d: d[N_CANDIDATES] > 1)


def match_status(report: pd.DataFrame) -> list[str]:
    """:class:`PointStatus` of each row of a :func:`reference_labels` report."""
    snapped = report["snapped_distance_mm"].fillna(0.0).astype(float) > 0.0
    return [
        (PointStatus.SNAPPED if s else PointStatus.MATCHED) if m else PointStatus.UNMATCHED
        for m, s in zip(report["matched"].astype(bool), snapped, strict=True)
    ]


def unscored_points(
    annotations: pd.DataFrame, points: pd.DataFrame, scans: pd.DataFrame
) -> pd.DataFrame:
    """Annotation rows (with :data:`ANNOTATION_ROW`) that no reference batch reported, each
    with its :class:`PointStatus`: ``excluded_series`` (the key names a series, or a
    SeriesInstanceUID, whose series are excluded), ``outside_volume`` (a split
    SeriesInstanceUID with usable series, none of which holds the point) or
    ``unknown_series``."""
    seen = set(points[ANNOTATION_ROW]) if ANNOTATION_ROW in points else set()
    rest = annotations[~annotations[ANNOTATION_ROW].isin(seen)]
    status_of = dict(zip(scans["series_uid"], scans["status"], strict=True))
    by_dicom: dict[str, set[str]] = {}
    if "dicom_series_uid" in scans:
        for uid, st in zip(scans["dicom_series_uid"], scans["status"], strict=True):
            if isinstance(uid, str):
                by_dicom.setdefault(uid, set()).add(st)

    def status(key: str) -> str:
        if key in status_of:
            ok = status_of[key] == Status.OK
            return PointStatus.OUTSIDE_VOLUME if ok else PointStatus.EXCLUDED_SERIES
        if key in by_dicom:
            ok = Status.OK in by_dicom[key]
            return PointStatus.OUTSIDE_VOLUME if ok else PointStatus.EXCLUDED_SERIES
        return PointStatus.UNKNOWN_SERIES

    return rest.assign(
        **{ANNOTATED_SERIES: rest["series_uid"]},
        matched=False,
        point_status=[str(status(k)) for k in rest["series_uid"]],
    )


POINTS_FILE = "points.parquet"
"""Per-batch point report of the reference step (one row per annotation point)."""


def reference_batch(
    images: Path,
    annotations: Path,
    out_dir: Path,
    scoring: dict[str, Any],
    manifest: Path | None = None,
) -> int:
    """Reference label masks for every volume of ``images`` from point annotations.

    Writes ``out_dir/<series_uid>.nii`` (uint8 labels) and ``out_dir/points.parquet``
    (one row per annotation point of these series: ``point_status``, snapped distance,
    conflicts, ``annotation_row``). With the dataset's ``manifest``, points keyed by a
    SeriesInstanceUID that holds several series are resolved to the series whose volume
    holds them (:func:`cacflow.reference.resolve_series`).
    """
    from cacflow.provenance import provenance, write_table
    from cacflow.score import write_labels
    from cacflow.volume import each_volume

    conv = ScoringConventions.from_config(scoring)
    points = read_annotations(annotations)
    points[ANNOTATION_ROW] = np.arange(len(points))
    boxes = (
        read_series_boxes(manifest, set(points["series_uid"]))
        if manifest is not None
        else pd.DataFrame()
    )
    points = resolve_series(points, boxes)
    by_series = dict(tuple(points.groupby("series_uid", sort=False)))
    out_dir.mkdir(parents=True, exist_ok=True)
    reports = []
    n = 0
    for uid, vol in each_volume(images, "reference"):
        pts = by_series.get(uid, points.iloc[0:0])
        mask, report = reference_labels(vol, pts, conv)
        write_labels(mask, vol, out_dir / f"{uid}.nii")
        if len(report):
            reports.append(report.assign(series_uid=uid, point_status=match_status(report)))
        n += 1
    table = pd.concat(reports, ignore_index=True) if reports else pd.DataFrame({"series_uid": []})
    write_table(table, out_dir / POINTS_FILE, provenance(conventions={"scoring": scoring}))
    return n
