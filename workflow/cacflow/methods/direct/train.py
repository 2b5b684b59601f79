"""Training of the direct method from analysis volumes and reference label masks.

Three steps, all from the training set alone:

1. **Atlas and registration** (de Vos et al. 2019, sections III-A/B, V-A): the initial
   atlas is the mean of the training scans' coarse grids aligned on their grid centres;
   the registration network is trained without supervision to maximise the normalised
   cross-correlation of warped scans with the atlas (Adam), on randomly perturbed copies
   of the scans (translations, rotation about z, scales) so it sees more poses than there
   are scans. The atlas is then refined once (the mean of the registered scans) and
   training continues on it.
2. **Heart box**: each scan's own heart box from the classical heart localiser
   (:mod:`.localise`), as at inference. The registration network and the *atlas* heart
   box (the training set's coronary calcium in the atlas frame plus
   :data:`BOX_MARGIN_MM`) are only the fallback for a scan in which no heart is found.
3. **Scoring network**: slices in the box's z range, windows of native pixels round it
   plus :data:`JITTER_PX`; each training sample is a crop of :data:`CROP_PX` pixels of one
   slice's window (for slices with calcium, placed so that a random calcium pixel of the
   target lies inside), the target following the crop exactly (:mod:`.targets`).
   Augmentation (:func:`augment`): the anatomy channel gets a random gain, offset and
   Gaussian noise, the position channels a random scale and shift (a heart box found a
   little too large, small or shifted). The calcium channel is never changed: the target
   is defined on it exactly. No flips or rotations: left-right and anterior-posterior
   position tell the arteries apart. Loss ``|ln(1 + y_hat) - ln(1 + y)|`` per artery (the paper's)
   plus auxiliary losses on the 8 x 8-pixel cells of the density map (weight
   :data:`CELL_LOSS_WEIGHT`, :func:`cell_losses`): the cell's calcium amount against its
   reference pseudo-Agatston score and a cross-entropy of its routing to LAD / LCX / RCA /
   not coronary. Slice sums alone did not teach the network which bright pixels are
   coronary within the minutes of CPU training available (the gates saturated at "not
   coronary" and every prediction went to 0). Inference uses slice sums only, so the
   method stays a direct regression without segmentation; the first
   :data:`BALANCED_FRACTION` of the iterations draw half of each mini-batch from slices
   with calcium and half from slices without, then slices are drawn uniformly (paper,
   section V-B); the learning rate drops to a tenth for the last :data:`LR_DROP_FRACTION`.
   Each training dataset (the folder layout ``results/<ds>/work/resampled/<batch>``
   names it) gets an equal share of the samples.
4. **Validation and early stopping**: ``validation_fraction`` of the scans of each
   dataset are held out; after every epoch the paper's loss on a fixed set of their
   crops (:data:`VALIDATION_SLICES`, half with calcium) is computed, training stops after
   ``patience`` epochs without improvement and the weights of the best epoch are kept.

The weights file holds the networks, the atlas, the box and the conventions used; a JSON
summary (``<out>.json``) holds the training facts for the model card.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cacflow.conventions import PADDING_HU, ScoringConventions
from cacflow.methods.direct.atlas import (
    ATLAS_SHAPE,
    ATLAS_SPACING_MM,
    REG_SHAPE,
    REG_SPACING_MM,
    HeartBox,
    Transform,
    atlas_extent_box,
    grid_points,
    heart_box,
    ncc,
    params_to_affine,
    random_affine,
    raw_to_params,
    registration_grid,
    transforms_from_params,
    warp,
)
from cacflow.methods.direct.localise import heart_frame
from cacflow.methods.direct.model import (
    POOLING,
    REG_WIDTHS,
    SCORE_WIDTHS,
    RegistrationNet,
    ScoringNet,
    band_levels,
    log_score_loss,
    make_checkpoint,
    save_checkpoint,
)
from cacflow.methods.direct.register import (
    extract_window,
    input_channels,
    pixel_atlas_xy,
    plan_crop,
    slice_atlas_z,
)
from cacflow.methods.direct.runtime import configure, resolve_device
from cacflow.methods.direct.targets import code_targets, weight_codes
from cacflow.methods.trainutil import (
    TrainSettingsBase,
    dataset_of,
    find_pairs,
    fit_with_early_stopping,
    split_validation,
)
from cacflow.volume import read_volume

BOX_MARGIN_MM = 12.0
"""Margin (mm) around the training set's coronary calcium in the atlas frame."""
JITTER_PX = 8
"""Extra pixels round each stored training window (each in-plane side)."""
CROP_PX = 160
"""Side (pixels) of the square training crops (a multiple of the pooling factor)."""
VALIDATION_SLICES = 256
"""Crops of the held-out scans on which the validation loss is computed."""
AUG_GAIN = 0.05
AUG_OFFSET = 0.02
AUG_NOISE = 0.02
"""Anatomy-channel augmentation: gain 1 +- AUG_GAIN, offset +- AUG_OFFSET, Gaussian noise
of SD up to AUG_NOISE (units of the channel: 1000 HU, so 0.02 is 20 HU)."""
AUG_POSITION_SCALE = 0.1
AUG_POSITION_SHIFT = 0.1
"""Position-channel augmentation: scale 1 +- AUG_POSITION_SCALE, shift +- AUG_POSITION_SHIFT
(units of the box half size)."""
BALANCED_FRACTION = 0.5
CELL_LOSS_WEIGHT = 1.0
"""Weight of the auxiliary loss on 8 x 8-pixel cells (see the module docstring)."""
LR_DROP_FRACTION = 0.25
MAX_CALCIUM_POINTS = 4000
"""Calcium voxels per scan used to place the heart box (a random subset when more)."""


