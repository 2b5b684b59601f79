"""Training of the ``segment`` ensemble from analysis volumes and reference label masks.

1. **Crops.** Every scan's heart-centred coarse crop (:mod:`.data`): inputs (2 channels)
   and targets (the most frequent reference label of each block; reference masks come
   from the point annotations, :mod:`cacflow.reference`).
2. **Split.** Per ensemble member ``m`` (seed ``seed + m``), ``validation_fraction`` of
   each training dataset's scans are held out (a different random split per member:
   the members differ in their folds and their seeds).
3. **Patches.** Mini-batches of ``batch`` patches of ``patch_voxels`` a side; each dataset
   gets an equal share. A patch is centred on a labelled calcium voxel with probability
   :data:`LESION_P`, on any candidate voxel with :data:`CANDIDATE_P`, anywhere otherwise.
   Augmentation: MONAI :class:`~monai.transforms.RandAffined` (small rotations and scales,
   inputs bilinear, targets nearest; no flips: left and right tell the arteries apart)
   and, on the anatomy channel only, Gaussian smoothing (kernel), Gaussian noise, and
   intensity scale and shift; the calcium channel keeps its values (the candidates).
4. **Loss.** MONAI :class:`~monai.losses.DiceCELoss` (softmax, Dice over the calcium
   classes and the batch, cross-entropy weighted per class by the inverse square root of
   the class's share of the training candidates, :func:`class_weights`). The logits of
   voxels without a candidate are replaced by a certain background before the loss: at
   inference those voxels are background whatever the network says (seed 002), so the
   loss is spent on the candidates.
5. **Early stopping.** After each epoch of ``iterations`` mini-batches the loss on the
   member's validation crops (whole crops, no augmentation; at most
   :data:`MAX_VALIDATION_LOSS_SCANS` scans); training stops after ``patience`` epochs
   without improvement and the best epoch's weights are kept.
6. **Triage operating point** (seed 003, :mod:`.triage`): from the member's scores on its
   validation scans (over the candidates the anatomy gate lets through, as at inference:
   :func:`.infer.coronary_accepted`), the largest value that calls no scan with reference
   coronary calcium negative.

Writes the weights file, ``<out>.sha256`` and ``<out>.json`` (training facts for the model
card).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cacflow.conventions import ScoringConventions
from cacflow.heart import HEART_SUFFIX, find_heart
from cacflow.methods.segment.data import (
    CORONARY,
    N_CLASSES,
    coarse_any,
    coarse_inputs,
    coarse_targets,
    plan_crop,
)
from cacflow.methods.segment.infer import (
    coarse_probabilities,
    coronary_accepted,
    triage_scores,
)
from cacflow.methods.segment.model import build_unet, make_checkpoint
from cacflow.methods.segment.settings import SegmentTrainSettings
from cacflow.methods.segment.triage import operating_point
from cacflow.methods.torchutil import configure, resolve_device, save_checkpoint
from cacflow.methods.trainutil import (
    dataset_of,
    find_pairs,
    fit_with_early_stopping,
    split_validation,
)
from cacflow.volume import read_volume

LESION_P = 0.6
CANDIDATE_P = 0.3
"""Patch centring: on a labelled voxel, on a candidate voxel; the rest anywhere."""
MAX_VALIDATION_LOSS_SCANS = 8
"""Validation scans (the first of the member's split) on which the per-epoch loss is
computed (all of them give the triage operating point)."""
MAX_CLASS_WEIGHT = 20.0
BACKGROUND_LOGIT = 30.0
"""Background logit given to voxels without a candidate before the loss (others 0)."""
AFFINE = {"rotate_range": (0.1, 0.1, 0.1), "scale_range": (0.1, 0.1, 0.1), "prob": 0.5}
"""MONAI RandAffined ranges (radians, relative scale)."""
NOISE_SD = 0.02
SMOOTH_SIGMA = (0.25, 1.0)
INTENSITY = 0.05
"""Anatomy-channel augmentation (channel units: 1200 HU): noise SD, smoothing sigma range
(coarse voxels), intensity scale and shift (+-)."""


@dataclass
class _Scan:
    x: np.ndarray  # (2, c, c, c) float32 inputs
    y: np.ndarray  # (c, c, c) uint8 targets
    uid: str
    group: str
    positive: bool  # reference coronary calcium
    centred_on: str
    accepted: np.ndarray  # (c, c, c) bool: coarse voxels the anatomy gate lets through


def prepare_scan(vol_path: Path, lab_path: Path, s: SegmentTrainSettings, threshold: float):
    vol = read_volume(vol_path)
    lab = read_volume(lab_path).array
    cache = vol_path.with_name(f"{vol_path.stem}{HEART_SUFFIX}")  # the resample step's
    heart = find_heart(vol, cache)  # once: for the crop and the gate
    crop = plan_crop(vol, s.spacing_mm, s.crop_voxels, heart=heart)
    positive = bool(np.isin(lab, CORONARY).any())
    x = coarse_inputs(np.asarray(vol.array), crop, threshold)
    y = coarse_targets(lab, crop)
    accepted = coarse_any(coronary_accepted(vol, threshold, heart), crop)
    return _Scan(x, y, vol_path.stem, dataset_of(vol_path), positive, crop.centred_on, accepted)


def class_weights(scans: list[_Scan]) -> np.ndarray:
    """Cross-entropy weight per class: ``(share of background / share of the class)^0.5``
    among the candidate coarse voxels (at most :data:`MAX_CLASS_WEIGHT`; 1 for classes
    absent from training)."""
    counts = np.zeros(N_CLASSES)
    for sc in scans:
        cand = sc.x[1] > 0
        counts += np.bincount(sc.y[cand | (sc.y > 0)], minlength=N_CLASSES)[:N_CLASSES]
    w = np.ones(N_CLASSES)
    seen = counts > 0
    if seen[0]:
        w[seen] = np.sqrt(counts[0] / counts[seen])
    return np.clip(w, 1.0, MAX_CLASS_WEIGHT).astype(np.float32)


def masked_logits(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logits with a certain background where there is no candidate and no target."""
    cand = (x[:, 1:2] > 0) | (y > 0)
    fixed = torch.zeros_like(logits)
    fixed[:, 0] = BACKGROUND_LOGIT
    return torch.where(cand, logits, fixed)


def _augmenters(seed: int):
    from monai.transforms import (
        RandAffined,
        RandGaussianNoise,
        RandGaussianSmooth,
        RandScaleIntensity,
        RandShiftIntensity,
    )

    sig = SMOOTH_SIGMA
    spatial = RandAffined(
        keys=("image", "label"), mode=("bilinear", "nearest"), padding_mode="zeros", **AFFINE
    )
    intensity = [
        RandGaussianSmooth(sigma_x=sig, sigma_y=sig, sigma_z=sig, prob=0.3),
        RandGaussianNoise(prob=0.5, std=NOISE_SD),
        RandScaleIntensity(factors=INTENSITY, prob=0.5),
        RandShiftIntensity(offsets=INTENSITY, prob=0.5),
    ]
    for i, t in enumerate([spatial, *intensity]):
        t.set_random_state(seed=seed + i)
    return spatial, intensity


def _as_array(t) -> np.ndarray:
    return np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float32)


