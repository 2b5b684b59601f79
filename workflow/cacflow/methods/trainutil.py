"""Training helpers shared by the learned methods: (volume, reference mask) pairs, the
training dataset a volume belongs to, and the per-dataset validation split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


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
