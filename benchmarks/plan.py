"""Benchmark: planning the workflow (``snakemake -n``) for a 50,000-series cohort.

Writes a synthetic manifest (one row per series, the columns of ``cacflow discover``,
``files`` holding ``--files-per-series`` paths each) and a tiny annotations table into a
temporary folder, a user config naming them (``datasets: {big: {manifest, annotations}}``,
``run: [big]``), then times ``snakemake -n --cores 1`` on it in a child process, with the
temporary folder as working directory: nothing is written into the repository.

Target (issue 8): the DAG of 50,000 series is built in <= 60 s and <= 2 GB (peak resident
memory of the Snakemake process). Prints the wall time, the peak memory and the job count;
exits 1 when a target is missed or the dry run fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
N_SERIES = 50_000
FILES_PER_SERIES = 100
"""Slices per series in the synthetic manifest (a 3 mm cardiac scan has ~40-80, a 1 mm
chest CT ~300); only ``series_uid`` matters to planning, the rest makes the file realistic."""
TARGET_S = 60.0
TARGET_MB = 2048.0
KB_PER_MB = 1024.0
UID_ROOT = "1.2.826.0.1.3680043.10.1234"
"""Made-up DICOM UID root of the synthetic series."""


def synthetic_manifest(n_series: int, files_per_series: int, seed: int = 0) -> pa.Table:
    """A manifest table of ``n_series`` made-up CT series (no pixel data anywhere).

    Columns as :data:`cacflow.dicom.discover.MANIFEST_COLUMNS`; list columns (``files``,
    ``positions``, ...) are built from offsets so that millions of entries cost seconds.
    """
    rng = np.random.default_rng(seed)
    idx = np.arange(n_series)
    uids = np.char.add(f"{UID_ROOT}.", idx.astype(str))
    n_files = np.full(n_series, files_per_series, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_files)]).astype(np.int32)
    n_total = int(offsets[-1])
    series_of_file = np.repeat(idx, n_files)
    slice_of_file = np.arange(n_total) - offsets[:-1].repeat(n_files)
    paths = pc.binary_join_element_wise(
        "/data/cohort/",
        pa.array(series_of_file).cast(pa.string()),
        "/IM",
        pc.utf8_lpad(pa.array(slice_of_file).cast(pa.string()), width=5, padding="0"),
        "",
    )
    z = -slice_of_file * 3.0
    positions = np.stack([np.full(n_total, -175.0), np.full(n_total, -175.0), z], axis=1)
    pos_offsets = (offsets * 3).astype(np.int32)

    def lists(values: np.ndarray | pa.Array, offs: np.ndarray = offsets) -> pa.Array:
        return pa.ListArray.from_arrays(pa.array(offs), pa.array(values))

    kernels = np.array(["B35f", "FC12", "STANDARD", "Qr36d"])
    vendors = np.array(["SIEMENS", "TOSHIBA", "GE MEDICAL SYSTEMS", "Philips"])
    which = rng.integers(0, len(kernels), n_series)
    columns = {
        "series_uid": pa.array(uids),
        "dicom_series_uid": pa.array(uids),
        "patient_id": pa.array(np.char.add("P", (idx // 2).astype(str))),
        "status": pa.array(np.full(n_series, "ok")),
        "reason": pa.nulls(n_series, pa.string()),
        "reason_detail": pa.nulls(n_series, pa.string()),
        "modality": pa.array(np.full(n_series, "CT")),
        "kernel": pa.array(kernels[which]),
        "manufacturer": pa.array(vendors[which]),
        "image_type": pa.array(np.full(n_series, "ORIGINAL\\PRIMARY\\AXIAL")),
        "transfer_syntax": pa.array(np.full(n_series, "1.2.840.10008.1.2.1")),
        "orientation": pa.ListArray.from_arrays(
            pa.array(np.arange(n_series + 1, dtype=np.int32) * 6),
            pa.array(np.tile([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], n_series)),
        ),
        "slice_thickness_mm": pa.array(np.full(n_series, 3.0)),
        "pixel_spacing_mm": pa.array(rng.uniform(0.6, 0.8, n_series)),
        "pixel_spacing_col_mm": pa.array(rng.uniform(0.6, 0.8, n_series)),
        "rows": pa.array(np.full(n_series, 512, dtype=np.int64)),
        "columns": pa.array(np.full(n_series, 512, dtype=np.int64)),
        "n_files": pa.array(n_files),
        "n_duplicates": pa.array(np.zeros(n_series, dtype=np.int64)),
        "files": lists(paths),
        "positions": lists(positions.ravel(), pos_offsets),
        "rescale_slopes": lists(np.ones(n_total)),
        "rescale_intercepts": lists(np.full(n_total, -1024.0)),
        "pixel_offsets": lists(np.full(n_total, 1024, dtype=np.int64)),
        "frames": lists(np.full(n_total, -1, dtype=np.int64)),
        "pixel_format": pa.nulls(n_series, pa.string()),
    }
    return pa.table(columns)


def write_inputs(
    folder: Path,
    n_series: int,
    files_per_series: int,
    batch_size: int,
    methods: list[str] | None = None,
    repo: Path = REPO,
) -> Path:
    """Manifest, annotations, the repository's config/ and a user config in ``folder`` (the
    working directory of the dry run); returns the user config's path.

    ``methods`` None keeps the default config's methods.
    """
    shutil.copytree(repo / "config", folder / "config", dirs_exist_ok=True)
    manifest = folder / "manifest.parquet"
    table = synthetic_manifest(n_series, files_per_series)
    pq.write_table(table, manifest)
    annotations = folder / "annotations.csv"
    first = table.column("series_uid")[0].as_py()
    annotations.write_text(f"series_uid,x,y,z,label\n{first},10.0,20.0,-30.0,LAD\n")
    config = folder / "plan.yaml"
    user = {
        "datasets": {"big": {"manifest": manifest.name, "annotations": annotations.name}},
        "run": ["big"],
        "batch_size": batch_size,
    }
    if methods is not None:
        user["methods"] = methods
    config.write_text(yaml.safe_dump(user, sort_keys=False))
    return config


@dataclass(frozen=True)
class Plan:
    """Cost of one dry run: wall and CPU seconds, peak resident memory (MB), jobs planned."""

    wall_s: float
    cpu_s: float
    peak_mb: float
    n_jobs: int


MEASURE = """
import json, resource, subprocess, sys, time
with open(sys.argv[1], "w") as log:
    t0 = time.perf_counter()
    rc = subprocess.call(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "maxrss_kb": ru.ru_maxrss}))
