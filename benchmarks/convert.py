"""Benchmark: DICOM -> NIfTI conversion (issue 4) against dcm2niix on the same input.

Writes real DICOM files with pydicom into a temporary folder, then times whole commands
(start-up included) with the same cores available to both tools:

1. one 300-slice 512 x 512 series: ``cacflow convert SRC OUT --workers W`` vs
   ``dcm2niix -z n`` (target ratio <= 3; a Python command pays ~1 s of imports);
2. a cohort of 200 series x 60 slices (12,000 files) in one folder, one call each:
   ``cacflow convert`` vs ``dcm2niix -z n -f %j`` (target throughput ratio <= 1.5);
3. peak resident memory of converting one 600-slice series and slab-resampling it to
   3 mm / 1.5 mm in one process (target <= 2 GB);
4. ``cacflow discover`` over the cohort's files (files per second).

Prints the figures; asserts nothing about time (runs on shared machines vary by 20-40 %:
compare the ratios of one run). ``--quick`` shrinks every size for a smoke run. Disk:
about 3x the cohort's size (input + two outputs; outputs are removed after each timing).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from cacflow.dicom.write import SeriesSpec, ct_slice

BIN = Path(sys.executable).parent
KB_PER_MB = 1024.0
SINGLE_TARGET = 3.0
COHORT_TARGET = 1.5
MEMORY_TARGET_MB = 2048.0
RESAMPLE_THICKNESS_MM = 3.0
RESAMPLE_INCREMENT_MM = 1.5


@dataclass(frozen=True)
class Sizes:
    single_slices: int = 300
    cohort_series: int = 200
    cohort_slices: int = 60
    memory_slices: int = 600
    matrix: int = 512


PARTS = ("single", "cohort", "discover", "memory")
QUICK = Sizes(single_slices=60, cohort_series=20, cohort_slices=30, memory_slices=120, matrix=256)


@dataclass(frozen=True)
class Run:
    wall_s: float
    peak_mb: float


def run(cmd: list[str]) -> Run:
    """Run ``cmd``; wall time and peak resident memory (the command and its children)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err.strip()[-500:]}")
    return Run(wall, usage.ru_maxrss / KB_PER_MB)


def timed(cmd: list[str], out: Path, repeats: int) -> Run:
    """Median wall time of ``repeats`` runs writing into a fresh ``out`` each time."""
    runs = []
    for _ in range(repeats):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        runs.append(run([c.replace("{out}", str(out)) for c in cmd]))
    shutil.rmtree(out, ignore_errors=True)
    return Run(statistics.median(r.wall_s for r in runs), max(r.peak_mb for r in runs))


