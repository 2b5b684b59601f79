"""Benchmark: direct-method inference per chest CT (issue 7); with ``--segment``, also the
`segment` ensemble (issue 16) on the same scans in the same run, and its ratio to direct.

Generates a few synthetic scans (``cacflow.synth``, seed 4242), converts them to analysis
volumes (3 mm slices every 1.5 mm) and times the shipped model on them: registration +
slice selection + scoring network, with the heart the resample step found and cached
(``<uid>_heart.npz``, as the workflow's infer step reads it; finding the heart, paid once
per scan in the resample step, and reading the NIfTI are timed apart). CPU target: <= 1 s
per scan on one core (``--threads 1``, the default). On a GPU (``--device cuda``) it
reports scans per second, volumes already in memory, after a warm-up.

    .venv/bin/python benchmarks/infer.py [--n-scans 6] [--threads 1] [--device cpu]
    .venv/bin/python benchmarks/infer.py --segment --threads 2 [--matrix 512]

`segment` is timed per scan from the volume in memory to the label mask (heart
localiser, crop, sliding-window U-Net ensemble, votes); CPU target: <= 10 s per chest CT
on 2 cores (``--threads 2``) for the ensemble.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cacflow.config import default_of
from cacflow.heart import HEART_SUFFIX, find_heart, save_heart
from cacflow.methods.direct.infer import DirectModel, predict_volume
from cacflow.methods.direct.runtime import configure, resolve_device
from cacflow.volume import Volume, list_volumes, read_volume

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "resources" / "models" / "direct.pt"
SEGMENT_MODEL = REPO / "resources" / "models" / "segment.pt"
TARGET_CPU_S = 1.0
TARGET_SEGMENT_CPU_S = 10.0
SEED = 4242
MIN_PIXEL_MM = float(default_of("direct")["min_pixel_mm"])
"""As the workflow's infer step (config ``direct.min_pixel_mm``)."""


def analysis_volumes(work: Path, n_scans: int, matrix: int | None = None) -> list[Path]:
    """Synthetic cohort -> converted -> resampled to 3 mm / 1.5 mm; the volume paths."""
    from cacflow.dicom.convert import QcConfig, convert_dir
    from cacflow.resample import resample_dir
    from cacflow.synth import generate_cohort

    generate_cohort(work / "cohort", n_scans, SEED, matrix=matrix)
    convert_dir(work / "cohort" / "dicom", work / "native", QcConfig(), workers=1)
    resample_dir(work / "native", work / "resampled", 3.0, 1.5)
    return list_volumes(work / "resampled")


def time_inference(
    vols: list[Volume],
    model: Path,
    device: str,
    threads: int,
    repeats: int = 1,
    hearts: list[Path | None] | None = None,
) -> list[float]:
    """Seconds per scan of heart box + prediction (after one warm-up scan); ``hearts``:
    the resample step's cached hearts of ``vols`` (None: found anew)."""
    dev = resolve_device(device)
    configure(0, threads, dev)
    net = DirectModel.load(model, device)
    hearts = hearts or [None] * len(vols)
    predict_volume(net, vols[0], heart_cache=hearts[0], min_pixel_mm=MIN_PIXEL_MM)
    if dev.type == "cuda":
        import torch

        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        for v, heart in zip(vols, hearts, strict=True):
            t0 = time.perf_counter()
            predict_volume(net, v, heart_cache=heart, min_pixel_mm=MIN_PIXEL_MM)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return times


def time_segment(vols: list[Volume], model: Path, device: str, threads: int) -> list[float]:
    """Seconds per scan of the segment ensemble, volume in memory -> label mask (after one
    warm-up scan)."""
    from cacflow.methods.segment.infer import SegmentModel, predict_volume

    dev = resolve_device(device)
    configure(0, threads, dev)
    net = SegmentModel.load(model, device)
    predict_volume(net, vols[0], 130.0)
    times = []
    for v in vols:
        t0 = time.perf_counter()
        predict_volume(net, v, 130.0)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-scans", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--segment", action="store_true", help="also time the segment ensemble")
    ap.add_argument("--segment-model", type=Path, default=SEGMENT_MODEL)
    ap.add_argument("--matrix", type=int, help="synthetic matrix (default: the generator's)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = analysis_volumes(Path(tmp), a.n_scans, a.matrix)
        t0 = time.perf_counter()
        vols = [read_volume(p) for p in paths]
        read_s = (time.perf_counter() - t0) / len(paths)
        hearts = [p.with_name(p.name.removesuffix(".nii") + HEART_SUFFIX) for p in paths]
        t0 = time.perf_counter()
        for v, heart in zip(vols, hearts, strict=True):
            save_heart(find_heart(v), tuple(v.array.shape), heart)  # as the resample step
        heart_s = (time.perf_counter() - t0) / len(vols)
        times = time_inference(vols, a.model, a.device, a.threads, hearts=hearts)
    slices = statistics.median(v.array.shape[0] for v in vols)
    med = statistics.median(times)
    print(
        f"direct inference on {a.device} ({a.threads} thread(s)): {len(vols)} scans of "
        f"~{slices:.0f} slices, median {med:.3f} s/scan (max {max(times):.3f}), "
        f"{1.0 / statistics.mean(times):.1f} scans/s; reading a volume {read_s:.3f} s; "
        f"finding its heart (resample step, once per scan) {heart_s:.3f} s"
    )
    if a.device == "cpu" and a.threads == 1:
        verdict = "met" if med + read_s <= TARGET_CPU_S else "MISSED"
        print(f"target <= {TARGET_CPU_S} s per scan incl. reading on one core: {verdict}")
    if a.segment:
        seg = time_segment(vols, a.segment_model, a.device, a.threads)
        smed = statistics.median(seg)
        shape = "x".join(str(n) for n in vols[0].array.shape)
        print(
            f"segment inference on {a.device} ({a.threads} thread(s)): {len(vols)} scans "
            f"({shape}), median {smed:.3f} s/scan (max {max(seg):.3f}); "
            f"ratio segment / direct {smed / med:.1f}"
        )
        if a.device == "cpu":
            verdict = "met" if smed + read_s <= TARGET_SEGMENT_CPU_S else "MISSED"
            print(
                f"target <= {TARGET_SEGMENT_CPU_S} s per scan incl. reading on "
                f"{a.threads} thread(s): {verdict}"
            )


if __name__ == "__main__":
    main()
