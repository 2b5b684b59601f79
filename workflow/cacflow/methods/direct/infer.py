"""Inference of the direct method: per-slice pseudo-Agatston predictions and their scores.

For every analysis volume (``<series_uid>.nii``, HU, (z, y, x)): find its heart box with
the classical heart localiser (:mod:`.localise`; when no heart is found, register it to
the atlas instead: one pass of the registration network on the coarse grid, and take the
atlas heart box), select the slices and window holding the box (:mod:`.register`), run
the scoring network on all selected slices in batches, and convert the predicted scores
from pixels x weight to mm^2 x weight with the volume's pixel area. Slices outside the
selection are predicted 0. A slice whose
predicted score is below :data:`MIN_SLICE_SCORE_PX` (half of the smallest possible
non-zero score, one voxel of weight 1) is set to 0.

Outputs of :func:`infer_dir` in ``out_dir``:

- ``slice_predictions.parquet``: one row per series x slice x artery: ``series_uid``,
  ``slice`` (z index of the analysis volume), ``artery`` (LAD, LCX, RCA),
  ``pseudo_agatston`` (mm^2 x weight; the slice's Agatston contribution before the
  increment factor);
- ``registration.parquet``: one row per series: ``localiser`` (``heart`` or
  ``registration``), the six transform parameters, the first and last selected slice
  and the window (pixel indices of the network's grid: :func:`network_volume`);
- ``<series_uid>_heatmap.nii`` for the first ``heatmaps`` series (by name): decision
  feedback, the scoring network's density (all arteries) upsampled to the image grid
  (cubic), non-negative, scaled so that each slice's voxels sum to its predicted score in
  mm^2 x weight.

:func:`.scores.scores_from_predictions` (torch-free, used by the score step) turns the
slice table into per-series Agatston scores.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from cacflow.conventions import ARTERIES
from cacflow.heart import HEART_SUFFIX
from cacflow.methods.direct.atlas import HeartBox, Transform, raw_to_params, registration_grid
from cacflow.methods.direct.atlas import transforms_from_params as _transforms
from cacflow.methods.direct.localise import heart_frame
from cacflow.methods.direct.model import POOLING, build_networks, load_checkpoint
from cacflow.methods.direct.register import CropPlan, window_of
from cacflow.methods.direct.runtime import configure, resolve_device
from cacflow.methods.direct.scores import PREDICTION_COLUMNS, PREDICTIONS_FILE
from cacflow.provenance import provenance, write_table
from cacflow.volume import (
    HEATMAP_SUFFIX,
    Geometry,
    Volume,
    list_volumes,
    read_volume,
    write_volume,
)

REGISTRATION_FILE = "registration.parquet"
MIN_SLICE_SCORE_PX = 0.5
"""Predicted slice scores below this (pixels x weight) are 0: half a voxel of weight 1."""
DEFAULT_BATCH_SLICES = 128
"""Slices per forward pass of the scoring network."""
DEFAULT_HEATMAPS = 3
"""Series (first by name) that get a decision-feedback heatmap volume."""
HEATMAP_ORDER = 3
"""Spline order of the heatmap upsampling (cubic, as in the paper)."""
INFERENCE_SEED = 0


@dataclass
class DirectModel:
    """The loaded networks and what inference needs from the weights file."""

    registration: torch.nn.Module
    scoring: torch.nn.Module
    box: HeartBox
    threshold_hu: float
    device: torch.device
    sha256: str = ""

    @classmethod
    def load(cls, path: Path, device: str = "auto") -> DirectModel:
        """Verify and load a weights file (see :func:`.model.load_checkpoint`)."""
        from cacflow.methods.direct.model import sha256_of

        ckpt = load_checkpoint(path)
        reg, score = build_networks(ckpt)
        dev = resolve_device(device)
        cfg = ckpt["config"]
        box = HeartBox(tuple(cfg["box_lo"]), tuple(cfg["box_hi"]))
        return cls(
            reg.to(dev), score.to(dev), box, float(cfg["threshold_hu"]), dev, sha256_of(path)
        )


@dataclass
class VolumePrediction:
    """Per-slice predictions of one volume: ``scores_px`` (n_slices, 3) pixels x weight for
    every slice of the volume; ``density`` (selected slices, 3, h/8, w/8) when kept."""

    transform: Transform
    plan: CropPlan
    scores_px: np.ndarray
    density: np.ndarray | None
    localiser: str = "heart"
    grid: Geometry | None = None
    """The grid the scoring network ran on (pixels of ``scores_px`` and ``plan``): the
    analysis grid, or its in-plane resampling (:func:`network_volume`); None: the volume's."""
    grid_shape: tuple[int, int] | None = None
    """(rows, columns) of that grid."""


