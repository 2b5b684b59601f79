"""The early-stopping epoch loop shared by the learned methods' trainings."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cacflow.methods.trainutil import TrainSettingsBase, fit_with_early_stopping


@dataclass(kw_only=True)
class _Settings(TrainSettingsBase):
    epochs: int = 6
    patience: int = 2
    lr: float = 0.0


def _fit(validation: list[float] | None) -> tuple[torch.nn.Module, object, list[str]]:
    """A 1-weight net whose weight is the epoch number after each epoch."""
    net = torch.nn.Linear(1, 1, bias=False)
    log: list[str] = []

    def train_epoch(epoch: int) -> float:
        assert net.training
        with torch.no_grad():
            net.weight.fill_(float(epoch))
        return 10.0 - epoch

    losses = iter(validation or [])
    validate = None if validation is None else (lambda: next(losses))
    fit = fit_with_early_stopping(net, train_epoch, validate, _Settings(), log.append, "toy")
    return net, fit, log


def test_stops_after_patience_epochs_and_keeps_the_best_weights() -> None:
    net, fit, log = _fit([3.0, 2.0, 2.5, 2.0, 1.0, 0.5])
    assert fit.best_epoch == 2
    assert fit.train_loss == [9.0, 8.0, 7.0, 6.0]  # stopped after epoch 4 (patience 2)
    assert fit.validation_loss == [3.0, 2.0, 2.5, 2.0]  # equal is not better
    assert float(net.weight.detach()) == 2.0
    assert not net.training
    assert log[0] == "toy epoch 1: loss 9.0000, validation 3.0000"
    assert log[-1] == "early stopping: no better validation loss since epoch 2"


def test_without_validation_every_epoch_runs_and_the_last_is_kept() -> None:
    net, fit, log = _fit(None)
    assert fit.best_epoch == 6
    assert len(fit.train_loss) == 6 and fit.validation_loss == []
    assert float(net.weight.detach()) == 6.0
    assert log == [f"toy epoch {e}: loss {10.0 - e:.4f}" for e in range(1, 7)]


def test_training_settings_default_to_the_schema() -> None:
    """One home per default: each method's settings dataclass agrees with its config
    section on every key the two share."""
    from dataclasses import asdict

    from cacflow.config import default_of
    from cacflow.methods.direct.train import TrainSettings
    from cacflow.methods.segment.settings import SegmentTrainSettings

    for settings, section in ((TrainSettings(), "direct"), (SegmentTrainSettings(), "segment")):
        schema = default_of(section)
        shared = {k: v for k, v in asdict(settings).items() if k in schema}
        assert {"epochs", "patience", "validation_fraction", "seed"} <= set(shared), section
        assert shared == {k: schema[k] for k in shared}, section
