"""Inference of the ``segment`` method: label masks on the analysis grid and the per-batch
triage table.

Per series (array axis order (z, y, x)): the heart-centred coarse crop
(:func:`.data.plan_crop`) goes through each ensemble network with MONAI's
:func:`~monai.inferers.sliding_window_inference` (windows of ``segment.window_voxels``,
default the whole crop: one pass of the fully convolutional network, which sees the crop's
position channels; 27 overlapping training-size windows cost 8 times as much on CPU);
softmax class probabilities are interpolated (trilinear) at the analysis grid's candidate
voxels (>= the calcium threshold, inside the crop) and each network's most probable class
is its vote; the voxel takes the majority (:func:`.data.majority_vote`), then every
26-connected (``scoring.connectivity``) candidate component the majority of its voxels
(:func:`.data.component_vote`, config ``segment.component_vote``). Voxels below the
threshold and outside the crop stay background, so no label ever lies below the threshold;
nor does one on a component that reaches the metal peak
(:data:`cacflow.conventions.METAL_MIN_HU`: stents, wires, clips). With the anatomy gate
(config ``segment.anatomy_gate``, default on; :func:`coronary_accepted`) a coronary label
stays only on a component that the ``hu-threshold`` anatomy accepts as coronary, and the
triage looks only at those components' coarse voxels.

Triage (seed 003): each network's scan score is the largest coronary probability (LAD +
LCX + RCA + LM) over the crop's candidate coarse voxels, divided by that network's
operating point (:mod:`.triage`); the ensemble's ``triage_score`` is the largest of these
ratios and a scan is called CAC-negative when it is below 1 (every network below its own
operating point). The operating points were chosen on the validation splits without the
gate; the gate can only lower a scan's score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cc3d
import numpy as np
import torch
from monai.inferers import sliding_window_inference
from scipy import ndimage

from cacflow.calcium import without_metal
from cacflow.heart import Heart, find_heart
from cacflow.methods.segment.data import (
    CORONARY,
    N_CLASSES,
    Crop,
    candidate_points,
    coarse_any,
    coarse_inputs,
    component_vote,
    majority_vote,
    plan_crop,
    to_coarse,
)
from cacflow.methods.segment.model import build_members, load_checkpoint
from cacflow.methods.segment.triage import TRIAGE_FILE
from cacflow.methods.torchutil import configure, resolve_device, sha256_of
from cacflow.volume import Volume

DEFAULT_ENSEMBLE = 3
SW_OVERLAP = 0.25
"""Overlap of the sliding windows (share of the window)."""
"""Per-batch triage table written beside the label masks."""


@dataclass
class SegmentModel:
    """Loaded ensemble: networks, their operating points and the grid conventions."""

    nets: list[torch.nn.Module]
    thresholds: list[float]
    config: dict[str, Any]
    device: torch.device
    sha256: str

    @classmethod
    def load(
        cls, path: Path, device: str = "auto", settings: dict[str, Any] | None = None
    ) -> SegmentModel:
        """The first ``segment.ensemble`` networks of the weights file (one with
        ``segment.single_model``); ValueError when the file holds fewer."""
        s = settings or {}
        k = 1 if s.get("single_model") else int(s.get("ensemble", DEFAULT_ENSEMBLE))
        ckpt = load_checkpoint(path)
        have = len(ckpt["members"])
        if k > have:
            raise ValueError(f"{path}: holds {have} models, segment.ensemble asks for {k}")
        dev = resolve_device(device)
        nets = [n.to(dev) for n in build_members(ckpt, k)]
        thresholds = [float(m["triage_threshold"]) for m in ckpt["members"][:k]]
        return cls(nets, thresholds, dict(ckpt["config"]), dev, sha256_of(path))


def coarse_probabilities(
    nets: list[torch.nn.Module], x: np.ndarray, window: int, device: torch.device
) -> np.ndarray:
    """(k, N_CLASSES, *crop) softmax probabilities of each network for input ``x``
    (2, *crop); voxels without a candidate (channel 1 == 0) are background."""
    t = torch.from_numpy(x)[None].to(device)
    out = []
    with torch.no_grad():
        for net in nets:
            logits = sliding_window_inference(
                t, (window,) * 3, sw_batch_size=2, predictor=net, overlap=SW_OVERLAP
            )
            out.append(torch.softmax(logits, dim=1)[0].cpu().numpy())
    probs = np.stack(out).astype(np.float32)
    empty = x[1] <= 0
    probs[:, :, empty] = 0.0
    probs[:, 0, empty] = 1.0
    return probs


def triage_scores(probs: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(k,) largest coronary probability of each network over the candidate coarse voxels
    (0 without candidates)."""
    if not candidates.any():
        return np.zeros(probs.shape[0])
    coronary = probs[:, list(CORONARY)].sum(axis=1)  # (k, *crop)
    return coronary[:, candidates].max(axis=1)


