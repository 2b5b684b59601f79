"""The synthetic cohort: ``n_scans`` DICOM series, point annotations and the exact truth.

Layout of ``out_dir``:

- ``dicom/<patient>/<study>/<series>/<file>``: random-looking folder and file names (file
  names are not in slice order; InstanceNumber runs head to feet, feet to head or
  shuffled);
- ``annotations.csv``: ``series_uid, x, y, z, label, patient_id``, one point per annotated
  calcification, at the centre of its highest-HU voxel (mm, LPS); labels LM, LAD, LCX,
  RCA (every coronary lesion), and in some scans TAC, AV, MV for aortic, aortic-valve and
  mitral-annulus calcium (kept, not coronary);
- ``truth.csv``: ``series_uid, patient_id, artery, agatston, volume_mm3, mass_mg,
  n_lesions, slice_thickness_mm, increment_mm``, four rows (LAD, LCX, RCA, total) per
  scan, computed at native geometry (:mod:`cacflow.synth.truth`);
- ``truth_lesions.csv``: one row per calcification (coronary and aortic, annotated or
  not): ``series_uid, patient_id, label, artery`` (empty when not coronary),
  ``annotated, agatston, volume_mm3, mass_mg, peak_hu, n_voxels, x, y, z``;
- ``cohort.csv``: one row per scan: acquisition facts (no identifiers).

Two *domains* (``domain``): ``v1``, the default (the fast ellipse phantom of
:mod:`cacflow.synth.scene` / :mod:`cacflow.synth.phantom`: the demo and the unit tests;
its files never change), and ``v2``, made to look like real CT
(:mod:`cacflow.synth.scene_v2` / :mod:`cacflow.synth.phantom_v2`: 512 matrices, chest or
cardiac field of view, vendor kernels with correlated noise, gated or not), mixed by an
:class:`~cacflow.synth.scene_v2.AcquisitionMix`. A v2 ``cohort.csv`` has the extra
columns of :data:`COHORT_V2_COLUMNS`.

Deterministic: the same arguments give byte-identical files. Scan ``i`` draws from its own
stream ``numpy.random.default_rng([seed, i])``; the cohort-level choices (which scans
have no coronary calcium, which slice thickness each scan gets) from
``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from cacflow.synth import phantom_v2 as p2
from cacflow.synth import scene as sc
from cacflow.synth import scene_v2 as s2
from cacflow.synth.dicomwriter import SeriesHeader, fake_identity, uid, write_series
from cacflow.synth.phantom import PlacedCalcification, Proposal, Rendered, render
from cacflow.synth.truth import ARTERY_OF_LABEL, LesionTruth, artery_rows, lesion_truth

DEFAULT_THICKNESSES_MM = (1.0, 2.5, 3.0)
DEFAULT_MATRIX = 256
DEFAULT_ZERO_CAC_FRACTION = 0.2
MAX_ANNOTATED_TAC = 2
"""At most this many aortic calcifications of a scan get a TAC point."""
ANNOTATION_COLUMNS = ("series_uid", "x", "y", "z", "label", "patient_id")
TRUTH_COLUMNS = (
    "series_uid",
    "patient_id",
    "artery",
    "agatston",
    "volume_mm3",
    "mass_mg",
    "n_lesions",
    "slice_thickness_mm",
    "increment_mm",
)
LESION_COLUMNS = (
    "series_uid",
    "patient_id",
    "label",
    "artery",
    "annotated",
    "agatston",
    "volume_mm3",
    "mass_mg",
    "peak_hu",
    "n_voxels",
    "x",
    "y",
    "z",
)
COHORT_COLUMNS = (
    "series_uid",
    "patient_id",
    "manufacturer",
    "model",
    "kernel",
    "slice_thickness_mm",
    "increment_mm",
    "pixel_spacing_mm",
    "n_slices",
    "noise_sd_hu",
    "severity",
    "zero_cac",
    "instance_order",
    "dicom_dir",
)
COHORT_V2_COLUMNS = (
    *COHORT_COLUMNS[:-1],
    "domain",
    "fov",
    "fov_mm",
    "gated",
    "sharpness",
    "padding_hu",
    "blood_x",
    "blood_y",
    "blood_z",
    "dicom_dir",
)
"""v2 ``cohort.csv``: v1's columns, the field of view (``chest`` / ``cardiac``, diameter mm),
gating (1 = ECG-gated), kernel class, padding HU outside the reconstruction circle, and a
point in homogeneous blood (left-ventricle centre, mm LPS) for noise checks."""
DOMAINS = ("v1", "v2")
"""``v1``: the fast ellipse phantom (default); ``v2``: the look of real CT."""
_COORD_FMT = "{:.4f}"


@dataclass(frozen=True)
class CohortMix:
    """How calcified the scans of a cohort are: the chance of each coronary severity
    (``severity_p``, in the order of :data:`cacflow.synth.scene.SEVERITIES`: mild,
    moderate, severe, extensive; normalised here) and the chance that a scan has
    aortic-valve (``av_p``) or mitral-annulus (``mv_p``) calcification. The defaults are
    the generator's usual mix; a training cohort may ask for more severe scans and more
    valve calcium (the calcium a scoring method must learn to leave out)."""

    severity_p: tuple[float, ...] = sc.SEVERITY_P
    av_p: float = sc.VALVE_P["AV"]
    mv_p: float = sc.VALVE_P["MV"]

    def __post_init__(self) -> None:
        weights = tuple(float(w) for w in self.severity_p)
        if len(weights) != len(sc.SEVERITIES) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(
                f"severity_p needs {len(sc.SEVERITIES)} non-negative weights "
                f"({', '.join(sc.SEVERITIES)}) with a positive sum, got {self.severity_p}"
            )
        if abs(sum(weights) - 1.0) > 1e-9:
            weights = tuple(w / sum(weights) for w in weights)
        object.__setattr__(self, "severity_p", weights)
        for name in ("av_p", "mv_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def valve_p(self) -> dict[str, float]:
        return {"AV": self.av_p, "MV": self.mv_p}

    def key(self) -> tuple[object, ...]:
        """Part of the cohort key (and so of the UIDs); empty for the default mix, so the
        usual cohorts keep their UIDs."""
        return () if self == DEFAULT_MIX else ("mix", *self.severity_p, self.av_p, self.mv_p)


DEFAULT_MIX = CohortMix()


@dataclass
class ScanPlan:
    """Cohort-level choices for one scan."""

    index: int
    thickness_mm: float
    zero_cac: bool


@dataclass
class SynthScan:
    """One generated scan in memory: the scene, the image and its calcifications."""

    index: int
    patient_id: str
    series_uid: str
    scene: sc.Scene
    rendered: Rendered
    annotated: list[bool]
    truths: list[LesionTruth]
    anatomy_v2: s2.AnatomyV2 | None = None


def plan_cohort(
    n_scans: int, seed: int, thicknesses_mm: tuple[float, ...], zero_cac_fraction: float
) -> list[ScanPlan]:
    """Balanced slice thicknesses and ``round(n_scans * zero_cac_fraction)`` zero-CAC scans,
    assigned in a random order."""
    rng = np.random.default_rng(seed)
    thick = [float(thicknesses_mm[i % len(thicknesses_mm)]) for i in range(n_scans)]
    order = rng.permutation(n_scans)
    n_zero = int(round(n_scans * zero_cac_fraction))
    zero = set(rng.permutation(n_scans)[:n_zero].tolist())
    return [ScanPlan(i, thick[int(order[i])], i in zero) for i in range(n_scans)]


def wanted_calcifications(
    rng: np.random.Generator,
    anatomy: sc.Anatomy,
    z_top: float,
    zero_cac: bool,
    mix: CohortMix = DEFAULT_MIX,
) -> tuple[str, list[Proposal]]:
    """Severity and one proposal function per calcification to place: coronary lesions
    (none for a zero-CAC scan), aortic-wall (TAC) and valve (AV, MV) calcifications, drawn
    with the chances of ``mix``."""
    wanted: list[Proposal] = []
    severity = "none"
    if not zero_cac:
        names = list(sc.SEVERITIES)
        severity = names[int(rng.choice(len(names), p=mix.severity_p))]
        (lo, hi), along, across = sc.SEVERITIES[severity]
        n = int(rng.integers(lo, hi + 1))
        for i in rng.choice(len(sc.CORONARY_LABELS), size=n, p=sc.CORONARY_LABEL_P):
            wanted.append(
                partial(
                    sc.propose_coronary,
                    anatomy=anatomy,
                    label=sc.CORONARY_LABELS[int(i)],
                    along_mm=along,
                    across_mm=across,
                )
            )
    n_tac = int(rng.integers(sc.TAC_PER_SCAN[0], sc.TAC_PER_SCAN[1] + 1))
    wanted += [partial(sc.propose_aortic, anatomy=anatomy, z_top=z_top)] * n_tac
    for label, p in mix.valve_p.items():
        if rng.uniform() < p:
            lo, hi = sc.VALVE_PER_SCAN[label]
            n = int(rng.integers(lo, hi + 1))
            wanted += [partial(sc.propose_valve, anatomy=anatomy, label=label)] * n
    return severity, wanted


def annotate(rng: np.random.Generator, labels: list[str]) -> list[bool]:
    """Which calcifications get an annotation point: every coronary one; the non-coronary
    ones of a kind (TAC at most :data:`MAX_ANNOTATED_TAC`) in a share of scans."""
    annotated = [label in sc.CORONARY_LABELS for label in labels]
    for kind, p in sc.NONCORONARY_ANNOTATED_P.items():
        if rng.uniform() >= p:
            continue
        idx = [i for i, label in enumerate(labels) if label == kind]
        for i in idx[:MAX_ANNOTATED_TAC] if kind == "TAC" else idx:
            annotated[i] = True
    return annotated


def synth_scan(
    plan: ScanPlan,
    seed: int,
    matrix: int,
    cohort_key: tuple[object, ...],
    mix: CohortMix = DEFAULT_MIX,
) -> SynthScan:
    """Draw and render one scan (no files written)."""
    rng = np.random.default_rng([seed, plan.index])
    anatomy = sc.sample_anatomy(rng)
    acq = sc.sample_acquisition(rng, anatomy, plan.thickness_mm, matrix)
    z_top = acq.origin[2] + (acq.n_slices - 1) * acq.thickness_mm
    severity, wanted = wanted_calcifications(rng, anatomy, z_top, plan.zero_cac, mix)
    rendered = render(rng, anatomy, acq, wanted)
    annotated = annotate(rng, [c.label for c in rendered.calcifications])
    g = rendered.grid
    truths = [
        lesion_truth(c.index[:, 0], c.hu, g.pixel_mm * g.pixel_mm, g.increment_mm)
        for c in rendered.calcifications
    ]
    scene = sc.Scene(anatomy, acq, severity, tuple(c.calc for c in rendered.calcifications))
    return SynthScan(
        index=plan.index,
        patient_id=f"SYN{seed}-{plan.index + 1:04d}",
        series_uid=uid(*cohort_key, plan.index, "series"),
        scene=scene,
        rendered=rendered,
        annotated=annotated,
        truths=truths,
    )


def synth_scan_v2(
    plan: ScanPlan,
    seed: int,
    matrix: int,
    cohort_key: tuple[object, ...],
    mix: CohortMix = DEFAULT_MIX,
    acq_mix: s2.AcquisitionMix | None = None,
) -> SynthScan:
    """Draw and render one v2 scan (no files written)."""
    acq_mix = acq_mix or s2.AcquisitionMix()
    rng = np.random.default_rng([seed, plan.index, 2])
    anat = s2.sample_anatomy(rng)
    acq = s2.sample_acquisition(rng, anat, plan.thickness_mm, matrix, acq_mix)
    z_top = acq.origin[2] + (acq.n_slices - 1) * acq.thickness_mm
    z_top = min(z_top, anat.arch_z)  # the straight aortas end at the arch
    severity, wanted = wanted_calcifications(rng, anat.base, z_top, plan.zero_cac, mix)
    wanted += [partial(s2.propose_arch, anat=anat)] * int(rng.integers(0, 3))
    if rng.uniform() < acq_mix.stent_p:
        wanted.append(partial(s2.propose_stent, anatomy=anat.base))
    rendered = p2.render(rng, anat, acq, wanted)
    annotated = annotate(rng, [c.label for c in rendered.calcifications])
    g = rendered.grid
    truths = [
        lesion_truth(c.index[:, 0], c.hu, g.pixel_mm * g.pixel_mm, g.increment_mm)
        for c in rendered.calcifications
    ]
    scene = sc.Scene(anat.base, acq, severity, tuple(c.calc for c in rendered.calcifications))
    return SynthScan(
        index=plan.index,
        patient_id=f"SYN{seed}-{plan.index + 1:04d}",
        series_uid=uid(*cohort_key, plan.index, "series"),
        scene=scene,
        rendered=rendered,  # type: ignore[arg-type]
        annotated=annotated,
        truths=truths,
        anatomy_v2=anat,
    )


def _token(rng: np.random.Generator, n: int) -> str:
    return "".join(f"{int(v):x}" for v in rng.integers(16, size=n))


def _file_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct random-looking file names in one of three scanner styles."""
    style = int(rng.integers(3))
    numbers = rng.choice(10**7, size=n, replace=False)
    if style == 0:
        return [f"IM{int(v):07d}" for v in numbers]
    if style == 1:
        return [f"{int(v):08x}{_token(rng, 4)}.dcm" for v in numbers]
    return [f"{int(v):08d}" for v in numbers]