"""
"""Runs a command and reports its wall time, CPU time and peak RSS. It runs in a fresh, small
Python: a child's ``ru_maxrss`` counts the memory of the process it was forked from, so
measuring straight from this (large) process would report its size instead."""


def dry_run(
    config: Path, snakemake: str, log: Path, repo: Path = REPO, extra: tuple[str, ...] = ()
) -> Plan:
    """``snakemake -n --cores 1`` of ``repo``'s Snakefile in ``config``'s folder, measured.

    Snakemake's output goes to ``log``; ``extra`` are further Snakemake arguments.
    """
    cmd = [snakemake, "-n", "--cores", "1", "--snakefile", str(repo / "Snakefile")]
    cmd += ["--configfile", config.name, *extra]
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(log), *cmd],
        cwd=config.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    out = log.read_text()
    if m["rc"] != 0:
        raise RuntimeError(f"snakemake -n failed (exit {m['rc']}):\n{out[-3000:]}")
    match = re.search(r"^total\s+(\d+)", out, flags=re.MULTILINE)
    n_jobs = int(match.group(1)) if match else -1
    return Plan(m["wall_s"], m["cpu_s"], m["maxrss_kb"] / KB_PER_MB, n_jobs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-series", type=int, default=N_SERIES)
    parser.add_argument("--files-per-series", type=int, default=FILES_PER_SERIES)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--methods", nargs="*", help="scoring methods (default: config's)")
    parser.add_argument(
        "--snakemake",
        default=str(Path(sys.executable).with_name("snakemake")),
        help="snakemake executable (default: the one next to this Python)",
    )
    parser.add_argument("--repo", type=Path, default=REPO, help="workflow checkout to plan")
    parser.add_argument(
        "--workflow-profile", type=Path, help="plan with this profile (e.g. the slurm one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep and print the temp folder")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="cacflow-plan-"))
    t0 = time.perf_counter()
    config = write_inputs(
        folder, args.n_series, args.files_per_series, args.batch_size, args.methods, args.repo
    )
    t_write = time.perf_counter() - t0
    size_mb = (folder / "manifest.parquet").stat().st_size / 1e6
    extra = ("--workflow-profile", str(args.workflow_profile)) if args.workflow_profile else ()
    plan = dry_run(config, args.snakemake, folder / "snakemake.log", args.repo, extra)
    print(
        f"manifest: {args.n_series} series x {args.files_per_series} files, "
        f"{size_mb:.0f} MB parquet, written in {t_write:.1f} s"
    )
    print(
        f"snakemake -n: {plan.n_jobs} jobs (batch_size {args.batch_size}) in "
        f"{plan.wall_s:.1f} s wall ({plan.cpu_s:.1f} s CPU), peak RSS {plan.peak_mb:.0f} MB "
        f"(targets <= {TARGET_S:.0f} s, <= {TARGET_MB:.0f} MB)"
    )
    if args.keep:
        print(f"inputs kept in {folder}")
    else:
        shutil.rmtree(folder)
    return 0 if plan.wall_s <= TARGET_S and plan.peak_mb <= TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
