"""Training helpers of the direct method: datasets, validation split, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cacflow.methods.direct.train import augment, dataset_of, split_validation


def test_dataset_of_reads_the_workflow_layout() -> None:
    p = Path("results/train_v2/work/resampled/b0000/1.2.3.nii")
    assert dataset_of(p) == "train_v2"
    assert dataset_of(Path("/data/mine/1.2.3.nii")) == "/data/mine"


def test_validation_split_per_dataset() -> None:
    groups = ["a"] * 10 + ["b"] * 5 + ["c"]
    held = split_validation(groups, 0.2, np.random.default_rng(0))
    g = np.array(groups)
    assert held[g == "a"].sum() == 2
    assert held[g == "b"].sum() == 1  # round(1.0), at least one
    assert held[g == "c"].sum() == 0  # a single scan stays in training
    again = split_validation(groups, 0.2, np.random.default_rng(0))
    np.testing.assert_array_equal(held, again)
    assert not split_validation(groups, 0.0, np.random.default_rng(0)).any()


def test_augmentation_keeps_the_calcium_channel() -> None:
    """Only anatomy (0) and positions (2-4) change; the target is defined on channel 1."""
    x = torch.rand(4, 5, 16, 16)
    out = augment(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[:, 1], x[:, 1], rtol=0, atol=0)
    assert not torch.equal(out[:, 0], x[:, 0])
    assert not torch.equal(out[:, 2:], x[:, 2:])
    again = augment(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again, rtol=0, atol=0)