def network_volume(vol: Volume, min_pixel_mm: float) -> Volume:
    """``vol`` itself when its pixels are at least ``min_pixel_mm`` (config
    ``direct.min_pixel_mm``), else the same field of view resampled in-plane (linear, slice
    by slice; slices unchanged) to the nearest whole number of pixels of at least that
    size. The scoring network counts calcium in pixels with a receptive field in pixels:
    trained on 0.78-0.84 mm real backgrounds (and synthetic scans), it scored 130-6,000 on
    CAC-free to moderate gated-geometry copies with 0.31-0.39 mm pixels (README). The
    array centre stays at the same point, so a heart frame found on ``vol`` applies."""
    g = vol.geometry
    rows, cols = vol.array.shape[1:]
    if min(g.spacing[0], g.spacing[1]) >= min_pixel_mm:
        return vol
    new_rows = max(int(rows * g.spacing[1] / min_pixel_mm), 1)
    new_cols = max(int(cols * g.spacing[0] / min_pixel_mm), 1)
    arr = ndimage.zoom(
        np.asarray(vol.array, dtype=np.float32),
        (1.0, new_rows / rows, new_cols / cols),
        order=1,
        mode="nearest",
        grid_mode=True,
    )
    geom = g.regridded(rows, cols, arr.shape[1], arr.shape[2])
    return Volume(arr, geom, dict(vol.meta))


def register_volumes(model: DirectModel, vols: list[Volume]) -> list[Transform]:
    """Atlas transforms of volumes (one batched pass of the registration network)."""
    grids = torch.stack([registration_grid(v.array, tuple(v.geometry.spacing)) for v in vols]).to(
        model.device
    )
    with torch.inference_mode():
        params = raw_to_params(model.registration(grids))
    return _transforms(params)


def predict_volume(
    model: DirectModel,
    vol: Volume,
    *,
    batch_slices: int = DEFAULT_BATCH_SLICES,
    keep_density: bool = False,
    transform: Transform | None = None,
    box: HeartBox | None = None,
    heart_cache: Path | None = None,
    min_pixel_mm: float = 0.0,
) -> VolumePrediction:
    """Predict every slice's scores of ``vol`` in its heart box.

    The box comes from ``transform`` and ``box`` when given, else from the heart localiser
    (:func:`.localise.heart_frame`), else (no heart found) from atlas registration and the
    model's atlas heart box. ``heart_cache``: the resample step's heart of ``vol``. The
    network runs on :func:`network_volume` (``min_pixel_mm``; 0: the analysis grid).
    """
    localiser = "given"
    if transform is None:
        frame = heart_frame(vol, heart_cache)
        if frame is not None:
            transform, box, localiser = frame.transform, frame.box, "heart"
        else:
            transform, localiser = register_volumes(model, [vol])[0], "registration"
    box = model.box if box is None else box
    vol = network_volume(vol, min_pixel_mm)
    spacing = tuple(float(s) for s in vol.geometry.spacing)
    plan, x = window_of(vol.array, spacing, transform, box, model.threshold_hu)
    sums, dens = [], []
    with torch.inference_mode():
        for start in range(0, len(x), batch_slices):
            xb = torch.from_numpy(x[start : start + batch_slices]).to(model.device)
            xb = xb.contiguous(memory_format=torch.channels_last)
            d = model.scoring(xb)
            sums.append(d.sum(dim=(2, 3)).cpu().double().numpy())
            if keep_density:
                dens.append(d.cpu().float().numpy())
    scores = np.zeros((vol.array.shape[0], len(ARTERIES)), dtype=np.float64)
    if len(plan.slices):
        selected = np.concatenate(sums)
        selected[selected < MIN_SLICE_SCORE_PX] = 0.0
        scores[plan.slices] = selected
    density = np.concatenate(dens) if keep_density and dens else None
    shape = (int(vol.array.shape[1]), int(vol.array.shape[2]))
    return VolumePrediction(transform, plan, scores, density, localiser, vol.geometry, shape)


def prediction_rows(series_uid: str, pred: VolumePrediction, geometry: Geometry) -> pd.DataFrame:
    """Long table (PREDICTION_COLUMNS) of one volume, scores in mm^2 x weight (pixels of
    the network's grid, ``pred.grid``, else of ``geometry``)."""
    n = pred.scores_px.shape[0]
    geometry = pred.grid or geometry
    return pd.DataFrame(
        {
            "series_uid": series_uid,
            "slice": np.repeat(np.arange(n, dtype=np.int64), len(ARTERIES)),
            "artery": np.tile(np.array(ARTERIES, dtype=object), n),
            "pseudo_agatston": pred.scores_px.ravel() * geometry.pixel_area_mm2,
        }
    )