def _instance_numbers(rng: np.random.Generator, n: int, order: str) -> list[int]:
    """InstanceNumber of slice k (k along +z)."""
    if order == "ascending_z":
        return list(range(1, n + 1))
    if order == "descending_z":
        return list(range(n, 0, -1))
    return [int(v) + 1 for v in rng.permutation(n)]


def write_scan_dicom(scan: SynthScan, seed: int, dicom_root: Path, cohort_key: tuple) -> Path:
    """Write the scan's series under ``dicom_root``; returns its folder."""
    rng = np.random.default_rng([seed, scan.index, 1])
    acq = scan.scene.acquisition
    n = acq.n_slices
    folder = dicom_root / f"P{_token(rng, 8)}" / _token(rng, 6) / f"S{_token(rng, 6)}"
    names = _file_names(rng, n)
    study_date = f"{int(rng.integers(2012, 2025))}{int(rng.integers(1, 13)):02d}"
    study_date += f"{int(rng.integers(1, 29)):02d}"
    header = SeriesHeader(
        identity=fake_identity(seed, scan.index),
        patient_id=scan.patient_id,
        study_uid=uid(*cohort_key, scan.index, "study"),
        series_uid=scan.series_uid,
        frame_uid=uid(*cohort_key, scan.index, "frame"),
        study_date=study_date,
        study_time=f"{int(rng.integers(7, 19)):02d}{int(rng.integers(60)):02d}00",
        accession=f"A{int(rng.integers(10**7, 10**8))}",
        series_number=int(rng.integers(2, 9)),
        manufacturer=acq.manufacturer,
        model=acq.model,
        kernel=acq.kernel,
        fov_mm=acq.fov_mm,
        kvp=120,
        tube_current_ma=int(rng.integers(40, 300)),
        study_description="CT CARDIAC CALCIUM SCORE" if rng.uniform() < 0.5 else "CT CHEST",
        series_description=f"Axial {acq.thickness_mm:g}mm {acq.kernel}",
    )
    if isinstance(acq, s2.AcquisitionV2):
        header = _v2_header(header, acq)
    sops = [uid(*cohort_key, scan.index, "sop", k) for k in range(n)]
    instances = _instance_numbers(rng, n, acq.instance_order)
    paths = [folder / name for name in names]
    write_series(scan.rendered.hu, scan.rendered.grid, header, paths, instances, sops)
    return folder


