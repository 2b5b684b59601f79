"""Figures of the report, rendered with matplotlib's Agg canvas to embeddable PNG.

Confusion matrices are HTML tables coloured here (:func:`heatmap_colors`): crisp at any
zoom and their numbers can be copied.

Each function returns a ``data:image/png;base64,...`` URI so the HTML page needs no
other file. Figures are built on ``matplotlib.figure.Figure`` (no pyplot global state) and
PNGs carry no software/date metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

DPI = 100
POINT_SIZE = 9
POINT_ALPHA = 0.45
MAX_POINT_ALPHA_N = 2000
"""Above this many points the markers get lighter so dense regions stay readable."""
SCORE_TICKS = (0, 10, 100, 1000, 10000)
"""Agatston values labelled on ln(x + 1) axes (1 too when the axis ends below 10)."""
FONT_SIZE = 11
FIGURE_WIDTH_IN = 11.0
"""Figures are drawn at about the width they are shown (1100 px), so text is not shrunk."""
BA_LINEAR_UNTIL = 10.0
"""Bland-Altman horizontal axis: linear up to this mean score, logarithmic above."""
COLOR_POINTS = "#1f5fa8"
COLOR_BIAS = "#c0392b"
COLOR_LIMITS = "#7f8c8d"
HEATMAP_CMAP = "Blues"
DARK_CELL = 0.55
"""Heatmap cells with a row share above this get white text."""


def to_data_uri(fig: Figure) -> str:
    """Render ``fig`` to PNG and return it as a base64 data URI."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _log_score_axis(ax, axis: str, vmax: float) -> None:
    ticks = [t for t in SCORE_TICKS if t <= max(vmax, 1.0) * 1.01]
    if len(ticks) < 3:
        ticks = sorted({0, 1, *ticks})
    pos = np.log1p(ticks)
    labels = [f"{t:,}" for t in ticks]
    if axis == "x":
        ax.set_xticks(pos, labels)
    else:
        ax.set_yticks(pos, labels)


def _alpha(n: int) -> float:
    return POINT_ALPHA if n <= MAX_POINT_ALPHA_N else max(0.08, POINT_ALPHA * MAX_POINT_ALPHA_N / n)


def scatter_panel(ax, reference: np.ndarray, method: np.ndarray, name: str) -> None:
    """Reference vs method on ln(x + 1) axes with the identity line."""
    x, y = np.log1p(reference), np.log1p(method)
    top = float(max(x.max(initial=0.0), y.max(initial=0.0))) * 1.05 + 0.1
    ax.plot([0, top], [0, top], color=COLOR_LIMITS, lw=1, ls="--", label="identity")
    ax.scatter(x, y, s=POINT_SIZE, alpha=_alpha(x.size), color=COLOR_POINTS, lw=0, rasterized=True)
    ax.set_xlim(-0.1, top)
    ax.set_ylim(-0.1, top)
    ax.set_aspect("equal")
    vmax = float(np.expm1(top))
    _log_score_axis(ax, "x", vmax)
    _log_score_axis(ax, "y", vmax)
    ax.set_xlabel("Reference Agatston score (log scale)")
    ax.set_ylabel(f"{name} Agatston score (log scale)")
    ax.set_title("Scores (each dot one scan)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", frameon=False)


def bland_altman_panel(
    ax,
    reference: np.ndarray,
    method: np.ndarray,
    *,
    bias: float,
    low: float,
    high: float,
    log: bool = False,
) -> None:
    """Differences (method - reference) against the pair mean, bias and limits drawn."""
    if log:
        reference, method = np.log1p(reference), np.log1p(method)
    mean = (reference + method) / 2.0
    diff = method - reference
    ax.scatter(
        mean, diff, s=POINT_SIZE, alpha=_alpha(mean.size), color=COLOR_POINTS, lw=0, rasterized=True
    )
    ax.axhline(0.0, color="black", lw=0.8)
    unit = "" if log else " Agatston"
    for value, style, text in (
        (bias, "-", "bias"),
        (low, "--", "lower limit"),
        (high, "--", "upper limit"),
    ):
        if np.isfinite(value):
            color = COLOR_BIAS if text == "bias" else COLOR_LIMITS
            ax.axhline(value, color=color, ls=style, lw=1.4)
            shown = f"{value:,.2f}" if log else f"{value:,.1f}"
            shown = shown.lstrip("-") if float(shown.replace(",", "")) == 0 else shown
            ax.annotate(
                f"{text} {shown}",
                xy=(1.0, value),
                xycoords=("axes fraction", "data"),
                xytext=(-4, 3),
                textcoords="offset points",
                ha="right",
                fontsize=FONT_SIZE - 1,
                color=color,
            )
    if log:
        ax.set_xlabel("Mean of ln(score + 1)")
        ax.set_ylabel("Difference of ln(score + 1), method - reference")
        ax.set_title("Bland-Altman, logarithmic")
    else:
        ax.set_xscale("symlog", linthresh=BA_LINEAR_UNTIL)
        ax.set_xlim(0.0, max(float(mean.max(initial=0.0)) * 1.4, BA_LINEAR_UNTIL))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlabel(f"Mean of reference and method{unit} (log scale above {BA_LINEAR_UNTIL:g})")
        ax.set_ylabel(f"Difference, method - reference{unit}")
        ax.set_title("Bland-Altman")
    ax.grid(alpha=0.3)


def agreement_figure(
    reference: np.ndarray,
    method: np.ndarray,
    name: str,
    ba: dict[str, float],
    ba_log: dict[str, float] | None = None,
) -> str:
    """Scatter and Bland-Altman panels of one method (total scores) as a data URI.

    ``ba``: ``bias``, ``low``, ``high`` (Agatston); ``ba_log`` the same on ln(x + 1) adds
    a third panel.
    """
    n_panels = 3 if ba_log else 2
    with rc_context({"font.size": FONT_SIZE}):
        fig = Figure(figsize=(FIGURE_WIDTH_IN, 4.4 if n_panels == 2 else 3.9), layout="constrained")
        axes = fig.subplots(1, n_panels, width_ratios=[1.0] + [1.25] * (n_panels - 1))
        scatter_panel(axes[0], reference, method, name)
        bland_altman_panel(axes[1], reference, method, **ba)
        if ba_log:
            bland_altman_panel(axes[2], reference, method, log=True, **ba_log)
        return to_data_uri(fig)


def heatmap_colors(share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Background and text colours (hex) of heatmap cells for row shares in [0, 1]."""
    cmap = colormaps[HEATMAP_CMAP]
    rgba = cmap(np.clip(np.asarray(share, dtype=float), 0.0, 1.0))
    background = np.array([to_hex(c) for c in rgba.reshape(-1, 4)]).reshape(np.shape(share))
    text = np.where(np.asarray(share) > DARK_CELL, "#ffffff", "#1d2733")
    return background, text
