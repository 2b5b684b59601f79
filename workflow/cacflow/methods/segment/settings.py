"""Training settings of the ``segment`` method (torch-free). Defaults equal the config
schema's section ``segment`` (tests/methods/test_trainutil.py checks)."""

from __future__ import annotations

from dataclasses import dataclass

from cacflow.methods.trainutil import TrainSettingsBase

CHANNELS = (16, 32, 64)
"""Feature channels per U-Net level (the shipped model's)."""


@dataclass(kw_only=True)
class SegmentTrainSettings(TrainSettingsBase):
    """Hyper-parameters of ``train_segment`` (config section ``segment``; ``seed``: the
    first ensemble member's, member m uses ``seed + m``)."""

    epochs: int = 8
    patience: int = 4
    lr: float = 2e-3
    ensemble: int = 3
    iterations: int = 15
    batch: int = 4
    spacing_mm: float = 3.0
    crop_voxels: int = 64
    patch_voxels: int = 32
    channels: tuple[int, ...] = CHANNELS
