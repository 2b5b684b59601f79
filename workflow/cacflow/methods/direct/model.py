"""The two ConvNets of the direct method and their weights file.

:class:`RegistrationNet` (de Vos et al. 2019, Table II, left column, lighter): a strided
3-D convolution and two average poolings take the 48^3 registration grid down to 6^3
(the paper pools three times), two more 3-D convolutions, global average pooling, two
fully connected layers of 64 nodes and six outputs (the raw transform parameters,
:func:`cacflow.methods.direct.atlas.raw_to_params`). CPU backward passes of 3-D
convolutions at full grid resolution are slow, hence the stride. Its input has three extra channels
holding each voxel's grid-frame position (normalised), which makes translations easy to
read from globally pooled features. The output layer starts at zero: the identity.

:class:`ScoringNet` (Table II, right column, adapted): a trunk of 3x3 convolutions with
batch normalisation and ELU and three 2x2 max poolings (the paper's, fewer filters) sees
the slice; its features, on a grid 8x coarser than the input, with the cell's band
counts (below) and atlas position, drive a hidden 1x1 layer and two 1x1 heads that turn
fixed pixel counts into scores. Per cell of 8 x 8 pixels the network counts the
pixels reaching each Agatston weight band (HU >= 130, 200, 300, 400 by default: a pixel's
own weight is the number of bands it reaches, summed by average pooling, which keeps
counts), multiplies each count by a learnt gain in (0, :data:`MAX_GAIN`) (a lesion is
weighted by its peak, so its dimmer pixels count more than their own weight), and routes
the result to LAD, LCX, RCA or "not coronary" with learnt probabilities (softmax). A
slice's predicted pseudo-Agatston score per artery (pixels x weight, :mod:`.targets`) is
the sum over cells; the network is trained on ``ln(1 + sum)`` with the paper's loss
``|y_hat - ln(y + 1)|``. Why not the paper's fully connected head: the score is additive
over lesions and must be exactly 0 on a slice without calcium (a scan sums ~70 slices);
counting is learnt from scratch only with far more iterations than 2 CPU cores give in
minutes; any window size works; and ``amount x P(coronary)`` per cell is the
decision-feedback heatmap. The network still regresses the slice score directly from
the image, without voxel labels.

Weights file: ``torch.save`` of a plain dict (tensors, numbers, strings): ``format``,
``config`` (architecture, atlas box, input conventions, training facts), ``registration``
and ``scoring`` state dicts and the ``atlas`` image. It is loaded only with
``torch.load(..., weights_only=True)`` after its sha256 matched ``<file>.sha256``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cacflow.conventions import ARTERIES, ScoringConventions
from cacflow.methods import torchutil
from cacflow.methods.direct.atlas import REG_SHAPE
from cacflow.methods.direct.register import CALCIUM_SCALE_HU, N_CHANNELS
from cacflow.methods.torchutil import checksum_path as checksum_path
from cacflow.methods.torchutil import save_checkpoint as save_checkpoint
from cacflow.methods.torchutil import sha256_of as sha256_of
from cacflow.methods.torchutil import verify_checksum as verify_checksum

FORMAT = "cacflow-direct/1"
REG_WIDTHS = (8, 16, 32, 32)
SCORE_WIDTHS = (8, 16, 24, 32)
FC_NODES = 64
N_PARAMS = 6
POOLING = 8
"""Total pooling factor of the scoring network (three 2x2 max poolings)."""
HEAD_WIDTH = 32
"""Hidden 1x1 layer of the heads (input: trunk features, log band counts, cell position)."""
MAX_GAIN = 4.0
"""Largest factor between a pixel's own Agatston weight and the weight it is counted with
(a 140 HU pixel of a lesion peaking at 450 HU counts 4 times its own weight of 1)."""


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


def band_levels(conv: ScoringConventions) -> list[float]:
    """Levels of the calcium input channel (:mod:`.register`) at the Agatston weight edges:
    a pixel's Agatston weight is the number of levels its calcium channel reaches."""
    return [
        (max(float(e), float(conv.threshold_hu)) - float(conv.threshold_hu)) / CALCIUM_SCALE_HU
        for e in conv.weight_edges_hu
    ]


