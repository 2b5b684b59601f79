"""Training targets of the direct method: per-slice pseudo-Agatston scores per artery.

Definition (de Vos et al. 2019, section III-D, without the registration scale factor):
the pseudo-Agatston score of an axial slice for an artery is

    y = sum over the artery's reference lesions l in the slice of  n_l * w_l

with ``n_l`` the number of calcium voxels (HU >= ``threshold_hu``) of lesion ``l`` in that
slice and ``w_l`` the Agatston weight (:func:`cacflow.calcium.agatston_weight`) of the
lesion's peak HU *in that slice*. A lesion is a connected component (``connectivity``) of
calcium voxels sharing one reference label, exactly as the scoring engine
(:func:`cacflow.calcium.score_lesions`) defines it, minimum lesion size included; labels
count to arteries through ``artery_groups`` (LM to LAD). The unit is "pixels x weight":
multiplying by the pixel area (mm^2) gives the slice's Agatston contribution before the
increment factor, so that for every artery

    Agatston = sum_slices y * pixel_area_mm2 * increment_factor.

The pixel unit (not mm^2) keeps the target independent of the in-plane pixel size the
network sees (the scoring network counts pixels).

A voxel-wise form is used for training crops: :func:`weight_codes` stores, per voxel, the
artery index and the weight of its (lesion, slice); summing the weights of one artery over
any in-plane crop of a slice gives that crop's target.
"""

from __future__ import annotations

import numpy as np

from cacflow.calcium import agatston_weight, artery_of, bounding_box, label_components
from cacflow.conventions import ARTERIES, Label, ScoringConventions
from cacflow.volume import Geometry

CODE_STRIDE = 8
"""A weight code is ``(artery_index + 1) * CODE_STRIDE + weight``; 0 means no target."""

_SIZE_RTOL = 1e-9  # float residue when comparing sizes with a minimum; not a convention


def weight_codes(
    hu: np.ndarray, labels: np.ndarray, geometry: Geometry, conv: ScoringConventions
) -> np.ndarray:
    """Per-voxel target codes (uint8, (z, y, x)) of a series' reference label mask.

    A voxel of a coronary reference lesion holds ``(a + 1) * CODE_STRIDE + w`` with ``a``
    the index of its artery in :data:`cacflow.conventions.ARTERIES` and ``w`` the Agatston
    weight of its lesion's peak HU in its slice; every other voxel holds 0.
    """
    if hu.shape != labels.shape:
        raise ValueError(f"image {hu.shape} and labels {labels.shape} differ in shape")
    codes = np.zeros(hu.shape, dtype=np.uint8)
    box = bounding_box(labels > 0)
    if box is None:
        return codes
    hu_c = hu[box]
    lab_c = np.where(hu_c >= conv.threshold_hu, labels[box], 0).astype(np.uint8, copy=False)
    cc = label_components(lab_c, conv.connectivity)
    flat = np.flatnonzero(cc)
    if flat.size == 0:
        return codes
    comp_ids, comp = np.unique(cc.ravel()[flat], return_inverse=True)
    hu_v = hu_c.ravel()[flat].astype(np.float64)
    z = flat // (cc.shape[1] * cc.shape[2])
    # weight of each (component, slice): its peak HU in that slice
    key = comp.astype(np.int64) * cc.shape[0] + z
    keys, inv = np.unique(key, return_inverse=True)
    peak = np.full(keys.size, -np.inf)
    np.maximum.at(peak, inv, hu_v)
    weight = np.asarray(agatston_weight(peak, conv.weight_edges_hu))[inv]
    # artery of each component (through its label value) and the minimum lesion size
    value = lab_c.ravel()[flat]
    comp_value = np.zeros(comp_ids.size, dtype=np.int64)
    comp_value[comp] = value
    keep = _meets_min_size(comp, key, geometry, conv)
    artery_index = {a: i for i, a in enumerate(ARTERIES)}
    names = {int(lab): lab.name for lab in Label}
    comp_artery = np.full(comp_ids.size, -1, dtype=np.int64)
    for c, v in enumerate(comp_value):
        artery = artery_of(names[int(v)], conv) if int(v) in names else None
        if artery is not None and keep[c]:
            comp_artery[c] = artery_index[artery]
    a = comp_artery[comp]
    ok = (a >= 0) & (weight > 0)
    out = np.zeros(cc.shape, dtype=np.uint8)
    out.ravel()[flat[ok]] = ((a[ok] + 1) * CODE_STRIDE + weight[ok]).astype(np.uint8)
    codes[box] = out
    return codes


def _meets_min_size(
    comp: np.ndarray, key: np.ndarray, geometry: Geometry, conv: ScoringConventions
) -> np.ndarray:
    """Per component: True when it meets every bound of ``conv.min_lesion`` (as the engine)."""
    n = int(comp.max()) + 1
    n_vox = np.bincount(comp, minlength=n)
    _, inv = np.unique(key, return_inverse=True)
    per_slice = np.bincount(inv)
    owner = np.zeros(per_slice.size, dtype=np.int64)
    owner[inv] = comp
    max_area = np.zeros(n)
    np.maximum.at(max_area, owner, per_slice * geometry.pixel_area_mm2)
    m = conv.min_lesion
    return (
        (n_vox >= m.voxels)
        & (max_area >= m.area_mm2 * (1 - _SIZE_RTOL))
        & (n_vox * geometry.voxel_volume_mm3 >= m.volume_mm3 * (1 - _SIZE_RTOL))
    )


def code_targets(codes: np.ndarray) -> np.ndarray:
    """Sum the weights of each artery over the last two axes of a code array.

    ``codes``: (..., y, x) uint8 from :func:`weight_codes`. Returns (..., 3) float32
    pseudo-Agatston scores (pixels x weight), artery order of ``ARTERIES``.
    """
    artery = codes.astype(np.int64) // CODE_STRIDE - 1
    weight = (codes % CODE_STRIDE).astype(np.float32)
    out = [np.where(artery == a, weight, 0.0).sum(axis=(-2, -1)) for a in range(len(ARTERIES))]
    return np.stack(out, axis=-1).astype(np.float32)


def slice_targets(
    hu: np.ndarray, labels: np.ndarray, geometry: Geometry, conv: ScoringConventions
) -> np.ndarray:
    """Per-slice pseudo-Agatston scores (pixels x weight), shape (z, 3), ARTERIES order."""
    return code_targets(weight_codes(hu, labels, geometry, conv))
