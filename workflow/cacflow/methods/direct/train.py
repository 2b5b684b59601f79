"""Training of the direct method from analysis volumes and reference label masks.

Three steps, all from the training set alone:

1. **Atlas and registration** (de Vos et al. 2019, sections III-A/B, V-A): the initial
   atlas is the mean of the training scans' coarse grids aligned on their grid centres;
   the registration network is trained without supervision to maximise the normalised
   cross-correlation of warped scans with the atlas (Adam), on randomly perturbed copies
   of the scans (translations, rotation about z, scales) so it sees more poses than there
   are scans. The atlas is then refined once (the mean of the registered scans) and
   training continues on it.
2. **Heart box**: the coronary calcium voxels of the training reference masks, mapped
   into the atlas frame, give the box (plus :data:`BOX_MARGIN_MM`) the scoring network
   looks at.
3. **Scoring network**: slices in the box's z range, windows of native pixels around it,
   randomly shifted by up to :data:`JITTER_PX` pixels (the target follows the window
   exactly, :mod:`.targets`); loss ``|ln(1 + y_hat) - ln(1 + y)|`` per artery (the paper's)
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
    CROP_MULTIPLE,
    extract_window,
    input_channels,
    pixel_atlas_xy,
    plan_crop,
    slice_atlas_z,
)
from cacflow.methods.direct.runtime import configure, resolve_device
from cacflow.methods.direct.targets import code_targets, weight_codes
from cacflow.volume import read_volume

BOX_MARGIN_MM = 12.0
"""Margin (mm) around the training set's coronary calcium in the atlas frame."""
JITTER_PX = 8
"""Largest random shift (pixels, each in-plane axis) of a training window."""
BALANCED_FRACTION = 0.5
CELL_LOSS_WEIGHT = 1.0
"""Weight of the auxiliary loss on 8 x 8-pixel cells (see the module docstring)."""
LR_DROP_FRACTION = 0.25
MAX_CALCIUM_POINTS = 4000
"""Calcium voxels per scan used to place the heart box (a random subset when more)."""


@dataclass
class TrainSettings:
    """Hyper-parameters (defaults: the shipped demo model)."""

    epochs: int = 10
    seed: int = 0
    reg_iterations: int = 100
    """Registration iterations per atlas (initial and refined)."""
    reg_batch: int = 8
    reg_lr: float = 1e-3
    batch_slices: int = 32
    lr: float = 1e-3
    reg_widths: tuple[int, ...] = REG_WIDTHS
    score_widths: tuple[int, ...] = SCORE_WIDTHS
    scoring: dict[str, Any] = field(default_factory=dict)


def find_pairs(
    volumes: Path | Sequence[Path], labels: Path | Sequence[Path]
) -> list[tuple[Path, Path]]:
    """(volume, label mask) pairs: ``<series_uid>.nii`` found (recursively) in both."""
    vols = _index(volumes)
    labs = _index(labels)
    pairs = [(vols[k], labs[k]) for k in sorted(vols) if k in labs]
    if not pairs:
        raise ValueError(f"no volume has a reference label mask ({len(vols)} volumes)")
    return pairs


def _index(dirs: Path | Sequence[Path]) -> dict[str, Path]:
    dirs = [dirs] if isinstance(dirs, str | Path) else list(dirs)
    out: dict[str, Path] = {}
    for d in dirs:
        if not Path(d).is_dir():
            raise FileNotFoundError(f"{d}: not a directory")
        for p in sorted(Path(d).rglob("*.nii")):
            out.setdefault(p.stem, p)
    return out


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
    hu: np.ndarray  # (n, Hs, Ws) float32 windows of the selected slices
    codes: np.ndarray  # (n, Hs, Ws) uint8 target codes
    xy: np.ndarray  # (2, Hs, Ws) atlas x, y
    z: np.ndarray  # (n,) atlas z
    captured: float  # share of the scan's target (pixels x weight) inside the window