@dataclass(kw_only=True)
class TrainSettings(TrainSettingsBase):
    """Hyper-parameters (defaults: the shipped demo model; config section ``direct``)."""

    epochs: int = 10
    patience: int = 3
    lr: float = 1e-3
    """Learning rate of the scoring network."""
    reg_iterations: int = 100
    """Registration iterations per atlas (initial and refined)."""
    reg_batch: int = 8
    reg_lr: float = 1e-3
    batch_slices: int = 32
    reg_widths: tuple[int, ...] = REG_WIDTHS
    score_widths: tuple[int, ...] = SCORE_WIDTHS
    scoring: dict[str, Any] = field(default_factory=dict)


# --- registration ------------------------------------------------------------------------
@dataclass
class _RegScan:
    grid: torch.Tensor  # (1, *REG_SHAPE)
    calcium_mm: np.ndarray  # (N, 3) grid-frame xyz mm of coronary calcium voxels
    shape: tuple[int, int, int]  # (z, y, x) voxels
    spacing: tuple[float, float, float]  # (x, y, z) mm


def _reg_scan(vol_path: Path, lab_path: Path, conv: ScoringConventions, rng) -> _RegScan:
    vol = read_volume(vol_path)
    lab = read_volume(lab_path).array
    codes = weight_codes(vol.array, lab, vol.geometry, conv)
    zyx = np.argwhere(codes > 0)
    if len(zyx) > MAX_CALCIUM_POINTS:
        zyx = zyx[np.sort(rng.choice(len(zyx), MAX_CALCIUM_POINTS, replace=False))]
    centre = (np.asarray(vol.array.shape) - 1.0) / 2.0
    mm = ((zyx - centre) * np.asarray(vol.geometry.spacing)[::-1])[:, ::-1]
    spacing = tuple(float(v) for v in vol.geometry.spacing)
    shape = tuple(int(v) for v in vol.array.shape)
    return _RegScan(registration_grid(vol.array, spacing), mm, shape, spacing)


