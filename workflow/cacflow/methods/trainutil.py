"""Training helpers shared by the learned methods: (volume, reference mask) pairs, the
training dataset a volume belongs to, the per-dataset validation split, the settings every
training takes and the early-stopping epoch loop.

Torch-free at import (the settings are read by the CLI's parser)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(kw_only=True)
class TrainSettingsBase:
    """Hyper-parameters every learned method's training takes, under the same keys in its
    config section; each method's subclass gives its section's defaults (the schema's)."""

    epochs: int
    """Largest number of epochs (early stopping may end training sooner)."""
    patience: int
    """Early stopping: epochs without a lower validation loss before training stops."""
    lr: float
    """Learning rate (Adam)."""
    validation_fraction: float = 0.2
    """Share of each training dataset's scans held out (:func:`split_validation`)."""
    seed: int = 0
    """Training seed."""


@dataclass
class EarlyStopping:
    """What :func:`fit_with_early_stopping` did: per-epoch losses and the epoch kept."""

    train_loss: list[float]
    """Mean training loss of each epoch run."""
    validation_loss: list[float]
    """Validation loss after each epoch run (empty without validation)."""
    best_epoch: int
    """Epoch (1-based) whose weights the network holds."""


def fit_with_early_stopping(
    net: torch.nn.Module,
    train_epoch: Callable[[int], float],
    validate: Callable[[], float] | None,
    s: TrainSettingsBase,
    log: Callable[[str], None],
    name: str,
) -> EarlyStopping:
    """Train ``net`` for at most ``s.epochs`` epochs, stopping early on a validation loss.

    ``train_epoch(epoch)`` (1-based) trains one epoch and returns its mean training loss;
    ``validate()`` returns the validation loss of ``net`` as it is (lower is better) and
    leaves ``net`` in training mode. Training stops after ``s.patience`` epochs without a
    loss lower than the best so far, and the best epoch's weights are loaded back. Without
    ``validate`` (or when no validation loss is below infinity) every epoch runs and the
    last epoch's weights are kept. One log line per epoch: ``<name> epoch <e>: loss <l>``
    (``, validation <v>``). ``net`` is left in evaluation mode.
    """
    best, best_epoch, best_state = math.inf, 0, None
    history: list[float] = []
    val_history: list[float] = []
    net.train()
    for epoch in range(1, s.epochs + 1):
        history.append(float(train_epoch(epoch)))
        msg = f"{name} epoch {epoch}: loss {history[-1]:.4f}"
        if validate is None:
            log(msg)
            continue
        v = float(validate())
        val_history.append(v)
        log(f"{msg}, validation {v:.4f}")
        if v < best:
            best, best_epoch = v, epoch
            best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
        elif epoch - best_epoch >= s.patience:
            log(f"early stopping: no better validation loss since epoch {best_epoch}")
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        best_epoch = len(history)
    net.eval()
    return EarlyStopping(history, val_history, best_epoch)


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


def dataset_of(volume: Path) -> str:
    """Training dataset of a volume: ``<ds>`` of ``results/<ds>/work/resampled/<batch>/``,
    else the volume's folder."""
    parts = Path(volume).parts
    if len(parts) >= 5 and parts[-3] == "resampled" and parts[-4] == "work":
        return parts[-5]
    return str(Path(volume).parent)


def split_validation(
    groups: Sequence[str], fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Boolean mask of the held-out scans: per group ``round(fraction * n)`` scans, at
    least one when ``fraction > 0`` and the group has two or more, drawn by ``rng``."""
    groups = np.asarray(groups, dtype=object)
    held = np.zeros(len(groups), dtype=bool)
    if fraction <= 0:
        return held
    for g in sorted(set(groups.tolist())):
        idx = np.flatnonzero(groups == g)
        if len(idx) < 2:
            continue
        k = min(max(1, int(round(fraction * len(idx)))), len(idx) - 1)
        held[rng.choice(idx, k, replace=False)] = True
    return held


def _index(dirs: Path | Sequence[Path]) -> dict[str, Path]:
    dirs = [dirs] if isinstance(dirs, str | Path) else list(dirs)
    out: dict[str, Path] = {}
    for d in dirs:
        if not Path(d).is_dir():
            raise FileNotFoundError(f"{d}: not a directory")
        for p in sorted(Path(d).rglob("*.nii")):
            out.setdefault(p.stem, p)
    return out
