"""Example figures of the ``direct`` method's decision feedback for the report.

``cacflow infer direct`` writes ``<series_uid>_heatmap.nii`` (voxel = that voxel's share
of the predicted Agatston score, mm^2 x weight; see :func:`cacflow.methods.direct.infer.heatmap`)
for the first series of each batch (three by default). The report shows, for each such
map, the axial slice with the most predicted calcium beside the same slice with the map
overlaid, so a reader can see *where* the network counted calcium, and whether it was a
coronary artery.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cacflow.conventions import REFERENCE_METHOD, TOTAL
from cacflow.report.plots import feedback_figure
from cacflow.volume import HEATMAP_SUFFIX, read_volume

MAX_EXAMPLES = 3
DEFAULT_METHOD = "direct"
"""The method whose maps are shown when none is named (the only one writing maps today)."""


def feedback_pairs(images_dir: Path, maps_dir: Path) -> list[tuple[Path, Path]]:
    """(analysis volume, feedback map) pairs of ``maps_dir``'s maps, by series_uid."""
    pairs = []
    for m in sorted(Path(maps_dir).glob(f"*{HEATMAP_SUFFIX}.nii")):
        image = Path(images_dir) / f"{m.name.removesuffix(HEATMAP_SUFFIX + '.nii')}.nii"
        if image.exists():
            pairs.append((image, m))
    return pairs


def _total(scores: pd.DataFrame, method: str, uid: str) -> float | None:
    hit = scores[
        (scores["method"] == method) & (scores["series_uid"] == uid) & (scores["artery"] == TOTAL)
    ]
    return float(hit["agatston"].iloc[0]) if len(hit) else None


def feedback_examples(
    pairs: Sequence[tuple[Path, Path]],
    scores: pd.DataFrame,
    reference: str = REFERENCE_METHOD,
    limit: int = MAX_EXAMPLES,
    method: str = DEFAULT_METHOD,
) -> list[dict[str, Any]]:
    """Up to ``limit`` figures of ``method``'s maps (dicts: ``series_uid``, ``slice``,
    ``predicted``, ``method``, ``score`` (that method's total) and ``reference`` Agatston
    or None, ``uri``), maps with predicted calcium first (then by series_uid).
    ``predicted`` is the map's sum on the shown slice (mm^2 x weight, before the
    increment factor)."""
    loaded = []
    for image_path, map_path in pairs:
        heat = read_volume(map_path).array
        loaded.append((-float(heat.sum() > 0), image_path.stem, image_path, heat))
    out = []
    for _, uid, image_path, heat in sorted(loaded, key=lambda t: t[:2])[:limit]:
        image = read_volume(image_path)
        per_slice = heat.sum(axis=(1, 2))
        z = int(np.argmax(per_slice)) if per_slice.max() > 0 else heat.shape[0] // 2
        spacing = image.geometry.spacing
        out.append(
            {
                "series_uid": uid,
                "slice": z,
                "predicted": float(per_slice[z]),
                "method": method,
                "score": _total(scores, method, uid),
                "reference": _total(scores, reference, uid),
                "uri": feedback_figure(image.array[z], heat[z], (spacing[0], spacing[1])),
            }
        )
    return out
