"""Training settings of the ``segment`` method (torch-free, so the CLI parser stays cheap).
Defaults equal the config schema's section ``segment``."""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS = (16, 32, 64)
"""Feature channels per U-Net level (the shipped model's)."""


@dataclass
class SegmentTrainSettings:
    """Hyper-parameters of ``train_segment`` (config section ``segment``)."""

    ensemble: int = 3
    epochs: int = 8
    iterations: int = 15
    batch: int = 4
    lr: float = 2e-3
    patience: int = 4
    validation_fraction: float = 0.2
    seed: int = 0
    spacing_mm: float = 3.0
    crop_voxels: int = 64
    patch_voxels: int = 32
    channels: tuple[int, ...] = CHANNELS
