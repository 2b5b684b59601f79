"""The two ConvNets of the direct method and their weights file.

:class:`RegistrationNet` (de Vos et al. 2019, Table II, left column, lighter): a strided
3-D convolution and two average poolings take the 48^3 registration grid down to 6^3
(the paper pools three times), two more 3-D convolutions, global average pooling, two
fully connected layers of 64 nodes and six outputs (the raw transform parameters,
:func:`cacflow.methods.direct.atlas.raw_to_params`). CPU backward passes of 3-D
convolutions at full grid resolution are slow, hence the stride. Its input has three extra channels
holding each voxel's grid-frame position (normalised), which makes translations easy to
read from globally pooled features. The output layer starts at zero: the identity.

:class:`ScoringNet` (Table II, right column, adapted): 3x3 convolutions with batch
normalisation and ELU, 2x2 max pooling, three times, then a per-position head giving a
positive *density* per artery (softplus) on a grid 8x coarser than the input. A slice's
predicted pseudo-Agatston score (pixels x weight, see :mod:`.targets`) is the sum of the
density over positions, and the network is trained on ``ln(1 + sum)`` with the paper's
loss ``|y_hat - ln(y + 1)|``. The paper's fully connected head is replaced by this sum:
the score is additive over lesions, an empty slice scores (close to) 0 whatever the
window size, any window size works, and the density itself is the decision-feedback
heatmap. (A ReLU head would give exact zeros but lets whole outputs die early in
training; inference sets slice scores below half a voxel to 0 instead.)

Weights file: ``torch.save`` of a plain dict (tensors, numbers, strings): ``format``,
``config`` (architecture, atlas box, input conventions, training facts), ``registration``
and ``scoring`` state dicts and the ``atlas`` image. It is loaded only with
``torch.load(..., weights_only=True)`` after its sha256 matched ``<file>.sha256``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cacflow.conventions import ARTERIES, ScoringConventions
from cacflow.methods.direct.atlas import REG_SHAPE
from cacflow.methods.direct.register import N_CHANNELS
from cacflow.provenance import atomic_path

FORMAT = "cacflow-direct/1"
REG_WIDTHS = (8, 16, 32, 32)
SCORE_WIDTHS = (8, 16, 24, 32)
FC_NODES = 64
N_PARAMS = 6
POOLING = 8
"""Total pooling factor of the scoring network (three 2x2 max poolings)."""


class RegistrationNet(nn.Module):
    """(B, 1, *REG_SHAPE) intensities -> (B, 6) raw transform parameters."""

    def __init__(self, widths: tuple[int, ...] = REG_WIDTHS) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        act = nn.ELU
        self.features = nn.Sequential(
            nn.Conv3d(4, w0, 3, stride=2, padding=1),
            act(),
            nn.AvgPool3d(2),
            nn.Conv3d(w0, w1, 3, padding=1),
            act(),
            nn.AvgPool3d(2),
            nn.Conv3d(w1, w2, 3, padding=1),
            act(),
            nn.Conv3d(w2, w3, 3, padding=1),
            act(),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(w3, FC_NODES),
            act(),
            nn.Linear(FC_NODES, FC_NODES),
            act(),
            nn.Linear(FC_NODES, N_PARAMS),
        )
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        axes = [torch.linspace(-1.0, 1.0, n) for n in REG_SHAPE]
        zz, yy, xx = torch.meshgrid(*axes, indexing="ij")
        self.register_buffer("coords", torch.stack([xx, yy, zz])[None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coords = self.coords.expand(x.shape[0], -1, -1, -1, -1)
        return self.head(self.features(torch.cat([x, coords], dim=1)))


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ELU()]


class ScoringNet(nn.Module):
    """(N, 5, H, W) inputs (H, W multiples of 8) -> (N, 3, H/8, W/8) densities > 0."""

    def __init__(self, widths: tuple[int, ...] = SCORE_WIDTHS) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.features = nn.Sequential(
            *_conv_bn(N_CHANNELS, w0),
            nn.MaxPool2d(2),
            *_conv_bn(w0, w1),
            *_conv_bn(w1, w1),
            nn.MaxPool2d(2),
            *_conv_bn(w1, w2),
            *_conv_bn(w2, w2),
            nn.MaxPool2d(2),
            *_conv_bn(w2, w3),
            nn.Conv2d(w3, len(ARTERIES), 1),
            nn.Softplus(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) predicted pseudo-Agatston scores (pixels x weight) per artery."""
        return self.forward(x).sum(dim=(2, 3))