def _score_scan(
    vol_path: Path,
    lab_path: Path,
    transform: Transform,
    box: HeartBox,
    size: tuple[int, int],
    conv: ScoringConventions,
) -> _ScoreScan:
    vol = read_volume(vol_path)
    lab = read_volume(lab_path).array
    shape = tuple(int(v) for v in vol.array.shape)
    spacing = tuple(float(v) for v in vol.geometry.spacing)
    plan = plan_crop(shape, spacing, transform, box)
    hs, ws = size
    y0 = plan.y0 + plan.height // 2 - hs // 2
    x0 = plan.x0 + plan.width // 2 - ws // 2
    codes_full = weight_codes(vol.array, lab, vol.geometry, conv)
    hu = extract_window(vol.array, plan.slices, y0, x0, hs, ws, PADDING_HU).astype(np.float32)
    codes = extract_window(codes_full, plan.slices, y0, x0, hs, ws, 0)
    xy = pixel_atlas_xy(shape, spacing, transform, box, y0, x0, hs, ws)
    z = slice_atlas_z(plan.slices, shape, spacing, transform, box)
    total = float(code_targets(codes_full).sum())
    inside = float(code_targets(codes).sum())
    return _ScoreScan(hu, codes, xy, z, inside / total if total > 0 else 1.0)


def _window_size(
    reg_scans: list[_RegScan], transforms: list[Transform], box: HeartBox
) -> tuple[int, int]:
    """Training input size: the largest window of the training scans (pixels)."""
    h = w = CROP_MULTIPLE
    for r, t in zip(reg_scans, transforms, strict=True):
        plan = plan_crop(r.shape, r.spacing, t, box)
        h, w = max(h, plan.height), max(w, plan.width)
    return h, w


