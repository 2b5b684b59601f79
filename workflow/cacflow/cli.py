"""The ``cacflow`` command: one subcommand per workflow step.

Thin by design: parse arguments, call one package function, write outputs. Bad input ends
with a non-zero exit and one line naming the file or key and what is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], int | None]
EXIT_BAD_INPUT = 2


def _json_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


# --- synth -------------------------------------------------------------------------------
def _synth_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic CT cohort (DICOM, annotations, truth)")
    p.add_argument("out", type=Path, help="output folder (dicom/, annotations.csv, truth.csv)")
    p.add_argument("--n-scans", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--matrix", type=int, help="in-plane matrix size (pixels; default 256, v2: 512)")
    p.add_argument(
        "--thickness",
        type=float,
        nargs="+",
        help="slice thicknesses (mm; default 1.0 2.5 3.0, v2: 0.625 1 1.5 2.5 3 5)",
    )
    p.add_argument(
        "--zero-cac-fraction", type=float, default=0.2, help="share of scans without coronary CAC"
    )
    p.add_argument(
        "--severity-p",
        type=float,
        nargs=4,
        metavar=("MILD", "MODERATE", "SEVERE", "EXTENSIVE"),
        help="weights of the coronary severities (default 0.3 0.3 0.25 0.15)",
    )
    p.add_argument("--av-p", type=float, help="chance of aortic-valve calcium (default 0.25)")
    p.add_argument("--mv-p", type=float, help="chance of mitral-annulus calcium (default 0.15)")
    p.add_argument(
        "--domain",
        choices=("v1", "v2"),
        default="v1",
        help="v1: fast ellipse phantom (default); v2: looks like real CT (README)",
    )
    p.add_argument(
        "--fov-p",
        type=float,
        nargs=2,
        metavar=("CHEST", "CARDIAC"),
        help="v2: weights of the fields of view (default 0.5 0.5)",
    )
    p.add_argument(
        "--kernel-p",
        type=float,
        nargs=4,
        metavar=("SOFT", "MEDIUM", "SHARP", "LUNG"),
        help="v2: weights of the kernel classes (default 0.45 0.25 0.15 0.15)",
    )
    p.add_argument("--gated-p", type=float, help="v2: share of ECG-gated scans (default 0.5)")
    p.add_argument("--stent-p", type=float, help="v2: share of scans with a stent (default 0.08)")
    p.add_argument(
        "--kernels",
        nargs="+",
        metavar="VENDOR/NAME",
        help="v2: draw only these kernels, e.g. Philips/B SIEMENS/B35f (overrides --kernel-p)",
    )
    p.set_defaults(handler=_synth)


def _synth(a: argparse.Namespace) -> None:
    from cacflow.synth import AcquisitionMix, CohortMix, generate_cohort

    given = {"severity_p": a.severity_p, "av_p": a.av_p, "mv_p": a.mv_p}
    mix = CohortMix(**{k: v for k, v in given.items() if v is not None})
    v2_given = {"fov_p": a.fov_p, "kernel_p": a.kernel_p, "gated_p": a.gated_p}
    v2_given |= {"stent_p": a.stent_p, "kernels": tuple(a.kernels) if a.kernels else None}
    v2_set = {k: v for k, v in v2_given.items() if v is not None}
    if v2_set and a.domain != "v2":
        raise ValueError(f"--{next(iter(v2_set)).replace('_', '-')} needs --domain v2")
    generate_cohort(
        a.out,
        a.n_scans,
        a.seed,
        thicknesses_mm=tuple(a.thickness) if a.thickness else None,
        matrix=a.matrix,
        zero_cac_fraction=a.zero_cac_fraction,
        mix=mix,
        domain=a.domain,
        acquisition_mix=AcquisitionMix(**v2_set) if a.domain == "v2" else None,
    )


# --- discover ----------------------------------------------------------------------------
def _discover_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("discover", help="header-only pass: one manifest row per series")
    p.add_argument("dicom_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="manifest Parquet file")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(handler=_discover)


def _discover(a: argparse.Namespace) -> None:
    from cacflow.dicom.discover import discover
    from cacflow.provenance import provenance, write_table

    manifest, counts = discover(_existing_dir(a.dicom_dir), workers=a.workers)
    meta = provenance() | {f"count.{k}": str(v) for k, v in counts.items()}
    write_table(manifest, a.out, meta)
    print(f"discover: {len(manifest)} series from {counts.get('n_files', '?')} files", flush=True)


# --- convert -----------------------------------------------------------------------------
def _convert_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="DICOM -> one NIfTI per usable series + scans.parquet",
        description="Either `cacflow convert DICOM_DIR OUT_DIR`, or "
        "`cacflow convert --manifest M --batch B OUT_DIR` for one batch of a manifest.",
    )
    p.add_argument("paths", type=Path, nargs="+", help="[DICOM_DIR] OUT_DIR")
    p.add_argument("--manifest", type=Path, help="manifest Parquet written by `cacflow discover`")
    p.add_argument("--batch", help="batch id (e.g. b0003) of the manifest to convert")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--qc", type=_json_arg, default={}, help="config section `qc` as JSON")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(handler=_convert)


def _convert(a: argparse.Namespace) -> None:
    from cacflow.dicom.convert import QcConfig

    qc = QcConfig.from_config(a.qc)
    if a.manifest is None:
        # One folder: no pandas on this path (its import costs as much as converting a
        # 300-slice series; see benchmarks/convert.py).
        from cacflow.dicom.convert import convert_dir_table

        if len(a.paths) != 2:
            raise ValueError("convert: give DICOM_DIR OUT_DIR (or --manifest M --batch B OUT_DIR)")
        table = convert_dir_table(_existing_dir(a.paths[0]), a.paths[1], qc, workers=a.workers)
        statuses = table.column("status").to_pylist()
    else:
        from cacflow.dicom.convert import convert_batch, write_scans
        from cacflow.dicom.discover import assign_batches
        from cacflow.provenance import atomic_dir
        from cacflow.tables import read_table

        if len(a.paths) != 1 or a.batch is None:
            raise ValueError("convert: with --manifest give --batch B and one OUT_DIR")
        manifest = assign_batches(read_table(a.manifest), a.batch_size)
        rows = manifest[manifest["batch"] == a.batch]
        if rows.empty:
            raise ValueError(f"{a.manifest}: no series in batch {a.batch}")
        with atomic_dir(a.paths[0]) as out:
            scans = convert_batch(rows, out, qc, workers=a.workers)
            write_scans(scans, out, qc)
        statuses = scans["status"].tolist()
    from cacflow.conventions import Status

    n_ok = sum(s == Status.OK for s in statuses)
    print(f"convert: {n_ok} of {len(statuses)} series converted", flush=True)


# --- insert ------------------------------------------------------------------------------
def _insert_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "insert",
        help="insert synthetic calcium into copies of real CT series (DICOM, annotations, truth)",
    )
    p.add_argument("out", type=Path, help="output folder (dicom/, annotations.csv, truth.csv)")
    p.add_argument(
        "--background", type=Path, nargs="+", required=True, help="real series folders (read-only)"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--max-lesions", type=int, default=8, help="lesions per copy: 0..this")
    p.add_argument(
        "--fov-mm",
        type=float,
        nargs="+",
        default=[0.0],
        help="fields of view: 0 keeps the scan's own; e.g. 200 crops a cardiac FOV",
    )
    p.add_argument(
        "--gated",
        action="store_true",
        help="cardiac-FOV copies take a gated calcium scan's geometry (512² over the FOV, "
        "range from just above to just below the heart)",
    )
    p.add_argument("--scoring", type=_json_arg, default={}, help="config section `scoring`")
    p.set_defaults(handler=_insert)


def _insert(a: argparse.Namespace) -> None:
    from cacflow.conventions import ScoringConventions
    from cacflow.insert import insert_cohort
    from cacflow.provenance import atomic_dir

    for bg in a.background:
        _existing_dir(bg)
    if a.max_lesions < 0:
        raise ValueError(f"--max-lesions must be >= 0, got {a.max_lesions}")
    fovs = [f if f > 0 else None for f in a.fov_mm]
    conv = ScoringConventions.from_config(a.scoring)
    with atomic_dir(a.out) as out:
        n = insert_cohort(
            [str(b) for b in a.background], out, a.seeds, a.max_lesions, fovs, conv, a.gated
        )
    print(f"insert: {n} series", flush=True)


# --- resample ----------------------------------------------------------------------------
def _resample_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resample", help="slab-average volumes to the analysis slice geometry")
    p.add_argument("in_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--thickness", type=float, help="target slice thickness (mm)")
    g.add_argument("--native", action="store_true", help="keep the native slices")
    p.add_argument("--increment", type=float, help="target slice increment (mm)")
    p.add_argument(
        "--scorable", type=_json_arg, default={}, help="config section `scorable` (limits)"
    )
    p.set_defaults(handler=_resample)


def _resample(a: argparse.Namespace) -> None:
    from cacflow.provenance import atomic_dir
    from cacflow.resample import resample_dir
    from cacflow.scorable import ScorableConfig

    thickness = None if a.native else a.thickness
    scorable = ScorableConfig.from_config(a.scorable)
    with atomic_dir(a.out_dir) as out:
        n = resample_dir(_existing_dir(a.in_dir), out, thickness, a.increment, scorable)
    print(f"resample: {n} volumes", flush=True)


# --- reference ---------------------------------------------------------------------------
def _reference_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reference", help="point annotations -> reference label masks")
    p.add_argument("images", type=Path, help="folder of analysis volumes (<series_uid>.nii)")
    p.add_argument("annotations", type=Path, help="CSV/Parquet: series_uid, x, y, z, label")
    p.add_argument("out_dir", type=Path, help="label masks + points.parquet")
    p.add_argument("--scoring", type=_json_arg, default={}, help="config section `scoring`")
    p.add_argument(
        "--manifest",
        type=Path,
        help="the dataset's series manifest: resolves points keyed by a SeriesInstanceUID "
        "that holds several series to the series whose volume holds them",
    )
    p.set_defaults(handler=_reference)


def _reference(a: argparse.Namespace) -> None:
    from cacflow.provenance import atomic_dir
    from cacflow.reference import reference_batch

    with atomic_dir(a.out_dir) as out:
        n = reference_batch(
            _existing_dir(a.images), a.annotations, out, a.scoring, manifest=a.manifest
        )
    print(f"reference: {n} series", flush=True)


# --- infer -------------------------------------------------------------------------------
def _infer_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="run a scoring method on analysis volumes")
    p.add_argument("method", help="method name (config `methods`)")
    p.add_argument("images", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--scoring", type=_json_arg, default={}, help="config section `scoring`")
    p.add_argument("--model", type=Path, help="model weights (methods that need them)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--settings", type=_json_arg, default={}, help="the method's own config section (JSON)"
    )
    p.set_defaults(handler=_infer)


def _infer(a: argparse.Namespace) -> None:
    from cacflow.methods import run_method
    from cacflow.provenance import atomic_dir

    images = _existing_dir(a.images)
    with atomic_dir(a.out_dir) as out:
        n = run_method(
            a.method, images, out, a.scoring, model=a.model, device=a.device, settings=a.settings
        )
    print(f"infer {a.method}: {n} series", flush=True)


# --- score -------------------------------------------------------------------------------
def _score_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="label masks -> Agatston / volume / mass per artery, lesion")
    p.add_argument("images", type=Path)
    p.add_argument("labels", type=Path)
    p.add_argument("--scans", type=Path, required=True, help="scans.parquet of the batch")
    p.add_argument("--method", required=True)
    p.add_argument("--scoring", type=_json_arg, default={})
    p.add_argument("--scores", type=Path, required=True, help="output Parquet (series x artery)")
    p.add_argument("--lesions", type=Path, required=True, help="output Parquet (lesion)")
    p.set_defaults(handler=_score)


def _score(a: argparse.Namespace) -> None:
    from cacflow.score import score_batch_files

    n = score_batch_files(
        _existing_dir(a.images),
        _existing_dir(a.labels),
        a.scans,
        a.method,
        a.scoring,
        a.scores,
        a.lesions,
    )
    print(f"score {a.method}: {n} series", flush=True)


# --- tables ------------------------------------------------------------------------------
def _tables_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tables",
        aliases=["gather"],
        help="assemble a dataset's scans / scores / lesions tables from its batch outputs",
        description="Batch parts are found from the manifest (batches of --batch-size) under "
        "WORK, in the layout the rules write (cacflow.tables.batch_parts): "
        "native/<b>/scans.parquet, scores|lesions/<source>/<b>.parquet, "
        "labels/reference/<b>/points.parquet, resampled/<b>/scorable.parquet. No per-batch "
        "paths on the command line, so 50,000-series cohorts stay within the shell's "
        "argument limits. `gather` is the step's former name.",
    )
    p.add_argument("--settings", type=_json_arg, required=True, help="dataset settings JSON")
    p.add_argument("--manifest", type=Path, help="series manifest (absent: no DICOM)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--work", type=Path, help="the dataset's work folder")
    p.add_argument("--sources", nargs="*", default=[], help="scored sources (reference, methods)")
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(handler=_tables)


def _tables(a: argparse.Namespace) -> None:
    from cacflow.tables import batch_parts, build_tables

    batches: list[str] = []
    if a.manifest is not None:
        from cacflow.dicom.discover import manifest_batches

        if a.work is None:
            raise ValueError("tables: --manifest needs --work")
        batches = manifest_batches(a.manifest, a.batch_size)
    parts = batch_parts(a.work or Path("."), batches, a.sources)
    build_tables(
        a.settings,
        a.manifest,
        parts["scans"],
        parts["scores"],
        parts["lesions"],
        parts["points"],
        a.out_dir,
        parts["scorable"],
    )


# --- stats -------------------------------------------------------------------------------
def _stats_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="agreement, confusion, detection and subgroup tables")
    p.add_argument("data_dir", type=Path, help="results/<ds> with scans/scores/lesions tables")
    p.add_argument("--settings", type=_json_arg, required=True, help="dataset settings JSON")
    p.set_defaults(handler=_stats)


def _stats(a: argparse.Namespace) -> None:
    from cacflow.stats.run import run_stats

    run_stats(_existing_dir(a.data_dir), a.settings)


# --- study -------------------------------------------------------------------------------
def _study_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="study tables: exams, progression, CAC-DRS, table 1, outcomes",
        description="`cacflow study tables DATA_DIR --settings S` writes exams, progression, "
        "cac_drs, table1, outcomes and km tables beside DATA_DIR's scans/scores; "
        "`cacflow study simulate DATA_DIR --settings S --out DIR` writes a simulated exam "
        "table and clinical table (the demo's study).",
    )
    p.add_argument("action", choices=("tables", "simulate"))
    p.add_argument("data_dir", type=Path, help="results/<ds> with scans and scores tables")
    p.add_argument("--settings", type=_json_arg, required=True, help="dataset settings JSON")
    p.add_argument("--out", type=Path, help="simulate: output folder")
    p.add_argument(
        "--manifest", type=Path, help="series manifest (study_uid, study_days key the exams)"
    )
    p.set_defaults(handler=_study)


def _study(a: argparse.Namespace) -> None:
    data_dir = _existing_dir(a.data_dir)
    if a.action == "tables":
        from cacflow.study.run import run_study

        run_study(data_dir, a.settings, manifest=a.manifest)
        return
    from cacflow.study.run import write_simulated_study

    if a.out is None:
        raise ValueError("study simulate: give --out DIR")
    write_simulated_study(data_dir, a.settings, a.out)


# --- report ------------------------------------------------------------------------------
def _report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="self-contained HTML report of a dataset")
    p.add_argument("data_dir", type=Path, help="results/<ds> with all tables")
    p.add_argument("--settings", type=_json_arg, required=True, help="dataset settings JSON")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--feedback",
        type=Path,
        nargs=2,
        metavar=("IMAGES_DIR", "PREDICTIONS_DIR"),
        help="analysis volumes and `direct` predictions (with *_heatmap.nii) of one batch: "
        "adds decision-feedback figures",
    )
    p.add_argument(
        "--qc",
        type=Path,
        nargs=2,
        metavar=("WORK_DIR", "MANIFEST"),
        help="the dataset's work folder (results/<ds>/work) and series manifest: adds the scan "
        "QC pictures (volumes and masks of the chosen scans are found by their batch)",
    )
    p.add_argument(
        "--seg",
        type=Path,
        metavar="SEG_DIR",
        help="the `cacflow seg` folder (results/<ds>/seg): the QC pictures link to its DICOM "
        "SEG files (relative links)",
    )
    p.set_defaults(handler=_report)


def _report(a: argparse.Namespace) -> None:
    from cacflow.report.run import write_report

    feedback = tuple(_existing_dir(d) for d in a.feedback) if a.feedback else None
    qc = (a.qc[0], a.qc[1]) if a.qc else None  # missing volumes: fewer pictures, said so
    seg = _existing_dir(a.seg) if a.seg else None
    write_report(_existing_dir(a.data_dir), a.settings, a.out, feedback, qc, seg)


# --- seg ---------------------------------------------------------------------------------
def _seg_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "seg",
        help="DICOM SEG files of the masks of the scans the report pictures",
        description="One DICOM Segmentation per scan the report pictures as a scored scan "
        "(outliers and sample) and label source (reference, methods with voxel labels), on "
        "the analysis grid, referencing the source series; identifiers blanked. Writes "
        "OUT/<source>/<series_uid>.dcm and OUT/index.parquet.",
    )
    p.add_argument("work", type=Path, help="the dataset's work folder (results/<ds>/work)")
    p.add_argument("manifest", type=Path, help="series manifest (batches, source files)")
    p.add_argument("--scans", type=Path, required=True, help="the dataset's scans.parquet")
    p.add_argument("--scores", type=Path, required=True, help="the dataset's scores.parquet")
    p.add_argument("--settings", type=_json_arg, required=True, help="dataset settings JSON")
    p.add_argument("--out", type=Path, required=True, help="output folder (results/<ds>/seg)")
    p.set_defaults(handler=_seg)


def _seg(a: argparse.Namespace) -> None:
    from cacflow.provenance import atomic_dir
    from cacflow.seg import export_report_segs
    from cacflow.tables import read_table

    work = _existing_dir(a.work)
    scans, scores = read_table(a.scans), read_table(a.scores)
    with atomic_dir(a.out) as out:
        index = export_report_segs(work, a.manifest, a.settings, scans, scores, out)
    print(f"seg: {index['file'].notna().sum()} SEG files of {index['series_uid'].nunique()} scans")


# --- train-direct, train-segment ---------------------------------------------------------
def _train_parser(
    sub: argparse._SubParsersAction,
    step: str,
    summary: str,
    section: str,
    options: tuple[tuple[str, str, type, str], ...],
    handler: Handler,
) -> None:
    """A training step's parser (``summary``: its help line): inputs, output, ``options``
    (flag, key of config section ``section``, type, help), ``--scoring`` and the device.
    The options' defaults are the schema's (the rules pass every option from the
    validated config)."""
    from cacflow.config import default_of

    defaults = default_of(section)
    p = sub.add_parser(step, help=summary)
    p.add_argument(
        "--images", type=Path, nargs="+", required=True, help="folders of analysis volumes"
    )
    p.add_argument(
        "--labels", type=Path, nargs="+", required=True, help="folders of reference label masks"
    )
    p.add_argument(
        "--out", type=Path, required=True, help="weights file; .sha256 and .json go beside it"
    )
    for flag, key, typ, what in options:
        what = f"{what} (config {section}.{key}, default %(default)s)"
        p.add_argument(flag, dest=key, type=typ, default=defaults[key], help=what)
    p.add_argument("--scoring", type=_json_arg, default={}, help="config section `scoring`")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, help="CPU threads (default 2)")
    p.set_defaults(handler=handler)


def _train_direct_parser(sub: argparse._SubParsersAction) -> None:
    options = (
        ("--epochs", "epochs", int, "largest number of scoring-network epochs"),
        ("--seed", "seed", int, "training seed"),
        ("--reg-iterations", "reg_iterations", int, "registration iterations per atlas"),
        (
            "--validation-fraction",
            "validation_fraction",
            float,
            "share of the scans (per dataset) held out for early stopping; 0: none",
        ),
        ("--patience", "patience", int, "epochs without a better validation error"),
    )
    summary = "train the direct method (slice scoring network; registration fallback)"
    _train_parser(sub, "train-direct", summary, "direct", options, _train_direct)


def _train_direct(a: argparse.Namespace) -> None:
    from cacflow.methods.direct.train import train

    train(
        a.images,
        a.labels,
        a.out,
        epochs=a.epochs,
        seed=a.seed,
        device=a.device,
        threads=a.threads,
        reg_iterations=a.reg_iterations,
        scoring=a.scoring,
        validation_fraction=a.validation_fraction,
        patience=a.patience,
    )


# --- train-segment -----------------------------------------------------------------------
def _train_segment_parser(sub: argparse._SubParsersAction) -> None:
    options = (
        ("--ensemble", "ensemble", int, "models (each its own validation split and seed)"),
        ("--epochs", "epochs", int, "largest number of epochs per model"),
        ("--iterations", "iterations", int, "mini-batches per epoch"),
        ("--batch", "batch", int, "patches per mini-batch"),
        ("--patience", "patience", int, "epochs without a better validation loss"),
        ("--validation-fraction", "validation_fraction", float, "held-out share per dataset"),
        ("--seed", "seed", int, "seed of the first model (model m: seed + m)"),
        ("--spacing-mm", "spacing_mm", float, "coarse grid voxel size (mm)"),
        ("--crop", "crop_voxels", int, "heart-centred crop, coarse voxels a side"),
        ("--patch", "patch_voxels", int, "training patch / inference window, voxels a side"),
    )
    summary = "train the segment method (3D U-Net ensemble)"
    _train_parser(sub, "train-segment", summary, "segment", options, _train_segment)


def _train_segment(a: argparse.Namespace) -> None:
    from dataclasses import fields

    from cacflow.methods.segment.settings import SegmentTrainSettings
    from cacflow.methods.segment.train import train

    given = {f.name: getattr(a, f.name) for f in fields(SegmentTrainSettings) if hasattr(a, f.name)}
    train(
        a.images,
        a.labels,
        a.out,
        settings=SegmentTrainSettings(**given),
        scoring=a.scoring,
        device=a.device,
        threads=a.threads,
    )


# --- triage ------------------------------------------------------------------------------
def _triage_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("triage", help="CAC-negative triage table of the segment method")
    p.add_argument("parts", type=Path, nargs="*", help="segment label folders (triage.parquet)")
    p.add_argument("--scores", type=Path, help="the dataset's scores.parquet (reference totals)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--settings", type=_json_arg, default={}, help="dataset settings (JSON)")
    p.set_defaults(handler=_triage)


def _triage(a: argparse.Namespace) -> None:
    from cacflow.methods.segment.triage import TRIAGE_FILE, write_triage

    parts = [_existing_dir(d) / TRIAGE_FILE for d in a.parts]
    table = write_triage(parts, a.scores, a.out, a.settings)
    print(f"triage: {len(table)} statistics", flush=True)


# -----------------------------------------------------------------------------------------
def _existing_dir(path: Path) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a directory")
    return path


PARSERS = (
    _synth_parser,
    _insert_parser,
    _discover_parser,
    _convert_parser,
    _resample_parser,
    _reference_parser,
    _infer_parser,
    _score_parser,
    _tables_parser,
    _stats_parser,
    _study_parser,
    _report_parser,
    _seg_parser,
    _train_direct_parser,
    _train_segment_parser,
    _triage_parser,
)


def build_parser() -> argparse.ArgumentParser:
    from cacflow import __version__

    parser = argparse.ArgumentParser(prog="cacflow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cacflow {__version__}")
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = args.handler(args)
    except (ValueError, FileNotFoundError, KeyError, OSError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"cacflow {args.step}: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