def heatmap(vol: Volume, pred: VolumePrediction) -> np.ndarray:
    """Decision-feedback volume (z, y, x) float32 in mm^2 x weight per voxel (see module)
    on ``vol``'s grid; a map made on a resampled network grid is brought back to it
    (linear) with each slice's sum kept."""
    if pred.grid is not None and pred.grid_shape != tuple(vol.array.shape[1:]):
        n = vol.array.shape[0]
        small = heatmap(Volume(np.zeros((n, *pred.grid_shape), np.float32), pred.grid), pred)
        zoom = (1.0, vol.array.shape[1] / small.shape[1], vol.array.shape[2] / small.shape[2])
        up = np.clip(ndimage.zoom(small, zoom, order=1, grid_mode=True, mode="nearest"), 0, None)
        sums, got = small.sum(axis=(1, 2)), up.sum(axis=(1, 2))
        scale = np.divide(sums, got, out=np.zeros_like(sums), where=got > 0)
        return (up * scale[:, None, None]).astype(np.float32)
    out = np.zeros(vol.array.shape, dtype=np.float32)
    if pred.density is None or not len(pred.plan.slices):
        return out
    p = pred.plan
    h, w = vol.array.shape[1:]
    ys, ye = max(p.y0, 0), min(p.y0 + p.height, h)
    xs, xe = max(p.x0, 0), min(p.x0 + p.width, w)
    total = pred.density.sum(axis=1)  # (n, h/8, w/8)
    for k, z in enumerate(p.slices):
        target = pred.scores_px[z].sum()
        if target <= 0 or ys >= ye or xs >= xe:
            continue
        up = np.clip(ndimage.zoom(total[k], POOLING, order=HEATMAP_ORDER), 0.0, None)
        part = up[ys - p.y0 : ye - p.y0, xs - p.x0 : xe - p.x0]
        if part.sum() > 0:
            out[z, ys:ye, xs:xe] = part * (target / part.sum()) * vol.geometry.pixel_area_mm2
    return out


def _registration_row(uid: str, pred: VolumePrediction) -> dict[str, object]:
    sl = pred.plan.slices
    return {
        "series_uid": uid,
        "localiser": pred.localiser,
        **pred.transform.as_dict(),
        "first_slice": int(sl[0]) if len(sl) else -1,
        "last_slice": int(sl[-1]) if len(sl) else -1,
        "window_y0": pred.plan.y0,
        "window_x0": pred.plan.x0,
        "window_height": pred.plan.height,
        "window_width": pred.plan.width,
    }


def infer_dir(
    images: Path,
    out_dir: Path,
    *,
    model: Path,
    device: str = "auto",
    threads: int | None = None,
    heatmaps: int = DEFAULT_HEATMAPS,
    batch_slices: int = DEFAULT_BATCH_SLICES,
    min_pixel_mm: float | None = None,
) -> int:
    """Predict every volume of ``images`` into ``out_dir`` (see the module docstring).

    ``model``: weights file (sha256-checked). ``device``: auto, cpu or cuda.
    ``min_pixel_mm``: :func:`network_volume` (None: config ``direct.min_pixel_mm``'s
    default). Returns the number of series.
    """
    if min_pixel_mm is None:
        from cacflow.config import default_of

        min_pixel_mm = float(default_of("direct")["min_pixel_mm"])
    if model is None:
        raise ValueError("direct: --model (weights file) is required")
    dev = resolve_device(device)
    configure(INFERENCE_SEED, threads, dev)
    net = DirectModel.load(Path(model), device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = list_volumes(images)
    rows, regs = [], []
    for i, path in enumerate(paths, 1):
        t0 = time.perf_counter()
        vol = read_volume(path)
        uid = path.stem
        want_map = i <= heatmaps
        pred = predict_volume(
            net,
            vol,
            batch_slices=batch_slices,
            keep_density=want_map,
            heart_cache=Path(images) / f"{uid}{HEART_SUFFIX}",
            min_pixel_mm=min_pixel_mm,
        )
        rows.append(prediction_rows(uid, pred, vol.geometry))
        regs.append(_registration_row(uid, pred))
        if want_map:
            meta = {"series_uid": uid, "content": "direct decision feedback, mm2 x weight"}
            write_volume(
                Volume(heatmap(vol, pred), vol.geometry, meta),
                out_dir / f"{uid}{HEATMAP_SUFFIX}.nii",
            )
        dt = time.perf_counter() - t0
        print(f"infer direct: {i}/{len(paths)} {uid} {dt:.2f} s", flush=True)
    table = (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame({c: pd.Series(dtype=object) for c in PREDICTION_COLUMNS})
    )
    meta = provenance(conventions={"model": os.fspath(model), "model_sha256": net.sha256})
    write_table(table[list(PREDICTION_COLUMNS)], out_dir / PREDICTIONS_FILE, meta)
    write_table(pd.DataFrame(regs, columns=_REG_COLUMNS), out_dir / REGISTRATION_FILE, meta)
    return len(paths)


def infer_for_registry(
    images: Path,
    out_dir: Path,
    *,
    scoring: dict | None = None,
    model: Path | None = None,
    device: str = "auto",
    settings: dict | None = None,
) -> int:
    """The registry's ``infer`` entry point (:mod:`cacflow.methods.registry`):
    :func:`infer_dir` with the weights ``model`` and ``settings`` (config section
    ``direct``: ``min_pixel_mm``); the scoring conventions are the model's own (set at
    training)."""
    mp = (settings or {}).get("min_pixel_mm")
    return infer_dir(
        images, out_dir, model=model, device=device, min_pixel_mm=None if mp is None else float(mp)
    )


_REG_COLUMNS = [
    "series_uid",
    "localiser",
    "tx",
    "ty",
    "tz",
    "theta",
    "s_xy",
    "s_z",
    "first_slice",
    "last_slice",
    "window_y0",
    "window_x0",
    "window_height",
    "window_width",
]