def _v2_header(header: SeriesHeader, acq: s2.AcquisitionV2) -> SeriesHeader:
    """The v2 header facts: padding, protocol and descriptions as scanners write them."""
    from dataclasses import replace

    cardiac = acq.fov_kind == "cardiac" or acq.gated
    gating = "ECG-gated" if acq.gated else "non-gated"
    return replace(
        header,
        padding_hu=acq.padding_hu,
        protocol_name=("CaScoring " if cardiac else "Thorax ") + gating,
        body_part="HEART" if acq.fov_kind == "cardiac" else "CHEST",
        study_description="CT CARDIAC CALCIUM SCORE" if cardiac else "CT CHEST",
        series_description=f"{acq.thickness_mm:g}mm {acq.kernel} {acq.fov_kind} {gating}",
    )


def _lesion_row(scan: SynthScan, c: PlacedCalcification, t: LesionTruth, ann: bool) -> dict:
    x, y, z = scan.rendered.grid.world(c.peak_voxel())
    return {
        "series_uid": scan.series_uid,
        "patient_id": scan.patient_id,
        "label": c.label,
        "artery": ARTERY_OF_LABEL.get(c.label, ""),
        "annotated": int(ann),
        "agatston": t.agatston,
        "volume_mm3": t.volume_mm3,
        "mass_mg": t.mass_mg,
        "peak_hu": t.peak_hu,
        "n_voxels": t.n_voxels,
        "x": x,
        "y": y,
        "z": z,
    }