def _batch(
    scans: list[_ScoreScan],
    picks: np.ndarray,
    offsets: np.ndarray,
    size: tuple[int, int],
    threshold_hu: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (N, 5, h, w) and cell targets (N, 3, h/8, w/8) (pixels x weight)."""
    h, w = size
    xs, ys = [], []
    for (si, k), (oy, ox) in zip(picks, offsets, strict=True):
        sc = scans[si]
        hu = sc.hu[k : k + 1, oy : oy + h, ox : ox + w]
        xy = sc.xy[:, oy : oy + h, ox : ox + w]
        xs.append(input_channels(hu, xy, sc.z[k : k + 1], threshold_hu))
        codes = sc.codes[k, oy : oy + h, ox : ox + w]
        cells = codes.reshape(h // POOLING, POOLING, w // POOLING, POOLING).transpose(0, 2, 1, 3)
        ys.append(np.moveaxis(code_targets(cells), -1, 0))
    x = torch.from_numpy(np.concatenate(xs)).contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(np.stack(ys))


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


def train_scoring(
    scans: list[_ScoreScan],
    size: tuple[int, int],
    s: TrainSettings,
    conv: ScoringConventions,
    device: torch.device,
    log: Callable[[str], None],
) -> tuple[ScoringNet, list[float]]:
    """Scoring network trained on the windows of ``scans`` (see the module docstring)."""
    rng = np.random.default_rng(s.seed)
    index = np.array([(i, k) for i, sc in enumerate(scans) for k in range(len(sc.z))])
    positive = np.array([code_targets(scans[i].codes[k]).sum() > 0 for i, k in index], dtype=bool)
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    per_epoch = max(1, len(index) // s.batch_slices)
    total = s.epochs * per_epoch
    n_balanced = int(round(BALANCED_FRACTION * total))
    drop_at = int(round((1.0 - LR_DROP_FRACTION) * total))
    log(
        f"scoring: {len(index)} slices ({len(pos)} with calcium), {total} iterations "
        f"of {s.batch_slices}, input {size[0]}x{size[1]}"
    )
    net = ScoringNet(s.score_widths, band_levels(conv)).to(device)
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    hin, win = size[0] - 2 * JITTER_PX, size[1] - 2 * JITTER_PX
    history = []
    net.train()
    for it in range(total):
        if it == drop_at:
            for g in opt.param_groups:
                g["lr"] = s.lr / 10.0
        if it < n_balanced and len(pos) and len(neg):
            half = s.batch_slices // 2
            pick = np.concatenate([rng.choice(pos, half), rng.choice(neg, s.batch_slices - half)])
        else:
            pick = rng.choice(len(index), s.batch_slices)
        offsets = rng.integers(0, 2 * JITTER_PX + 1, size=(s.batch_slices, 2))
        x, y_cells = _batch(scans, index[pick], offsets, (hin, win), conv.threshold_hu)
        x, y_cells = x.to(device), y_cells.to(device)
        amount, route = net.parts(x)
        density = amount * route[:, : y_cells.shape[1]]
        loss = log_score_loss(density.sum(dim=(2, 3)), y_cells.sum(dim=(2, 3)))
        aux = cell_losses(amount, route, y_cells, net.band_counts(x))
        loss = loss + CELL_LOSS_WEIGHT * aux
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
        if (it + 1) % per_epoch == 0:
            log(f"scoring epoch {(it + 1) // per_epoch}: loss {np.mean(history[-per_epoch:]):.4f}")
    return net.eval(), history


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
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train both networks on the volumes (``<series_uid>.nii``, searched recursively) that
    have a reference label mask of the same name in ``labels_dir``; write ``out_model``,
    ``<out_model>.sha256`` and ``<out_model>.json`` (summary). Returns the summary.

    ``scoring``: the config section ``scoring`` (threshold, weights, artery groups) that
    defines the targets. ``reg_iterations``: registration iterations per atlas.
    """
    log = log or (lambda m: print(m, flush=True))
    t_start = time.perf_counter()
    s = TrainSettings(epochs=int(epochs), seed=int(seed), scoring=dict(scoring or {}))
    if reg_iterations is not None:
        s.reg_iterations = int(reg_iterations)
    dev = resolve_device(device)
    configure(s.seed, threads, dev)
    conv = ScoringConventions.from_config(s.scoring)
    pairs = find_pairs(volumes_dir, labels_dir)
    log(f"train direct: {len(pairs)} scans, device {dev}")
    rng = np.random.default_rng(s.seed)
    reg_scans = [_reg_scan(v, lab, conv, rng) for v, lab in pairs]
    grids = torch.stack([r.grid for r in reg_scans])
    t_reg = time.perf_counter()
    reg_net, atlas, reg_hist = train_registration(grids, s, dev, log)
    with torch.no_grad():
        params = torch.cat(
            [raw_to_params(reg_net(grids[i : i + 16].to(dev))) for i in range(0, len(grids), 16)]
        )
    transforms = transforms_from_params(params)
    pts = [t.to_atlas(r.calcium_mm) for t, r in zip(transforms, reg_scans, strict=True)]
    box = heart_box(
        np.concatenate(pts) if pts else np.zeros((0, 3)), BOX_MARGIN_MM, atlas_extent_box()
    )
    log(f"heart box (atlas mm): lo {np.round(box.lo, 1)} hi {np.round(box.hi, 1)}")
    t_score = time.perf_counter()
    win = _window_size(reg_scans, transforms, box)
    size = (win[0] + 2 * JITTER_PX, win[1] + 2 * JITTER_PX)
    scans = [
        _score_scan(v, lab, t, box, size, conv)
        for (v, lab), t in zip(pairs, transforms, strict=True)
    ]
    captured = np.array([sc.captured for sc in scans])
    score_net, score_hist = train_scoring(scans, size, s, conv, dev, log)
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
        "n_slices": int(sum(len(sc.z) for sc in scans)),
        "window_px": list(win),
        "box_lo": list(box.lo),
        "box_hi": list(box.hi),
        "target_inside_windows_min": float(captured.min()),
        "target_inside_windows_mean": float(captured.mean()),
        "registration_final_1_minus_ncc": float(np.mean(reg_hist[-20:])) if reg_hist else None,
        "scoring_final_loss": float(np.mean(score_hist[-50:])) if score_hist else None,
        "seconds_prepare": round(t_reg - t_start, 1),
        "seconds_registration": round(t_score - t_reg, 1),
        "seconds_scoring": round(t_end - t_score, 1),
        "seconds_total": round(t_end - t_start, 1),
        "series": [p[0].stem for p in pairs],
    }
    Path(out_model).with_suffix(".json").write_text(json.dumps(summary, indent=1, default=str))
    log(f"train direct: done in {summary['seconds_total']} s, sha256 {digest[:16]}")
    return summary