def chest_like(n: int, matrix: int, seed: int) -> np.ndarray:
    """HU volume (z, y, x): noise over a disc, varying slice to slice (int16)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:matrix, 0:matrix]
    body = ((y - matrix / 2) ** 2 + (x - matrix / 2) ** 2) < (0.45 * matrix) ** 2
    base = np.where(body, 40, -1000).astype(np.int16)
    noise = rng.integers(-30, 31, size=(matrix, matrix), dtype=np.int16)
    return np.stack([base + np.roll(noise, k, axis=0) for k in range(n)])


def _fixed(values: np.ndarray) -> str:
    """DS values of one fixed width (12 characters each), backslash-separated."""
    return "\\".join(f"{v:+012.4f}" for v in values)


_INSTANCE_NUMBER = b"\x20\x00\x13\x00IS"  # explicit VR little endian: tag bytes + VR
_POSITION = b"\x20\x00\x32\x00DS"
_SLICE_LOCATION = b"\x20\x00\x41\x10DS"
_PATCHED = {  # element -> its value in slice k
    b"\x02\x00\x03\x00UI": lambda spec, k: _sop(spec, k),  # MediaStorageSOPInstanceUID
    b"\x08\x00\x18\x00UI": lambda spec, k: _sop(spec, k),  # SOPInstanceUID
    _INSTANCE_NUMBER: lambda spec, k: f"{k + 1:08d}",
    _POSITION: lambda spec, k: _fixed(spec.position(k)),
    _SLICE_LOCATION: lambda spec, k: _fixed(spec.position(k)[2:]),
}


def _sop(spec: SeriesSpec, k: int) -> str:
    return f"{spec.series_uid[:50]}.{10**7 + k}"


def _patch(header: bytearray, element: bytes, value: str) -> None:
    """Overwrite the value of ``element`` (same length) in an explicit-VR LE header."""
    at = header.index(element) + len(element)
    length = int.from_bytes(header[at : at + 2], "little")
    raw = value.encode()
    raw += b"\0" * (len(raw) % 2) if element.endswith(b"UI") else b" " * (len(raw) % 2)
    if len(raw) != length:
        raise ValueError(f"patched value length {len(raw)} != {length}")
    header[at + 2 : at + 2 + length] = raw


def write(folder: Path, n: int, matrix: int, seed: int) -> None:
    """One series of ``n`` slices, fast: pydicom writes slice 0; every other slice is that
    file with SOPInstanceUID, InstanceNumber, ImagePositionPatient and SliceLocation
    (written at fixed widths) and the pixel data replaced in place."""
    hu = chest_like(n, matrix, seed)
    spec = SeriesSpec(pixel_spacing=(0.7, 0.7), increment_mm=1.0, slice_thickness_mm=1.0)
    ds = ct_slice(hu[0], spec, 0, sop_uid=_sop(spec, 0))
    ds.InstanceNumber = _PATCHED[_INSTANCE_NUMBER](spec, 0)
    ds.ImagePositionPatient = _PATCHED[_POSITION](spec, 0)
    ds.SliceLocation = _PATCHED[_SLICE_LOCATION](spec, 0)
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    template = buf.getvalue()
    header = template[: len(template) - len(ds.PixelData)]
    stored = (hu - int(spec.rescale_intercept)).astype("<i2")
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        h = bytearray(header)
        for element, value in _PATCHED.items():
            _patch(h, element, value(spec, k))
        (folder / f"IM{k:05d}.dcm").write_bytes(bytes(h) + stored[k].tobytes())


def cacflow_cmd(step: str, *args: str, workers: int) -> list[str]:
    return [str(BIN / "cacflow"), step, *args, "--workers", str(workers)]


def dcm2niix_cmd(src: Path, name: str = "%s_%p") -> list[str]:
    return [str(BIN / "dcm2niix"), "-z", "n", "-b", "n", "-f", name, "-o", "{out}", str(src)]


def memory_probe(src: Path, out: Path) -> float:
    """Peak MB of one process converting ``src`` (one series) and slab-resampling it."""
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from cacflow.dicom.convert import QcConfig, convert_dir\n"
        "from cacflow.resample import slab_resample\n"
        "from cacflow.volume import list_volumes, read_volume\n"
        "convert_dir(Path(sys.argv[1]), Path(sys.argv[2]), QcConfig())\n"
        "(p,) = list_volumes(sys.argv[2])\n"
        f"slab_resample(read_volume(p), {RESAMPLE_THICKNESS_MM}, {RESAMPLE_INCREMENT_MM})\n"
    )
    shutil.rmtree(out, ignore_errors=True)
    r = run([sys.executable, "-c", code, str(src), str(out)])
    shutil.rmtree(out, ignore_errors=True)
    return r.peak_mb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="cores given to cacflow")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the single-series timings")
    ap.add_argument("--tmp", type=Path, default=None, help="scratch folder (default: system)")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="parts to run (default: all); e.g. --parts single",
    )
    a = ap.parse_args()
    sz = QUICK if a.quick else Sizes()
    w = a.workers
    with tempfile.TemporaryDirectory(prefix="cacflow-bench-", dir=a.tmp) as tmp_s:
        tmp = Path(tmp_s)
        print(f"cacflow convert benchmark: {w} workers, matrix {sz.matrix}, scratch {tmp}")

        if "single" in a.parts:
            single(tmp, sz, w, a.repeats)
        if {"cohort", "discover"} & set(a.parts):
            cohort(tmp, sz, w, a.parts)
        if "memory" in a.parts:
            write(tmp / "big", sz.memory_slices, sz.matrix, seed=1)
            peak = memory_probe(tmp / "big", tmp / "o4")
            print(
                f"[memory] convert + slab resample ({RESAMPLE_THICKNESS_MM:g}/"
                f"{RESAMPLE_INCREMENT_MM:g} mm) of {sz.memory_slices} slices: peak "
                f"{peak:.0f} MB (target <= {MEMORY_TARGET_MB:.0f})"
            )
    return 0


def single(tmp: Path, sz: Sizes, w: int, repeats: int) -> None:
    """Part 1: one series, ``repeats`` runs of each tool, interleaved (cacflow, dcm2niix,
    cacflow, ...) so that a load change on a shared machine hits both alike."""
    t0 = time.perf_counter()
    write(tmp / "single", sz.single_slices, sz.matrix, seed=0)
    print(f"wrote {sz.single_slices}-slice series in {time.perf_counter() - t0:.1f} s")
    ours_cmd = cacflow_cmd("convert", str(tmp / "single"), "{out}", workers=w)
    theirs_cmd = dcm2niix_cmd(tmp / "single")
    ours_runs, theirs_runs = [], []
    for _ in range(repeats):
        ours_runs.append(timed(ours_cmd, tmp / "o1", 1))
        theirs_runs.append(timed(theirs_cmd, tmp / "d1", 1))
    ours = Run(statistics.median(r.wall_s for r in ours_runs), max(r.peak_mb for r in ours_runs))
    theirs = Run(
        statistics.median(r.wall_s for r in theirs_runs), max(r.peak_mb for r in theirs_runs)
    )
    ratio = ours.wall_s / theirs.wall_s
    print(
        f"[single] {sz.single_slices} slices: cacflow {ours.wall_s:.2f} s "
        f"(peak {ours.peak_mb:.0f} MB), dcm2niix {theirs.wall_s:.2f} s "
        f"(peak {theirs.peak_mb:.0f} MB); ratio {ratio:.2f} (target <= {SINGLE_TARGET:g}; "
        f"medians of {repeats})"
    )


def cohort(tmp: Path, sz: Sizes, w: int, parts: list[str]) -> None:
    """Parts 2 and 4: the cohort folder, converted and discovered."""
    t0 = time.perf_counter()
    cohort = tmp / "cohort"
    for s in range(sz.cohort_series):
        write(cohort / f"series{s:04d}", sz.cohort_slices, sz.matrix, seed=s)
    n_files = sz.cohort_series * sz.cohort_slices
    print(f"wrote cohort of {n_files} files in {time.perf_counter() - t0:.1f} s")
    if "cohort" in parts:
        ours = timed(cacflow_cmd("convert", str(cohort), "{out}", workers=w), tmp / "o2", 1)
        theirs = timed(dcm2niix_cmd(cohort, "%j"), tmp / "d2", 1)
        ratio = ours.wall_s / theirs.wall_s
        print(
            f"[cohort] {sz.cohort_series} series x {sz.cohort_slices} slices: cacflow "
            f"{ours.wall_s:.1f} s ({n_files / ours.wall_s:.0f} files/s), dcm2niix "
            f"{theirs.wall_s:.1f} s ({n_files / theirs.wall_s:.0f} files/s); "
            f"ratio {ratio:.2f} (target <= {COHORT_TARGET:g})"
        )
    if "discover" in parts:
        disc = timed(
            cacflow_cmd("discover", str(cohort), "--out", "{out}/manifest.parquet", workers=w),
            tmp / "o3",
            1,
        )
        print(
            f"[discover] {n_files} files: {disc.wall_s:.1f} s, "
            f"{n_files / disc.wall_s:.0f} files/s (whole command)"
        )
    shutil.rmtree(cohort)


if __name__ == "__main__":
    sys.exit(main())
