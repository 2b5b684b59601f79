"""Benchmark: scoring one chest CT through the reference mask path, on one core.

A 230-slice 512 x 512 chest-CT-like volume at 3 mm thickness / 1.5 mm increment
(0.7 mm pixels, int16 HU): body, lungs, spine, ribs and sternum (bone >= 130 HU, never
labelled), a calcified aorta (not annotated) and coronary calcifications of varied size
and density with one annotation point each. Times ``reference_labels`` (points -> mask)
and ``score_volume`` (mask -> scores), medians of several runs. Target (issue 5):
``score_volume`` < 1 s on one core. Also times the worst case for a method's mask, every
voxel >= 130 HU labelled (bone included). Prints the wall times.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core: set before numpy is imported

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cacflow.conventions import ScoringConventions  # noqa: E402
from cacflow.reference import reference_labels  # noqa: E402
from cacflow.score import score_volume  # noqa: E402
from cacflow.volume import Geometry, Volume  # noqa: E402

N_SLICES, MATRIX = 230, 512
PIXEL_MM, THICKNESS_MM, INCREMENT_MM = 0.7, 3.0, 1.5
TARGET_S = 1.0
NOISE_HU = 18.0
# (label, centre (z, y, x) voxel, semi-axes mm (x, y, z), peak HU)
LESIONS = [
    ("LM", (120, 200, 250), (2.5, 2.0, 2.0), 650.0),
    ("LAD", (118, 190, 275), (3.0, 1.5, 2.0), 420.0),
    ("LAD", (110, 175, 290), (1.5, 1.5, 1.5), 260.0),
    ("LAD", (98, 160, 305), (4.0, 2.0, 3.0), 900.0),
    ("LAD", (85, 150, 318), (1.0, 1.0, 1.5), 190.0),
    ("LCX", (121, 215, 280), (2.0, 2.0, 2.0), 520.0),
    ("LCX", (112, 240, 300), (3.0, 2.0, 2.5), 330.0),
    ("LCX", (104, 260, 305), (1.2, 1.2, 1.5), 210.0),
    ("RCA", (122, 195, 205), (2.0, 3.0, 2.0), 780.0),
    ("RCA", (110, 200, 185), (2.5, 2.5, 3.0), 450.0),
    ("RCA", (95, 215, 175), (1.5, 1.5, 1.5), 300.0),
    ("RCA", (80, 235, 180), (3.5, 2.0, 4.0), 1100.0),
    ("AV", (125, 215, 240), (3.0, 3.0, 3.0), 600.0),
]


def chest_ct(seed: int = 0) -> tuple[Volume, pd.DataFrame]:
    """The phantom (HU, int16) and its annotation points (LPS mm)."""
    rng = np.random.default_rng(seed)
    g = Geometry(
        origin=(-179.2, -179.2, -345.0),
        spacing=(PIXEL_MM, PIXEL_MM, INCREMENT_MM),
        slice_thickness_mm=THICKNESS_MM,
    )
    yy, xx = np.mgrid[0:MATRIX, 0:MATRIX].astype(np.float32)
    body = ((xx - 256) / 230) ** 2 + ((yy - 256) / 170) ** 2 <= 1
    lungs = (((np.abs(xx - 256) - 110) / 75) ** 2 + ((yy - 240) / 110) ** 2 <= 1) & (
        np.abs(xx - 256) > 45
    )
    r_body = np.sqrt(((xx - 256) / 230) ** 2 + ((yy - 256) / 170) ** 2)
    ribs = (r_body > 0.86) & (r_body < 0.92)
    spine_r = np.hypot(xx - 256, yy - 370)
    aorta_r = np.hypot(xx - 300, yy - 330)
    sternum = (np.abs(xx - 256) < 18) & (np.abs(yy - 95) < 6)
    plane = np.full((MATRIX, MATRIX), -1000.0, dtype=np.float32)
    plane[body] = 40.0
    plane[lungs] = -850.0
    plane[spine_r < 22] = 250.0
    plane[(spine_r >= 22) & (spine_r < 28)] = 750.0
    plane[aorta_r < 14] = 45.0
    plane[sternum] = 450.0
    hu = np.empty((N_SLICES, MATRIX, MATRIX), dtype=np.int16)
    for k in range(N_SLICES):
        s = plane + rng.normal(0.0, NOISE_HU, plane.shape).astype(np.float32)
        rib_band = ribs & (np.sin(np.arctan2(yy - 256, xx - 256) * 12 + k * 0.05) > 0.6)
        s[rib_band] = 600.0
        if k % 9 < 3:  # patchy aortic wall calcification
            s[(aorta_r >= 12) & (aorta_r < 14) & (xx > 300)] = 500.0
        hu[k] = np.clip(s, -1024, 3000).astype(np.int16)
    rows = []
    for label, (cz, cy, cx), (ax, ay, az), peak in LESIONS:
        _add_lesion(hu, (cz, cy, cx), (ax, ay, az), peak)
        x, y, z = g.index_to_world(np.array([cx, cy, cz], dtype=float))
        rows.append({"x": x, "y": y, "z": z, "label": label})
    return Volume(hu, g, {"series_uid": "bench"}), pd.DataFrame(rows)


def _add_lesion(
    hu: np.ndarray, centre: tuple[int, int, int], axes_mm: tuple[float, float, float], peak: float
) -> None:
    """A Gaussian-profile calcification (axes in mm) added onto the soft tissue."""
    cz, cy, cx = centre
    ax, ay, az = axes_mm
    rz, ry, rx = (
        int(np.ceil(3 * a / s)) for a, s in ((az, INCREMENT_MM), (ay, PIXEL_MM), (ax, PIXEL_MM))
    )
    z, y, x = np.mgrid[-rz : rz + 1, -ry : ry + 1, -rx : rx + 1].astype(float)
    d2 = (x * PIXEL_MM / ax) ** 2 + (y * PIXEL_MM / ay) ** 2 + (z * INCREMENT_MM / az) ** 2
    blob = (peak - 40.0) * np.exp(-d2)
    sl = (slice(cz - rz, cz + rz + 1), slice(cy - ry, cy + ry + 1), slice(cx - rx, cx + rx + 1))
    hu[sl] = np.maximum(hu[sl], (40.0 + blob).astype(np.int16))


def _median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    vol, points = chest_ct()
    conv = ScoringConventions()
    n_bone = int(np.count_nonzero(vol.array >= conv.threshold_hu))
    t_ref, (mask, report) = _median_time(lambda: reference_labels(vol, points, conv), args.repeat)
    t_score, (scores, lesions) = _median_time(
        lambda: score_volume(
            vol, mask, conv, series_uid="bench", method="reference", patient_id=None
        ),
        args.repeat,
    )
    worst = np.where(vol.array >= conv.threshold_hu, np.uint8(1), np.uint8(0))
    t_worst, _ = _median_time(
        lambda: score_volume(vol, worst, conv, series_uid="bench", method="m", patient_id=None),
        args.repeat,
    )
    total = scores.set_index("artery").loc["total"]
    print(
        f"score benchmark: {N_SLICES} x {MATRIX} x {MATRIX} int16, "
        f"{THICKNESS_MM}/{INCREMENT_MM} mm, "
        f"{n_bone} voxels >= {conv.threshold_hu:.0f} HU, {len(points)} points "
        f"({int(report['matched'].sum())} matched), {len(lesions)} lesions, "
        f"total Agatston {total['agatston']:.1f}: reference_labels {t_ref:.3f} s, "
        f"score_volume {t_score:.3f} s (target < {TARGET_S:.0f} s, one core); "
        f"score_volume with every calcium voxel labelled (bone too) {t_worst:.3f} s"
    )
    if t_score > TARGET_S:
        raise SystemExit(f"score benchmark too slow: {t_score:.2f} s > {TARGET_S:.0f} s")


if __name__ == "__main__":
    main()