def triage_ratio(scores: np.ndarray, thresholds: list[float]) -> float:
    """Largest score / operating point over the networks (inf where a point is 0)."""
    t = np.asarray(thresholds, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(t > 0, np.asarray(scores) / np.where(t > 0, t, 1.0), np.inf)
    return float(r.max())


def voxel_votes(probs: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """(k, n) most probable class of each network at continuous coarse coordinates
    ``coords`` (n, 3), probabilities interpolated trilinearly (edges: nearest)."""
    k = probs.shape[0]
    votes = np.zeros((k, len(coords)), dtype=np.uint8)
    if not len(coords):
        return votes
    for m in range(k):
        p = np.stack(
            [
                ndimage.map_coordinates(probs[m, c], coords.T, order=1, mode="nearest")
                for c in range(N_CLASSES)
            ]
        )
        votes[m] = p.argmax(axis=0)
    return votes


def label_candidates(
    hu: np.ndarray,
    crop: Crop,
    probs: np.ndarray,
    threshold_hu: float,
    connectivity: int = 26,
    by_component: bool = True,
) -> np.ndarray:
    """The label mask (uint8, ``hu.shape``): voted labels at the candidates inside the
    crop, 0 everywhere else."""
    mask = np.zeros(hu.shape, dtype=np.uint8)
    pts = candidate_points(hu, crop, threshold_hu)
    if not len(pts):
        return mask
    labels = majority_vote(voxel_votes(probs, to_coarse(pts, crop)))
    if by_component:
        lo = pts.min(axis=0)
        hi = pts.max(axis=0) + 1
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        comps = cc3d.connected_components(
            hu[box] >= threshold_hu, connectivity=connectivity, out_dtype=np.uint32
        )
        ids = comps[tuple((pts - lo).T)]
        labels = component_vote(labels, ids)
    mask[tuple(pts.T)] = labels
    return mask


def coronary_accepted(vol: Volume, threshold_hu: float, heart: Heart | None) -> np.ndarray:
    """The anatomy gate: boolean mask (``vol``'s grid) of the calcium voxels (>=
    ``threshold_hu``) whose component the ``hu-threshold`` method's anatomy accepts as
    coronary (:func:`cacflow.methods.hu_threshold.coronary_candidates`: in the coronary
    zone round the heart, not metal, not touching air, wrapped in epicardial fat, neither
    valve nor back of the atria); ``heart``: ``vol``'s (:func:`cacflow.heart.find_heart`),
    all False when none was found (None). The coarse (3 mm)
    network alone labels bright non-calcium spots of real scans (bone edges, vessel walls,
    kernel overshoot) as coronary; only its coronary labels are gated, AV, MV, TAC and
    other calcium are kept."""
    from cacflow.methods.hu_threshold import coronary_candidates

    if heart is None:
        return np.zeros(np.shape(vol.array), dtype=bool)
    components, keep = coronary_candidates(vol, heart, threshold_hu)
    return keep[components]


def predict_volume(
    model: SegmentModel,
    vol: Volume,
    threshold_hu: float,
    connectivity: int = 26,
    by_component: bool = True,
    window: int | None = None,
    heart_cache: Path | None = None,
    gate: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``(label mask, triage row)`` of one analysis volume (HU, (z, y, x)); ``window``:
    sliding-window side (coarse voxels; default the whole crop); ``heart_cache``: the
    resample step's heart of ``vol``; ``gate``: apply :func:`coronary_accepted` to the
    coronary labels and the triage score."""
    cfg = model.config
    hu = np.asarray(vol.array)
    heart = find_heart(vol, heart_cache)  # once: for the crop and the gate
    crop = plan_crop(vol, float(cfg["spacing_mm"]), int(cfg["crop_voxels"]), heart=heart)
    x = coarse_inputs(hu, crop, threshold_hu)
    side = min(int(window or cfg["crop_voxels"]), int(cfg["crop_voxels"]))
    probs = coarse_probabilities(model.nets, x, side, model.device)
    mask = label_candidates(hu, crop, probs, threshold_hu, connectivity, by_component)
    mask = without_metal(mask, hu, threshold_hu, connectivity)  # stents, wires: no calcium
    candidates = x[1] > 0
    if gate:
        accepted = coronary_accepted(vol, threshold_hu, heart)
        mask[np.isin(mask, CORONARY) & ~accepted] = 0
        candidates &= coarse_any(accepted, crop)
    scores = triage_scores(probs, candidates)
    ratio = triage_ratio(scores, model.thresholds)
    row = {
        "triage_score": ratio,
        "triage_negative": bool(ratio < 1.0),
        "n_models": len(model.nets),
        "crop_centred_on": crop.centred_on,
    }
    return mask, row


def infer_dir(
    images: Path,
    out_dir: Path,
    *,
    scoring: dict[str, Any] | None = None,
    model: Path | None = None,
    device: str = "auto",
    settings: dict[str, Any] | None = None,
) -> int:
    """The registry's ``infer`` entry point: ``<series_uid>.nii`` label masks and
    :data:`TRIAGE_FILE` in ``out_dir`` for every analysis volume of ``images``."""
    import pandas as pd

    from cacflow.conventions import ScoringConventions
    from cacflow.heart import HEART_SUFFIX
    from cacflow.provenance import provenance, write_table
    from cacflow.score import write_labels
    from cacflow.volume import each_volume

    if model is None:
        raise ValueError("method 'segment' needs model weights (--model)")
    s = settings or {}
    conv = ScoringConventions.from_config(scoring or {})
    dev = resolve_device(device)
    configure(0, s.get("threads"), dev)
    net = SegmentModel.load(Path(model), device, s)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for uid, vol in each_volume(images, "infer segment"):
        mask, row = predict_volume(
            net,
            vol,
            conv.threshold_hu,
            conv.connectivity if conv.connectivity in (6, 18, 26) else 26,
            bool(s.get("component_vote", True)),
            s.get("window_voxels"),
            heart_cache=Path(images) / f"{uid}{HEART_SUFFIX}",
            gate=bool(s.get("anatomy_gate", True)),
        )
        write_labels(mask, vol, out / f"{uid}.nii")
        rows.append({"series_uid": uid, **row})
    cols = ["series_uid", "triage_score", "triage_negative", "n_models", "crop_centred_on"]
    table = pd.DataFrame(rows, columns=cols)
    meta = provenance(conventions={"model_sha256": net.sha256})
    write_table(table, out / TRIAGE_FILE, meta)
    return len(rows)