def _patch_start(sc: _Scan, p: int, rng: np.random.Generator) -> np.ndarray:
    c = np.asarray(sc.y.shape)
    u = rng.random()
    pool = None
    if u < LESION_P:
        pool = np.argwhere(sc.y > 0)
    elif u < LESION_P + CANDIDATE_P:
        pool = np.argwhere(sc.x[1] > 0)
    if pool is not None and len(pool):
        centre = pool[rng.integers(len(pool))] + rng.integers(-p // 4, p // 4 + 1, size=3)
        start = centre - p // 2
    else:
        start = rng.integers(0, c - p + 1)
    return np.clip(start, 0, c - p)


def _batch(scans, weights, s, rng, augment) -> tuple[torch.Tensor, torch.Tensor]:
    p = s.patch_voxels
    xs, ys = [], []
    for i in rng.choice(len(scans), s.batch, p=weights):
        sc = scans[i]
        z, y, x = _patch_start(sc, p, rng)
        box = (slice(z, z + p), slice(y, y + p), slice(x, x + p))
        img, lab = sc.x[(slice(None), *box)], sc.y[box][None].astype(np.float32)
        if augment is not None:
            spatial, intensity = augment
            d = spatial({"image": img, "label": lab})
            img, lab = _as_array(d["image"]).copy(), _as_array(d["label"])
            anatomy = img[0:1]
            for t in intensity:
                anatomy = _as_array(t(anatomy))
            img[0:1] = np.clip(anatomy, 0.0, 1.0)
        xs.append(img)
        ys.append(np.rint(lab))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)).long()


def _loss_fn(weights: np.ndarray, device):
    from monai.losses import DiceCELoss

    return DiceCELoss(
        include_background=False,
        to_onehot_y=True,
        softmax=True,
        batch=True,
        weight=torch.from_numpy(weights).to(device),
    )


def _validation_loss(net, scans, loss_fn, device) -> float:
    net.eval()
    out = []
    with torch.no_grad():
        for sc in scans:
            x = torch.from_numpy(sc.x[None]).to(device)
            y = torch.from_numpy(sc.y[None, None].astype(np.int64)).to(device)
            out.append(float(loss_fn(masked_logits(net(x), x, y), y)))
    net.train()
    return float(np.mean(out)) if out else float("nan")


