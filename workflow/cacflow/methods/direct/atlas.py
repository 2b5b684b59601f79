"""Atlas space, the 6-parameter transform and the coarse grids of atlas registration.

Frames. A volume's *grid frame* has its origin at the centre of the voxel grid and its
axes along the array's x (column), y (row) and z (slice) index axes, in mm: voxel
(k, j, i) of an array of shape (D, H, W) with spacing (sx, sy, sz) sits at
``((i - (W-1)/2) sx, (j - (H-1)/2) sy, (k - (D-1)/2) sz)``. For axial scans stored as
:mod:`cacflow.volume` writes them, these axes are the LPS axes. The *atlas frame* is the
grid frame of the atlas image (mm, centred on it).

Transform (de Vos et al. 2019, Fig. 4): six parameters map atlas points ``p_a`` to the
grid frame of a scan,

    p = t + Rz(theta) @ diag(s_xy, s_xy, s_z) @ p_a

with translations ``t = (tx, ty, tz)`` in mm, a rotation ``theta`` (rad) about z, one
in-plane scale and one z scale. The network's raw outputs ``r`` map to them as
``t = TRANSLATION_SCALE_MM * r[0:3]``, ``theta = pi * tanh(r[3])``,
``s = MAX_SCALE ** tanh(r[4:6])`` (so scales stay in [1/4, 4] as in the paper, and raw
zeros are the identity: the scan's grid centre on the atlas centre).

Registration works on coarse grids: a scan is average-pooled and resampled (trilinear) to
:data:`REG_SHAPE` voxels of :data:`REG_SPACING_MM` centred on its grid centre; the atlas
has :data:`ATLAS_SHAPE` voxels of :data:`ATLAS_SPACING_MM`. Intensities are
``(clip(HU, -1000, 1000) + 1000) / 1000`` (air 0, water 1); outside the scan is air.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

REG_SPACING_MM = 8.0
"""Voxel size (mm, isotropic) of the coarse grid a scan is registered on."""
REG_SHAPE = (48, 48, 48)
"""(z, y, x) voxels of the coarse registration grid: a 384 mm cube around the grid centre."""
ATLAS_SPACING_MM = 6.0
"""Voxel size (mm, isotropic) of the atlas image."""
ATLAS_SHAPE = (24, 28, 28)
"""(z, y, x) voxels of the atlas image (144 x 168 x 168 mm)."""
TRANSLATION_SCALE_MM = 50.0
"""mm of translation per unit of the network's raw translation outputs."""
MAX_SCALE = 4.0
"""Scales are bounded to [1 / MAX_SCALE, MAX_SCALE] (paper: 0.25 to 4)."""
AIR_HU = -1000.0
HIGH_HU = 1000.0
"""Registration intensities clip HU to [AIR_HU, HIGH_HU] and map them to [0, 2]."""


@dataclass(frozen=True)
class Transform:
    """Atlas frame -> a scan's grid frame (mm); see the module docstring."""

    tx: float = 0.0
    ty: float = 0.0
    tz: float = 0.0
    theta: float = 0.0
    s_xy: float = 1.0
    s_z: float = 1.0

    def linear(self) -> np.ndarray:
        c, s = math.cos(self.theta), math.sin(self.theta)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return rot @ np.diag([self.s_xy, self.s_xy, self.s_z])

    def to_scan(self, p_atlas: np.ndarray) -> np.ndarray:
        """Atlas points (..., 3) xyz mm -> grid-frame points of the scan (mm)."""
        return np.asarray(p_atlas, float) @ self.linear().T + np.array([self.tx, self.ty, self.tz])

    def to_atlas(self, p_scan: np.ndarray) -> np.ndarray:
        """Grid-frame points (..., 3) xyz mm of the scan -> atlas points (mm)."""
        rel = np.asarray(p_scan, float) - np.array([self.tx, self.ty, self.tz])
        return rel @ np.linalg.inv(self.linear()).T

    def as_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in ("tx", "ty", "tz", "theta", "s_xy", "s_z")}


def raw_to_params(raw: torch.Tensor) -> torch.Tensor:
    """Network outputs (B, 6) -> (B, 6) physical parameters (tx, ty, tz mm, theta rad,
    s_xy, s_z), differentiably."""
    t = raw[:, 0:3] * TRANSLATION_SCALE_MM
    theta = math.pi * torch.tanh(raw[:, 3:4])
    scales = MAX_SCALE ** torch.tanh(raw[:, 4:6])
    return torch.cat([t, theta, scales], dim=1)


def params_to_affine(params: torch.Tensor) -> torch.Tensor:
    """(B, 6) physical parameters -> (B, 3, 4) affine [A | t] in mm (atlas -> scan)."""
    tx, ty, tz, th, sxy, sz = params.unbind(dim=1)
    c, s = torch.cos(th), torch.sin(th)
    zero = torch.zeros_like(tx)
    rows = [
        torch.stack([c * sxy, -s * sxy, zero, tx], dim=1),
        torch.stack([s * sxy, c * sxy, zero, ty], dim=1),
        torch.stack([zero, zero, sz, tz], dim=1),
    ]
    return torch.stack(rows, dim=1)


def transforms_from_params(params: torch.Tensor) -> list[Transform]:
    return [Transform(*(float(v) for v in row)) for row in params.detach().cpu().double()]


