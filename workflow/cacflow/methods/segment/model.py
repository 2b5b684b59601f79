"""The ``segment`` network (a MONAI 3D U-Net) and its weights file.

Network: :class:`monai.networks.nets.UNet`, 3D, 5 input channels (:func:`.data.coarse_inputs`),
:data:`.data.N_CLASSES` output logits per coarse voxel, ``channels`` per level with stride 2
between levels, no residual units (CPU training time), batch normalisation.

Weights file (``torch.save`` of a plain dict; :mod:`cacflow.methods.torchutil`):
``format`` (:data:`FORMAT`), ``config`` (architecture, grid and input conventions: spacing,
crop and patch sizes, the calcium threshold it was trained with) and ``members``: one dict
per ensemble model with its ``state`` (state dict), ``seed``, ``validation_series`` and
``triage_threshold`` (the model's operating point, :mod:`.triage`). It is loaded only with
``torch.load(..., weights_only=True)`` after its sha256 matched ``<file>.sha256``.
"""

from __future__ import annotations

import os
from typing import Any

from monai.networks.nets import UNet

from cacflow.methods import torchutil
from cacflow.methods.segment.data import N_CLASSES, N_INPUTS
from cacflow.methods.segment.settings import CHANNELS

FORMAT = "cacflow-segment/1"


def build_unet(channels: tuple[int, ...] = CHANNELS) -> UNet:
    """A 3D U-Net: (B, N_INPUTS, D, H, W) -> (B, N_CLASSES, D, H, W) logits; D, H, W multiples
    of ``2 ** (len(channels) - 1)``."""
    return UNet(
        spatial_dims=3,
        in_channels=N_INPUTS,
        out_channels=N_CLASSES,
        channels=tuple(channels),
        strides=(2,) * (len(channels) - 1),
        num_res_units=0,
        norm="batch",
    )


def make_checkpoint(config: dict[str, Any], members: list[dict[str, Any]]) -> dict[str, Any]:
    """The weights-file dict; ``members``: ``state`` (a module's state dict) plus plain
    values per ensemble model."""
    out = []
    for m in members:
        state = {k: v.detach().cpu().clone() for k, v in m["state"].items()}
        out.append({**{k: v for k, v in m.items() if k != "state"}, "state": state})
    return {"format": FORMAT, "config": dict(config), "members": out}


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Verify the sha256, then ``torch.load(..., weights_only=True)`` onto the CPU."""
    ckpt = torchutil.load_checkpoint(path, FORMAT)
    if not ckpt.get("members"):
        raise ValueError(f"{path}: weights file holds no model")
    return ckpt


def build_members(ckpt: dict[str, Any], n: int | None = None) -> list[UNet]:
    """The first ``n`` (default: all) ensemble networks of a checkpoint, in eval mode."""
    members = ckpt["members"][: n or None]
    nets = []
    for m in members:
        net = build_unet(tuple(ckpt["config"]["channels"]))
        net.load_state_dict(m["state"])
        nets.append(net.eval())
    return nets
