"""Figures are PNG data URIs of the expected size; heatmap colours follow the row share."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from cacflow.report import plots


def decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_agreement_figure_is_a_png_at_display_width() -> None:
    rng = np.random.default_rng(0)
    ref = rng.lognormal(3, 1.5, 200) * (rng.random(200) < 0.7)
    met = ref * rng.lognormal(0, 0.2, 200)
    ba = {"bias": 1.0, "low": -20.0, "high": 22.0}
    two = decode(plots.agreement_figure(ref, met, "m", ba))
    assert two.size[0] == round(plots.FIGURE_WIDTH_IN * plots.DPI)
    three = decode(plots.agreement_figure(ref, met, "m", ba, {"bias": 0, "low": -1, "high": 1}))
    assert three.size[0] == two.size[0]


def test_figures_for_a_method_without_calcium_and_a_single_scan() -> None:
    ref = np.array([0.0, 5.0, 120.0])
    zero = np.zeros(3)
    decode(plots.agreement_figure(ref, zero, "none", {"bias": -41.7, "low": -150.0, "high": 66.0}))
    nan = {"bias": 3.0, "low": np.nan, "high": np.nan}
    decode(plots.agreement_figure(np.array([2.0]), np.array([5.0]), "one", nan))


def test_heatmap_colors() -> None:
    bg, fg = plots.heatmap_colors(np.array([[0.0, 1.0], [0.5, 0.2]]))
    assert bg.shape == (2, 2) and all(c.startswith("#") and len(c) == 7 for c in bg.ravel())
    # light background for 0, dark for 1 (sum of RGB channels)
    level = np.vectorize(lambda c: sum(int(c[i : i + 2], 16) for i in (1, 3, 5)))(bg)
    assert level[0, 0] > level[1, 1] > level[1, 0] > level[0, 1]
    assert fg[0, 1] == "#ffffff" and fg[0, 0] != "#ffffff"