def grid_points(shape: tuple[int, int, int], spacing_mm: float) -> torch.Tensor:
    """Grid-frame points (D, H, W, 3) xyz mm of a centred grid with isotropic spacing."""
    axes = [(torch.arange(n, dtype=torch.float32) - (n - 1) / 2.0) * spacing_mm for n in shape]
    zz, yy, xx = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([xx, yy, zz], dim=-1)


def intensity(hu: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Registration intensity of HU values (air 0, water 1, clipped at 2)."""
    t = torch.as_tensor(hu, dtype=torch.float32)
    return (t.clamp(AIR_HU, HIGH_HU) - AIR_HU) / -AIR_HU


def registration_grid(hu: np.ndarray, spacing_xyz: tuple[float, float, float]) -> torch.Tensor:
    """A scan (z, y, x) HU with voxel spacing (sx, sy, sz) mm -> (1, *REG_SHAPE) intensities.

    The scan is average-pooled by the integer factors closest below REG_SPACING_MM /
    spacing, then sampled trilinearly at the registration grid's points (grid frame).
    """
    vol = intensity(hu)[None, None]
    spacing_zyx = np.asarray(spacing_xyz, float)[::-1]
    k = [max(1, int(REG_SPACING_MM // s)) for s in spacing_zyx]
    k = [min(kk, n) for kk, n in zip(k, vol.shape[2:], strict=True)]
    pooled = F.avg_pool3d(vol, kernel_size=k, stride=k)
    n_in = np.asarray(vol.shape[2:])
    n_out = np.asarray(pooled.shape[2:])
    kk = np.asarray(k)
    # centre of the pooled grid relative to the scan's grid centre (mm), and half extents
    offset = ((kk * n_out - 1) / 2.0 - (n_in - 1) / 2.0) * spacing_zyx
    half = np.maximum(kk * spacing_zyx * (n_out - 1) / 2.0, 1e-6)
    pts = grid_points(REG_SHAPE, REG_SPACING_MM)
    norm = (pts - torch.tensor(offset[::-1].copy(), dtype=torch.float32)) / torch.tensor(
        half[::-1].copy(), dtype=torch.float32
    )
    out = F.grid_sample(pooled, norm[None], mode="bilinear", align_corners=True)
    return out[0]


def warp(moving: torch.Tensor, affine: torch.Tensor, out_points: torch.Tensor) -> torch.Tensor:
    """Sample registration grids at transformed points.

    ``moving``: (B, 1, *REG_SHAPE) intensities; ``affine``: (B, 3, 4) mm, atlas -> scan;
    ``out_points``: (D, H, W, 3) xyz mm points of the output grid (atlas frame).
    Returns (B, 1, D, H, W); outside the registration grid is air (0).
    """
    pts = out_points.reshape(1, -1, 3)
    mapped = pts @ affine[:, :, :3].transpose(1, 2) + affine[:, None, :, 3]
    half = torch.tensor(
        [(n - 1) / 2.0 * REG_SPACING_MM for n in REG_SHAPE[::-1]], dtype=mapped.dtype
    ).to(mapped.device)
    norm = (mapped / half).reshape(affine.shape[0], *out_points.shape)
    return F.grid_sample(moving, norm, mode="bilinear", padding_mode="zeros", align_corners=True)


def ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Normalised cross-correlation of each pair of images in a batch, (B,) in [-1, 1]."""
    a = a.flatten(1) - a.flatten(1).mean(dim=1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(dim=1, keepdim=True)
    den = torch.sqrt((a * a).sum(dim=1) * (b * b).sum(dim=1)).clamp_min(1e-8)
    return (a * b).sum(dim=1) / den


def random_affine(generator: torch.Generator, n: int, strength: float = 1.0) -> torch.Tensor:
    """(n, 3, 4) random augmentation transforms (mm): translations up to 20 mm in-plane and
    15 mm in z, rotation up to 8 deg about z, scales within 8 %, times ``strength``."""
    u = torch.rand(n, 6, generator=generator) * 2.0 - 1.0
    params = torch.stack(
        [
            20.0 * strength * u[:, 0],
            20.0 * strength * u[:, 1],
            15.0 * strength * u[:, 2],
            math.radians(8.0) * strength * u[:, 3],
            1.0 + 0.08 * strength * u[:, 4],
            1.0 + 0.08 * strength * u[:, 5],
        ],
        dim=1,
    )
    return params_to_affine(params)


@dataclass(frozen=True)
class HeartBox:
    """Box in the atlas frame (mm, xyz) holding the coronary calcium of the training set,
    with a margin: the region the scoring network looks at."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    @property
    def centre(self) -> np.ndarray:
        return (np.asarray(self.lo) + np.asarray(self.hi)) / 2.0

    @property
    def half(self) -> np.ndarray:
        return (np.asarray(self.hi) - np.asarray(self.lo)) / 2.0


def heart_box(points_atlas: np.ndarray, margin_mm: float, fallback: HeartBox) -> HeartBox:
    """Bounding box of atlas-frame points (N, 3) grown by ``margin_mm``; ``fallback`` when
    there are no points."""
    if len(points_atlas) == 0:
        return fallback
    lo = points_atlas.min(axis=0) - margin_mm
    hi = points_atlas.max(axis=0) + margin_mm
    return HeartBox(tuple(float(v) for v in lo), tuple(float(v) for v in hi))


def atlas_extent_box() -> HeartBox:
    """The whole atlas image as a box (mm, atlas frame)."""
    half = np.array([(n - 1) / 2.0 * ATLAS_SPACING_MM for n in ATLAS_SHAPE[::-1]])
    return HeartBox(tuple(float(v) for v in -half), tuple(float(v) for v in half))