def log_score_loss(pred_scores: torch.Tensor, target_scores: torch.Tensor) -> torch.Tensor:
    """Mean of |ln(1 + y_hat) - ln(1 + y)| over slices and arteries (scores >= 0)."""
    return (torch.log1p(pred_scores) - torch.log1p(target_scores)).abs().mean()


# --- weights file ------------------------------------------------------------------------
def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksum_path(path: str | os.PathLike) -> Path:
    return Path(f"{path}.sha256")


def save_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike) -> str:
    """Write the weights file and ``<path>.sha256`` (``sha256sum`` format); returns the hash."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    digest = sha256_of(path)
    with atomic_path(checksum_path(path)) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n")
    return digest


def verify_checksum(path: str | os.PathLike) -> str:
    """The file's sha256 when it matches ``<path>.sha256``; ValueError (one line) otherwise."""
    path = Path(path)
    side = checksum_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model weights not found")
    if not side.is_file():
        raise ValueError(f"{path}: no checksum file {side.name}; refusing to load the weights")
    text = side.read_text().split()
    expected = text[0].lower() if text else ""
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(
            f"{path}: sha256 {actual[:16]}... does not match {side.name} "
            f"({expected[:16]}...); refusing to load the weights"
        )
    return actual


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Verify the sha256, then ``torch.load(..., weights_only=True)`` onto the CPU."""
    verify_checksum(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} weights file")
    return ckpt


def make_checkpoint(
    registration: RegistrationNet,
    scoring: ScoringNet,
    atlas: torch.Tensor,
    box_lo: tuple[float, float, float],
    box_hi: tuple[float, float, float],
    conv: ScoringConventions,
    widths: tuple[tuple[int, ...], tuple[int, ...]] = (REG_WIDTHS, SCORE_WIDTHS),
) -> dict[str, Any]:
    """The weights-file dict (CPU tensors and plain values only, see the module docstring).

    ``atlas``: (D, H, W) atlas image; ``box_lo``/``box_hi``: heart box (atlas frame, mm);
    ``conv``: the conventions that defined the training targets.
    """
    config = {
        "reg_widths": list(widths[0]),
        "score_widths": list(widths[1]),
        "box_lo": [float(v) for v in box_lo],
        "box_hi": [float(v) for v in box_hi],
        "threshold_hu": float(conv.threshold_hu),
        "scoring_conventions": conv.to_json(),
        "arteries": list(ARTERIES),
    }
    return {
        "format": FORMAT,
        "config": config,
        "registration": {k: v.detach().cpu() for k, v in registration.state_dict().items()},
        "scoring": {k: v.detach().cpu() for k, v in scoring.state_dict().items()},
        "atlas": atlas.detach().cpu().float().clone(),
    }


def build_networks(ckpt: dict[str, Any]) -> tuple[RegistrationNet, ScoringNet]:
    """Both networks with the checkpoint's weights, in eval mode on the CPU."""
    cfg = ckpt["config"]
    reg = RegistrationNet(tuple(cfg["reg_widths"]))
    reg.load_state_dict(ckpt["registration"])
    score = ScoringNet(tuple(cfg["score_widths"]))
    score.load_state_dict(ckpt["scoring"])
    return reg.eval(), score.eval()
