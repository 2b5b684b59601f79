"""The method registry: every scoring method's name, what it needs and where its code is.

The workflow (rules, weight checks, GPU requests), the config schema's ``methods`` enum
(a test keeps them equal), the ``infer`` and ``score`` steps and the report read this
table; nothing else names a method. Adding a method is one module (or package) under
:mod:`cacflow.methods`, one :class:`Method` entry below and its tests.

Entry points are ``"module:function"`` strings imported only when called, so importing the
registry costs nothing and pulls in no torch.

An ``infer`` entry point has the signature ``infer(images, out_dir, *, scoring, model,
device, settings) -> int`` (number of series written): ``images`` holds analysis volumes
``<series_uid>.nii`` (HU, (z, y, x)); ``scoring`` is the config section ``scoring``;
``model`` the weights path (methods with weights) or None; ``settings`` the method's own
config section. It writes either label masks ``<series_uid>.nii`` (uint8
:class:`cacflow.conventions.Label` values on the image grid; output ``labels``) or
``slice_predictions.parquet`` (output ``slice_scores``, scored by the ``score_predictions``
entry point).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Output = Literal["labels", "slice_scores"]


@dataclass(frozen=True)
class Method:
    """One scoring method.

    ``weights``: default weights file relative to the repository (None: no weights), with
    its ``.sha256`` beside it; the config key ``<name>.weights`` overrides it.
    ``gpu``: the ``infer`` rule asks for a GPU (it still runs on CPU).
    ``feedback``: ``infer`` writes ``<series_uid>_heatmap.nii`` decision-feedback maps
    that the report shows. ``train_rule``: the Snakemake rule that trains it (on demand).
    ``training_domain``: what it learnt from, as the report states it beside its figures.
    ``regions``: the non-coronary regions (:data:`cacflow.conventions.REGIONS`) its masks
    label, which get their own scores.parquet rows.
    """

    name: str
    infer: str
    output: Output = "labels"
    score_predictions: str | None = None
    weights: str | None = None
    gpu: bool = False
    feedback: bool = False
    train_rule: str | None = None
    conda_env: str = "envs/imaging.yaml"
    training_domain: str = "not stated"
    config_section: str | None = None
    regions: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)

    def entry(self, which: str) -> Callable[..., Any]:
        """Import and return entry point ``which`` (``infer`` or ``score_predictions``)."""
        spec = getattr(self, which)
        if spec is None:
            raise ValueError(f"method '{self.name}' has no {which} entry point")
        module, _, func = spec.partition(":")
        return getattr(importlib.import_module(module), func)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            name="hu-threshold",
            infer="cacflow.methods.hu_threshold:infer_dir",
            training_domain=(
                "no training; its anatomical rules were set on the synthetic v1 phantom and "
                "on the five shared real CAC-free chest CTs (LIDC-IDRI-0314, Lung-PET-CT-Dx "
                "A0001/A0002), so its figures on those series are not independent evidence"
            ),
        ),
        Method(
            name="direct",
            infer="cacflow.methods.direct.infer:infer_for_registry",
            output="slice_scores",
            score_predictions="cacflow.methods.direct.scores:scores_from_slice_predictions",
            weights="resources/models/direct.pt",
            gpu=True,
            feedback=True,
            train_rule="train_direct",
            conda_env="envs/torch.yaml",
            config_section="direct",
            training_domain=(
                "trained on synthetic CT and real backgrounds with inserted calcium (see "
                "resources/models/MODEL_CARD.md for the exact mix); never on real annotated "
                "calcium: retrain with `train_direct` on your own annotated scans"
            ),
        ),
        Method(
            name="segment",
            infer="cacflow.methods.segment.infer:infer_dir",
            weights="resources/models/segment.pt",
            gpu=True,
            train_rule="train_segment",
            conda_env="envs/torch.yaml",
            config_section="segment",
            regions=("TAC", "AV", "MV"),
            training_domain=(
                "trained on synthetic v2 CT and real CAC-free backgrounds with inserted calcium "
                "(resources/models/MODEL_CARD_segment.md); never on real annotated calcium: "
                "retrain with `train_segment` on your own annotated scans"
            ),
        ),
    )
}
"""Every method the workflow can run, by its config name."""


def get(name: str) -> Method:
    """The registered method ``name``; a one-line error lists the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        known = ", ".join(METHODS)
        raise ValueError(f"unknown method '{name}' (known: {known})") from None


def with_weights() -> list[Method]:
    """Methods that load shipped or trained weights."""
    return [m for m in METHODS.values() if m.weights is not None]