class ScoringNet(nn.Module):
    """(N, 5, H, W) inputs (H, W multiples of 8) -> (N, 3, H/8, W/8) densities >= 0.

    ``levels``: :func:`band_levels` of the conventions the network is trained for.
    """

    def __init__(self, widths: tuple[int, ...] = SCORE_WIDTHS, levels: list[float] | None = None):
        super().__init__()
        w0, w1, w2, w3 = widths
        levels = band_levels(ScoringConventions()) if levels is None else levels
        self.trunk = nn.Sequential(
            *_conv_bn(N_CHANNELS, w0),
            nn.MaxPool2d(2),
            *_conv_bn(w0, w1),
            *_conv_bn(w1, w1),
            nn.MaxPool2d(2),
            *_conv_bn(w1, w2),
            *_conv_bn(w2, w2),
            nn.MaxPool2d(2),
            *_conv_bn(w2, w3),
        )
        n_in = w3 + len(levels) + 3  # trunk features, log band counts, atlas x, y, z
        self.head = nn.Sequential(nn.Conv2d(n_in, HEAD_WIDTH, 1), nn.ELU())
        self.gain = nn.Conv2d(HEAD_WIDTH, len(levels), 1)
        self.route = nn.Conv2d(HEAD_WIDTH, len(ARTERIES) + 1, 1)
        for layer in (self.gain, self.route):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.constant_(self.gain.bias, -math.log(MAX_GAIN - 1.0))  # gain 1 at the start
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32))

    def band_counts(self, x: torch.Tensor) -> torch.Tensor:
        """(N, bands, H/8, W/8): pixels of each cell reaching each weight band."""
        bands = (x[:, 1:2] >= self.levels.view(1, -1, 1, 1)).to(x.dtype)
        return F.avg_pool2d(bands, POOLING) * float(POOLING * POOLING)

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``amount`` (N, 1, h, w) pixels x weight of calcium per cell and ``route``
        (N, 4, h, w) probabilities of LAD, LCX, RCA and non-coronary."""
        counts = self.band_counts(x)
        where = F.avg_pool2d(x[:, 2:5], POOLING)
        f = self.head(torch.cat([self.trunk(x), torch.log1p(counts), where], dim=1))
        gain = MAX_GAIN * torch.sigmoid(self.gain(f))
        amount = (counts * gain).sum(dim=1, keepdim=True)
        return amount, torch.softmax(self.route(f), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        amount, route = self.parts(x)
        return amount * route[:, : len(ARTERIES)]

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) predicted pseudo-Agatston scores (pixels x weight) per artery."""
        return self.forward(x).sum(dim=(2, 3))


def log_score_loss(pred_scores: torch.Tensor, target_scores: torch.Tensor) -> torch.Tensor:
    """Mean of |ln(1 + y_hat) - ln(1 + y)| over slices and arteries (scores >= 0)."""
    return (torch.log1p(pred_scores) - torch.log1p(target_scores)).abs().mean()


# --- weights file (shared helpers: cacflow.methods.torchutil) ---------------------------
def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Verify the sha256, then ``torch.load(..., weights_only=True)`` onto the CPU."""
    return torchutil.load_checkpoint(path, FORMAT)


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
        "band_levels": band_levels(conv),
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
    score = ScoringNet(tuple(cfg["score_widths"]), list(cfg["band_levels"]))
    score.load_state_dict(ckpt["scoring"])
    return reg.eval(), score.eval()


ATLAS_CONTENT = (
    "direct-method atlas: mean registered training scan, intensity "
    "(clip(HU,-1000,1000)+1000)/1000; frame = atlas frame (mm, centred)"
)


def export_atlas(model: str | os.PathLike, out: str | os.PathLike) -> None:
    """Write the atlas embedded in the weights file ``model`` as a NIfTI volume ``out``
    (6 mm voxels, centred on the atlas frame's origin, identity direction) with a sidecar
    holding the heart box (atlas frame, mm) and the weights' sha256: to look at with any
    viewer; inference reads the atlas from the weights file."""
    import numpy as np

    from cacflow.methods.direct.atlas import ATLAS_SPACING_MM
    from cacflow.volume import Geometry, Volume, write_volume

    ckpt = load_checkpoint(model)
    atlas = ckpt["atlas"].numpy().astype(np.float32)
    origin = tuple(-(n - 1) / 2.0 * ATLAS_SPACING_MM for n in atlas.shape[::-1])
    geometry = Geometry(
        origin=origin,
        spacing=(ATLAS_SPACING_MM,) * 3,
        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        slice_thickness_mm=ATLAS_SPACING_MM,
    )
    meta = {
        "content": ATLAS_CONTENT,
        "heart_box_lo_mm": ckpt["config"]["box_lo"],
        "heart_box_hi_mm": ckpt["config"]["box_hi"],
        "model_sha256": sha256_of(model),
    }
    write_volume(Volume(atlas, geometry, meta), out)