def _mean_warped(
    net: RegistrationNet | None, grids: torch.Tensor, points: torch.Tensor, device
) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for start in range(0, len(grids), 16):
            g = grids[start : start + 16].to(device)
            if net is None:
                params = torch.tensor([[0, 0, 0, 0, 1, 1]] * len(g), dtype=torch.float32)
                params = params.to(device)
            else:
                params = raw_to_params(net(g))
            out.append(warp(g, params_to_affine(params), points).sum(dim=0))
    return (torch.stack(out).sum(dim=0) / len(grids))[None]


def train_registration(
    grids: torch.Tensor, s: TrainSettings, device: torch.device, log: Callable[[str], None]
) -> tuple[RegistrationNet, torch.Tensor, list[float]]:
    """Registration network and refined atlas from (N, 1, *REG_SHAPE) grids."""
    gen = torch.Generator().manual_seed(s.seed)
    net = RegistrationNet(s.reg_widths).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=s.reg_lr)
    points = grid_points(ATLAS_SHAPE, ATLAS_SPACING_MM).to(device)
    atlas = _mean_warped(None, grids, points, device)
    history = []
    for stage in range(2):
        if stage == 1:
            atlas = _mean_warped(net.eval(), grids, points, device)
        net.train()
        for it in range(s.reg_iterations):
            idx = torch.randint(len(grids), (s.reg_batch,), generator=gen)
            base = grids[idx].to(device)
            aug = random_affine(gen, s.reg_batch).to(device)
            moving = warp(base, aug, grid_points(REG_SHAPE, REG_SPACING_MM).to(device))
            affine = params_to_affine(raw_to_params(net(moving)))
            warped = warp(moving, affine, points)
            loss = 1.0 - ncc(warped, atlas.expand_as(warped)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            if (it + 1) % 50 == 0:
                recent = np.mean(history[-50:])
                log(f"registration stage {stage + 1} iter {it + 1}: 1 - NCC {recent:.4f}")
    return net.eval(), atlas, history


# --- scoring data ------------------------------------------------------------------------
@dataclass
class _ScoreScan:
    hu: np.ndarray  # (n, Hs, Ws) int16 windows of the selected slices (HU)
    codes: np.ndarray  # (n, Hs, Ws) uint8 target codes
    xy: np.ndarray  # (2, Hs, Ws) heart-box x, y
    z: np.ndarray  # (n,) heart-box z
    captured: float  # share of the scan's target (pixels x weight) inside the window
    localiser: str  # heart or registration
    group: str  # training dataset


def _score_scan(
    vol_path: Path,
    lab_path: Path,
    transform: Transform,
    box: HeartBox,
    conv: ScoringConventions,
    group: str,
) -> _ScoreScan:
    """Windows of one scan in its heart box (the localiser's; ``transform`` and ``box``,
    the registration's, only when no heart is found)."""
    vol = read_volume(vol_path)
    lab = read_volume(lab_path).array
    localiser = "registration"
    frame = heart_frame(vol)
    if frame is not None:
        transform, box, localiser = frame.transform, frame.box, "heart"
    shape = tuple(int(v) for v in vol.array.shape)
    spacing = tuple(float(v) for v in vol.geometry.spacing)
    plan = plan_crop(shape, spacing, transform, box, margin_px=JITTER_PX)
    y0, x0, hs, ws = plan.y0, plan.x0, plan.height, plan.width
    codes_full = weight_codes(vol.array, lab, vol.geometry, conv)
    hu = np.clip(vol.array, -32768, 32767)
    hu = extract_window(hu, plan.slices, y0, x0, hs, ws, PADDING_HU).astype(np.int16)
    codes = extract_window(codes_full, plan.slices, y0, x0, hs, ws, 0)
    xy = pixel_atlas_xy(shape, spacing, transform, box, y0, x0, hs, ws)
    z = slice_atlas_z(plan.slices, shape, spacing, transform, box)
    total = float(code_targets(codes_full).sum())
    inside = float(code_targets(codes).sum())
    return _ScoreScan(hu, codes, xy, z, inside / total if total > 0 else 1.0, localiser, group)


def _offsets(
    scans: list[_ScoreScan], picks: np.ndarray, positive: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Crop corners (y, x) of the picked slices: a random calcium pixel of the target inside
    the crop for slices with calcium, anywhere in the window (padded where smaller) else."""
    out = np.zeros((len(picks), 2), dtype=np.int64)
    for n, ((si, k), pos) in enumerate(zip(picks, positive, strict=True)):
        sc = scans[si]
        hs, ws = sc.hu.shape[1:]
        if pos:
            yx = np.argwhere(sc.codes[k] > 0)
            py, px = yx[rng.integers(len(yx))]
            out[n] = (
                py - rng.integers(POOLING, CROP_PX - POOLING),
                px - rng.integers(POOLING, CROP_PX - POOLING),
            )
        else:
            out[n] = (
                rng.integers(min(0, hs - CROP_PX), max(0, hs - CROP_PX) + 1),
                rng.integers(min(0, ws - CROP_PX), max(0, ws - CROP_PX) + 1),
            )
    return out


def _batch(
    scans: list[_ScoreScan], picks: np.ndarray, offsets: np.ndarray, threshold_hu: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (N, 5, CROP_PX, CROP_PX) and cell targets (N, 3, c, c) (pixels x weight)."""
    h = w = CROP_PX
    xs, ys = [], []
    for (si, k), (oy, ox) in zip(picks, offsets, strict=True):
        sc = scans[si]
        sl = np.array([k])
        hu = extract_window(sc.hu, sl, oy, ox, h, w, PADDING_HU)
        xy = np.stack(
            [
                extract_window(sc.xy[a : a + 1], np.array([0]), oy, ox, h, w, 0.0)[0]
                for a in range(2)
            ]
        )
        xs.append(input_channels(hu, xy, sc.z[k : k + 1], threshold_hu))
        codes = extract_window(sc.codes, sl, oy, ox, h, w, 0)[0]
        cells = codes.reshape(h // POOLING, POOLING, w // POOLING, POOLING).transpose(0, 2, 1, 3)
        ys.append(np.moveaxis(code_targets(cells), -1, 0))
    x = torch.from_numpy(np.concatenate(xs)).contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(np.stack(ys))


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random intensity and position changes of a batch (module docstring, step 3): the
    anatomy channel (0) and the position channels (2-4); the calcium channel (1) stays."""
    n = x.shape[0]

    def u(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=gen) * 2.0 - 1.0).to(x.device)

    out = x.clone()
    gain = 1.0 + AUG_GAIN * u(n, 1, 1, 1)
    noise = AUG_NOISE * torch.rand(n, 1, 1, 1, generator=gen).to(x.device)
    gauss = torch.randn(n, 1, *x.shape[2:], generator=gen).to(x.device)
    out[:, 0:1] = x[:, 0:1] * gain + AUG_OFFSET * u(n, 1, 1, 1) + noise * gauss
    scale = 1.0 + AUG_POSITION_SCALE * u(n, 3, 1, 1)
    out[:, 2:5] = x[:, 2:5] * scale + AUG_POSITION_SHIFT * u(n, 3, 1, 1)
    return out


def cell_losses(
    amount: torch.Tensor, route: torch.Tensor, target: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """Auxiliary losses on the 8 x 8-pixel cells (see the module docstring).

    ``amount`` (N, 1, h, w), ``route`` (N, 4, h, w) probabilities (LAD, LCX, RCA, none),
    ``target`` (N, 3, h, w) reference pseudo-Agatston per cell, ``counts`` band counts.
    Returns the mean |ln(1 + amount) - ln(1 + target total)| over cells with reference
    calcium plus the cross-entropy of the routing over every cell holding a pixel above
    the threshold (class: the cell's main artery, or 'none' without reference calcium).
    """
    total = target.sum(dim=1)
    positive = total > 0
    bright = counts.sum(dim=1) > 0
    out = amount.new_zeros(())
    if bool(positive.any()):
        out = out + (torch.log1p(amount[:, 0]) - torch.log1p(total)).abs()[positive].mean()
    if bool(bright.any()):
        cls = torch.where(positive, target.argmax(dim=1), torch.full_like(total, 3).long())
        logp = torch.log(route.clamp_min(1e-8)).permute(0, 2, 3, 1)[bright]
        out = out + torch.nn.functional.nll_loss(logp, cls[bright])
    return out


def _slice_index(scans: list[_ScoreScan]) -> tuple[np.ndarray, np.ndarray]:
    """(scan, slice) pairs of ``scans`` and whether each slice has target calcium."""
    index = np.array(
        [(i, k) for i, sc in enumerate(scans) for k in range(len(sc.z))], dtype=np.int64
    ).reshape(-1, 2)
    positive = np.array([bool((scans[i].codes[k] > 0).any()) for i, k in index], dtype=bool)
    return index, positive


def _sample_weights(scans: list[_ScoreScan], index: np.ndarray) -> np.ndarray:
    """Per slice, a probability that gives every training dataset an equal share."""
    groups = np.array([scans[i].group for i, _ in index], dtype=object)
    w = np.zeros(len(index))
    names = sorted(set(groups.tolist()))
    for g in names:
        sel = groups == g
        w[sel] = 1.0 / (sel.sum() * len(names))
    return w / w.sum()


def _draw(
    rng: np.random.Generator, candidates: np.ndarray, weights: np.ndarray, n: int
) -> np.ndarray:
    p = weights[candidates]
    return rng.choice(candidates, n, p=p / p.sum())


def _validation_set(
    scans: list[_ScoreScan], conv: ScoringConventions, seed: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A fixed set of crops of the held-out scans (half with calcium), or None."""
    if not scans:
        return None
    rng = np.random.default_rng(seed + 1)
    index, positive = _slice_index(scans)
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    half = VALIDATION_SLICES // 2
    pick = np.concatenate(
        [
            rng.choice(pos, min(half, len(pos)), replace=False) if len(pos) else pos,
            rng.choice(neg, min(VALIDATION_SLICES - half, len(neg)), replace=False)
            if len(neg)
            else neg,
        ]
    )
    offsets = _offsets(scans, index[pick], positive[pick], rng)
    return _batch(scans, index[pick], offsets, conv.threshold_hu)


def validation_loss(
    net: ScoringNet, val: tuple[torch.Tensor, torch.Tensor], device: torch.device
) -> float:
    """The paper's loss (slice sums, per artery) of ``net`` on the validation crops."""
    net.eval()
    x, y = val
    out = []
    with torch.no_grad():
        for start in range(0, len(x), 64):
            pred = net.scores(x[start : start + 64].to(device))
            target = y[start : start + 64].to(device).sum(dim=(2, 3))
            out.append((torch.log1p(pred) - torch.log1p(target)).abs().mean(dim=1).cpu())
    net.train()
    return float(torch.cat(out).mean())


def train_scoring(
    scans: list[_ScoreScan],
    s: TrainSettings,
    conv: ScoringConventions,
    device: torch.device,
    log: Callable[[str], None],
    val_scans: list[_ScoreScan] | None = None,
) -> tuple[ScoringNet, list[float], list[float], int]:
    """Scoring network trained on crops of ``scans`` (module docstring, steps 3-4).

    Returns the network (the best epoch's weights when there are validation scans), the
    training loss per iteration, the validation loss per epoch and the best epoch (1-based).
    """
    rng = np.random.default_rng(s.seed)
    gen = torch.Generator().manual_seed(s.seed + 2)
    index, positive = _slice_index(scans)
    weights = _sample_weights(scans, index)
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    per_epoch = max(1, len(index) // s.batch_slices)
    total = s.epochs * per_epoch
    n_balanced = int(round(BALANCED_FRACTION * total))
    drop_at = int(round((1.0 - LR_DROP_FRACTION) * total))
    val = _validation_set(val_scans or [], conv, s.seed)
    log(
        f"scoring: {len(index)} slices ({len(pos)} with calcium), up to {total} iterations "
        f"of {s.batch_slices} crops of {CROP_PX}x{CROP_PX}, "
        f"{0 if val is None else len(val[0])} validation crops"
    )
    net = ScoringNet(s.score_widths, band_levels(conv)).to(device)
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    history: list[float] = []

    def train_epoch(epoch: int) -> float:
        for it in range((epoch - 1) * per_epoch, epoch * per_epoch):
            if it == drop_at:
                for g in opt.param_groups:
                    g["lr"] = s.lr / 10.0
            if it < n_balanced and len(pos) and len(neg):
                half = s.batch_slices // 2
                pick = np.concatenate(
                    [
                        _draw(rng, pos, weights, half),
                        _draw(rng, neg, weights, s.batch_slices - half),
                    ]
                )
            else:
                pick = _draw(rng, np.arange(len(index)), weights, s.batch_slices)
            offsets = _offsets(scans, index[pick], positive[pick], rng)
            x, y_cells = _batch(scans, index[pick], offsets, conv.threshold_hu)
            x, y_cells = augment(x.to(device), gen), y_cells.to(device)
            amount, route = net.parts(x)
            density = amount * route[:, : y_cells.shape[1]]
            loss = log_score_loss(density.sum(dim=(2, 3)), y_cells.sum(dim=(2, 3)))
            aux = cell_losses(amount, route, y_cells, net.band_counts(x))
            loss = loss + CELL_LOSS_WEIGHT * aux
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
        return float(np.mean(history[-per_epoch:]))

    validate = None if val is None else (lambda: validation_loss(net, val, device))
    fit = fit_with_early_stopping(net, train_epoch, validate, s, log, "scoring")
    return net, history, fit.validation_loss, fit.best_epoch


# --- the whole training ------------------------------------------------------------------
def train(
    volumes_dir: Path | Sequence[Path],
    labels_dir: Path | Sequence[Path],
    out_model: Path,
    *,
    epochs: int,
    seed: int,
    device: str = "auto",
    threads: int | None = None,
    reg_iterations: int | None = None,
    scoring: dict[str, Any] | None = None,
    validation_fraction: float = 0.2,
    patience: int = 3,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train both networks on the volumes (``<series_uid>.nii``, searched recursively) that
    have a reference label mask of the same name in ``labels_dir``; write ``out_model``,
    ``<out_model>.sha256`` and ``<out_model>.json`` (summary). Returns the summary.

    ``scoring``: the config section ``scoring`` (threshold, weights, artery groups) that
    defines the targets. ``reg_iterations``: registration iterations per atlas.
    ``validation_fraction``, ``patience``: held-out share per dataset and early stopping
    (module docstring, step 4); ``epochs`` is the largest number of epochs.
    """
    log = log or (lambda m: print(m, flush=True))
    t_start = time.perf_counter()
    s = TrainSettings(
        epochs=int(epochs),
        seed=int(seed),
        scoring=dict(scoring or {}),
        validation_fraction=float(validation_fraction),
        patience=int(patience),
    )
    if reg_iterations is not None:
        s.reg_iterations = int(reg_iterations)
    dev = resolve_device(device)
    configure(s.seed, threads, dev)
    conv = ScoringConventions.from_config(s.scoring)
    pairs = find_pairs(volumes_dir, labels_dir)
    groups = [dataset_of(v) for v, _ in pairs]
    rng = np.random.default_rng(s.seed)
    held = split_validation(groups, s.validation_fraction, np.random.default_rng(s.seed + 3))
    log(
        f"train direct: {len(pairs)} scans ({int(held.sum())} held out for validation), "
        f"datasets {sorted(set(groups))}, device {dev}"
    )
    reg_scans = [_reg_scan(v, lab, conv, rng) for v, lab in pairs]
    grids = torch.stack([r.grid for r in reg_scans])
    t_reg = time.perf_counter()
    reg_net, atlas, reg_hist = train_registration(grids[torch.from_numpy(~held)], s, dev, log)
    with torch.no_grad():
        params = torch.cat(
            [raw_to_params(reg_net(grids[i : i + 16].to(dev))) for i in range(0, len(grids), 16)]
        )
    transforms = transforms_from_params(params)
    pts = [
        t.to_atlas(r.calcium_mm)
        for t, r, h in zip(transforms, reg_scans, held, strict=True)
        if not h
    ]
    box = heart_box(
        np.concatenate(pts) if pts else np.zeros((0, 3)), BOX_MARGIN_MM, atlas_extent_box()
    )
    log(f"atlas heart box (fallback, atlas mm): lo {np.round(box.lo, 1)} hi {np.round(box.hi, 1)}")
    t_score = time.perf_counter()
    scans = [
        _score_scan(v, lab, t, box, conv, g)
        for (v, lab), t, g in zip(pairs, transforms, groups, strict=True)
    ]
    captured = np.array([sc.captured for sc in scans])
    n_fallback = sum(sc.localiser != "heart" for sc in scans)
    log(
        f"heart boxes: {len(scans) - n_fallback} by the heart localiser, {n_fallback} by "
        f"registration; target inside the windows: min {captured.min():.3f}, "
        f"mean {captured.mean():.3f}"
    )
    train_scans = [sc for sc, h in zip(scans, held, strict=True) if not h]
    val_scans = [sc for sc, h in zip(scans, held, strict=True) if h]
    score_net, score_hist, val_hist, best_epoch = train_scoring(
        train_scans, s, conv, dev, log, val_scans
    )
    t_end = time.perf_counter()
    ckpt = make_checkpoint(
        reg_net,
        score_net,
        atlas[0, 0],
        box.lo,
        box.hi,
        conv,
        (tuple(s.reg_widths), tuple(s.score_widths)),
    )
    digest = save_checkpoint(ckpt, out_model)
    summary = {
        "model": str(out_model),
        "sha256": digest,
        "settings": {k: v for k, v in asdict(s).items()},
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "n_scans": len(pairs),
        "n_train_scans": len(train_scans),
        "n_validation_scans": len(val_scans),
        "scans_per_dataset": {g: groups.count(g) for g in sorted(set(groups))},
        "n_slices": int(sum(len(sc.z) for sc in train_scans)),
        "n_heart_localiser": len(scans) - n_fallback,
        "crop_px": CROP_PX,
        "box_lo": list(box.lo),
        "box_hi": list(box.hi),
        "target_inside_windows_min": float(captured.min()),
        "target_inside_windows_mean": float(captured.mean()),
        "registration_final_1_minus_ncc": float(np.mean(reg_hist[-20:])) if reg_hist else None,
        "scoring_final_loss": float(np.mean(score_hist[-50:])) if score_hist else None,
        "scoring_iterations": len(score_hist),
        "validation_loss_per_epoch": val_hist,
        "best_epoch": best_epoch,
        "seconds_prepare": round(t_reg - t_start, 1),
        "seconds_registration": round(t_score - t_reg, 1),
        "seconds_scoring": round(t_end - t_score, 1),
        "seconds_total": round(t_end - t_start, 1),
        "series": [p[0].stem for p in pairs],
        "validation_series": [p[0].stem for p, h in zip(pairs, held, strict=True) if h],
    }
    Path(out_model).with_suffix(".json").write_text(json.dumps(summary, indent=1, default=str))
    log(f"train direct: done in {summary['seconds_total']} s, sha256 {digest[:16]}")
    return summary