def train_member(
    train_scans: list[_Scan],
    val_scans: list[_Scan],
    s: SegmentTrainSettings,
    seed: int,
    device: torch.device,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """One ensemble member (module docstring, steps 3-6); its weights-file entry."""
    configure(seed, torch.get_num_threads(), device)
    rng = np.random.default_rng(seed)
    net = build_unet(tuple(s.channels)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    cw = class_weights(train_scans)
    loss_fn = _loss_fn(cw, device)
    groups = [sc.group for sc in train_scans]
    share = np.array([1.0 / groups.count(g) for g in groups])
    share /= share.sum()
    augment = _augmenters(seed)

    def train_epoch(epoch: int) -> float:
        losses = []
        for _ in range(s.iterations):
            x, y = _batch(train_scans, share, s, rng, augment)
            x, y = x.to(device), y.to(device)
            loss = loss_fn(masked_logits(net(x), x, y), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return float(np.mean(losses))

    val_loss_scans = val_scans[:MAX_VALIDATION_LOSS_SCANS]
    validate = (
        (lambda: _validation_loss(net, val_loss_scans, loss_fn, device)) if val_scans else None
    )
    fit = fit_with_early_stopping(net, train_epoch, validate, s, log, f"member seed {seed}")
    best_epoch = fit.best_epoch
    scores = [  # gated like inference (segment.anatomy_gate); ungated scores are larger
        float(
            triage_scores(
                coarse_probabilities([net], sc.x, s.crop_voxels, device),
                (sc.x[1] > 0) & sc.accepted,
            )[0]
        )
        for sc in val_scans
    ]
    positive = [sc.positive for sc in val_scans]
    threshold = operating_point(np.array(scores), np.array(positive, dtype=bool))
    log(f"member seed {seed}: best epoch {best_epoch}, triage operating point {threshold:.4f}")
    return {
        "state": net.state_dict(),
        "seed": int(seed),
        "best_epoch": int(best_epoch),
        "train_loss_per_epoch": fit.train_loss,
        "validation_loss_per_epoch": fit.validation_loss,
        "class_weights": [float(v) for v in cw],
        "validation_series": [sc.uid for sc in val_scans],
        "validation_triage_scores": scores,
        "validation_positive": positive,
        "triage_threshold": float(threshold),
    }


def train(
    volumes_dir: Path | Sequence[Path],
    labels_dir: Path | Sequence[Path],
    out_model: Path,
    *,
    settings: SegmentTrainSettings | None = None,
    scoring: dict[str, Any] | None = None,
    device: str = "auto",
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the ensemble on the volumes (``<series_uid>.nii``, searched recursively) that
    have a reference label mask of the same name; write ``out_model``, its ``.sha256`` and
    ``<out_model>.json`` (summary). Returns the summary."""
    log = log or (lambda m: print(m, flush=True))
    s = settings or SegmentTrainSettings()
    t0 = time.perf_counter()
    dev = resolve_device(device)
    configure(s.seed, threads, dev)
    conv = ScoringConventions.from_config(scoring or {})
    pairs = find_pairs(volumes_dir, labels_dir)
    scans = [prepare_scan(v, lab, s, conv.threshold_hu) for v, lab in pairs]
    groups = [sc.group for sc in scans]
    t_prep = time.perf_counter()
    log(
        f"train segment: {len(scans)} scans from {sorted(set(groups))}, "
        f"{sum(sc.centred_on == 'heart' for sc in scans)} crops on the heart, device {dev}, "
        f"{t_prep - t0:.1f} s to prepare"
    )
    members = []
    for m in range(s.ensemble):
        seed = s.seed + m
        held = split_validation(groups, s.validation_fraction, np.random.default_rng(seed + 3))
        tr = [sc for sc, h in zip(scans, held, strict=True) if not h]
        va = [sc for sc, h in zip(scans, held, strict=True) if h]
        tm = time.perf_counter()
        members.append(train_member(tr, va, s, seed, dev, log))
        members[-1]["seconds"] = round(time.perf_counter() - tm, 1)
        log(f"member {m + 1}/{s.ensemble}: {members[-1]['seconds']} s")
    config = {
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()},
        "threshold_hu": float(conv.threshold_hu),
        "scoring_conventions": conv.to_json(),
    }
    digest = save_checkpoint(make_checkpoint(config, members), out_model)
    t_end = time.perf_counter()
    summary = {
        "model": Path(out_model).name,
        "sha256": digest,
        "config": config,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "n_scans": len(scans),
        "scans_per_dataset": {g: groups.count(g) for g in sorted(set(groups))},
        "n_positive_scans": int(sum(sc.positive for sc in scans)),
        "n_heart_centred": int(sum(sc.centred_on == "heart" for sc in scans)),
        "members": [{k: v for k, v in m.items() if k != "state"} for m in members],
        "seconds_prepare": round(t_prep - t0, 1),
        "seconds_total": round(t_end - t0, 1),
    }
    Path(out_model).with_suffix(".json").write_text(json.dumps(summary, indent=1, default=str))
    log(f"train segment: done in {summary['seconds_total']} s, sha256 {digest[:16]}")
    return summary