def _fmt(value: object, column: str) -> str:
    if column in ("x", "y", "z", "blood_x", "blood_y", "blood_z"):
        return _COORD_FMT.format(float(value))  # type: ignore[arg-type]
    if isinstance(value, float):
        return repr(value)  # shortest round-trip text: exact truth, still byte-stable
    return str(value)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    """Write rows with fixed number formats (byte-stable), atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_fmt(r[c], c) for c in columns])
    os.replace(tmp, path)


def generate_cohort(
    out_dir: Path,
    n_scans: int,
    seed: int,
    *,
    thicknesses_mm: tuple[float, ...] | None = None,
    matrix: int | None = None,
    zero_cac_fraction: float = DEFAULT_ZERO_CAC_FRACTION,
    mix: CohortMix = DEFAULT_MIX,
    domain: str = "v1",
    acquisition_mix: s2.AcquisitionMix | None = None,
) -> None:
    """Write a synthetic cohort of ``n_scans`` CT series to ``out_dir`` (see module doc).

    ``thicknesses_mm``: slice thicknesses (mm; increment = thickness) shared out evenly;
    ``matrix``: in-plane pixels (the field of view stays ~350 mm, so the pixel size
    follows); ``zero_cac_fraction``: share of scans without coronary calcium; ``mix``: how
    calcified the other scans are (:class:`CohortMix`). ``domain``: ``v1`` (default) or
    ``v2`` (see module doc), whose thicknesses default to
    :data:`cacflow.synth.scene_v2.DEFAULT_V2_THICKNESSES_MM`, matrix to 512 and
    acquisition mix to :class:`~cacflow.synth.scene_v2.AcquisitionMix` defaults. An
    existing ``out_dir/dicom`` folder is removed first.
    """
    out_dir = Path(out_dir)
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
    v2 = domain == "v2"
    if thicknesses_mm is None:
        thicknesses_mm = s2.DEFAULT_V2_THICKNESSES_MM if v2 else DEFAULT_THICKNESSES_MM
    if matrix is None:
        matrix = s2.DEFAULT_V2_MATRIX if v2 else DEFAULT_MATRIX
    if acquisition_mix is not None and not v2:
        raise ValueError("an acquisition mix applies to domain v2 only")
    acq_mix = acquisition_mix or s2.AcquisitionMix()
    if n_scans < 1:
        raise ValueError(f"n_scans must be >= 1, got {n_scans}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not thicknesses_mm or any(t <= 0 for t in thicknesses_mm):
        raise ValueError(f"thicknesses_mm must be positive, got {thicknesses_mm}")
    if matrix < 32:
        raise ValueError(f"matrix must be >= 32 pixels, got {matrix}")
    if not 0.0 <= zero_cac_fraction <= 1.0:
        raise ValueError(f"zero_cac_fraction must be in [0, 1], got {zero_cac_fraction}")
    cohort_key = (
        "cacflow-synth",
        seed,
        n_scans,
        matrix,
        *thicknesses_mm,
        zero_cac_fraction,
        *mix.key(),
        *(acq_mix.key() if v2 else ()),
    )
    dicom_root = out_dir / "dicom"
    if dicom_root.exists():
        shutil.rmtree(dicom_root)  # a previous cohort's files would mix with this one
    annotations, truth, lesions, cohort = [], [], [], []
    for plan in plan_cohort(n_scans, seed, tuple(thicknesses_mm), zero_cac_fraction):
        if v2:
            scan = synth_scan_v2(plan, seed, matrix, cohort_key, mix, acq_mix)
        else:
            scan = synth_scan(plan, seed, matrix, cohort_key, mix)
        folder = write_scan_dicom(scan, seed, dicom_root, cohort_key)
        g = scan.rendered.grid
        acq = scan.scene.acquisition
        pairs = list(zip(scan.rendered.calcifications, scan.truths, strict=True))
        for (c, t), ann in zip(pairs, scan.annotated, strict=True):
            row = _lesion_row(scan, c, t, ann)
            lesions.append(row)
            if ann:
                annotations.append({k: row[k] for k in ANNOTATION_COLUMNS})
        for r in artery_rows([(c.label, t) for c, t in pairs]):
            truth.append(
                {
                    "series_uid": scan.series_uid,
                    "patient_id": scan.patient_id,
                    **r,
                    "slice_thickness_mm": g.thickness_mm,
                    "increment_mm": g.increment_mm,
                }
            )
        extra = {}
        if isinstance(acq, s2.AcquisitionV2):
            extra = {
                "domain": "v2",
                "fov": acq.fov_kind,
                "fov_mm": acq.fov_mm,
                "gated": int(acq.gated),
                "sharpness": acq.sharpness,
                "padding_hu": acq.padding_hu,
            }
            assert scan.anatomy_v2 is not None
            lv = scan.anatomy_v2.chambers[0][0]
            extra |= {"blood_x": lv[0], "blood_y": lv[1], "blood_z": lv[2]}
        cohort.append(
            {
                **extra,
                "series_uid": scan.series_uid,
                "patient_id": scan.patient_id,
                "manufacturer": acq.manufacturer,
                "model": acq.model,
                "kernel": acq.kernel,
                "slice_thickness_mm": acq.thickness_mm,
                "increment_mm": acq.thickness_mm,
                "pixel_spacing_mm": acq.pixel_mm,
                "n_slices": acq.n_slices,
                "noise_sd_hu": acq.noise_sd_hu,
                "severity": scan.scene.severity,
                "zero_cac": int(plan.zero_cac),
                "instance_order": acq.instance_order,
                "dicom_dir": folder.relative_to(out_dir).as_posix(),
            }
        )
    _write_csv(out_dir / "annotations.csv", ANNOTATION_COLUMNS, annotations)
    _write_csv(out_dir / "truth.csv", TRUTH_COLUMNS, truth)
    _write_csv(out_dir / "truth_lesions.csv", LESION_COLUMNS, lesions)
    _write_csv(out_dir / "cohort.csv", COHORT_V2_COLUMNS if v2 else COHORT_COLUMNS, cohort)
