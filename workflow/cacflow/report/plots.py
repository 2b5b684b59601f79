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


def to_data_uri(fig: Figure, dpi: int = DPI) -> str:
    """Render ``fig`` to PNG (``dpi`` dots per inch) and return it as a base64 data URI."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
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


CT_WINDOW_HU = (-200.0, 800.0)
"""Grey-level window of the decision-feedback figures (HU): soft tissue grey, calcium white."""
FEEDBACK_CMAP = "inferno"
FEEDBACK_MARGIN_PX = 32
"""Pixels kept around the feedback's extent when a figure is cropped to it."""
FEEDBACK_SHOWN_FRACTION = 0.02
"""Feedback below this fraction of the slice's maximum is drawn transparent (the cubic
upsampling of the 8 x 8-pixel cells leaves faint values across the whole window)."""


def crop_box(heat: np.ndarray, margin: int = FEEDBACK_MARGIN_PX) -> tuple[slice, slice]:
    """(rows, columns) slices around the non-zero pixels of ``heat`` plus ``margin``; the
    whole slice when ``heat`` is zero everywhere."""
    ys, xs = np.nonzero(heat > 0)
    if ys.size == 0:
        return slice(0, heat.shape[0]), slice(0, heat.shape[1])
    y0, y1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, heat.shape[0])
    x0, x1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, heat.shape[1])
    return slice(y0, y1), slice(x0, x1)


def feedback_figure(ct: np.ndarray, heat: np.ndarray, pixel_mm: tuple[float, float]) -> str:
    """One axial slice, without and with the ``direct`` method's decision feedback, as a
    data URI.

    ``ct``: HU (y, x); ``heat``: feedback of the same slice (mm^2 x Agatston weight per
    pixel, 0 where nothing was counted); ``pixel_mm``: (column, row) spacing, so pixels
    keep their aspect. Both panels are cropped to the feedback plus
    :data:`FEEDBACK_MARGIN_PX`; the right panel shows the feedback over the slice
    (transparent below :data:`FEEDBACK_SHOWN_FRACTION` of its maximum) with a colour bar.
    """
    peak = float(heat.max())
    heat = np.where(heat > FEEDBACK_SHOWN_FRACTION * peak, heat, 0.0) if peak > 0 else heat
    rows, cols = crop_box(heat)
    ct, heat = ct[rows, cols], heat[rows, cols]
    extent = (0.0, ct.shape[1] * pixel_mm[0], ct.shape[0] * pixel_mm[1], 0.0)
    grey = {"cmap": "gray", "vmin": CT_WINDOW_HU[0], "vmax": CT_WINDOW_HU[1], "extent": extent}
    with rc_context({"font.size": FONT_SIZE}):
        fig = Figure(figsize=(FIGURE_WIDTH_IN * 0.7, 3.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        left.imshow(ct, **grey)
        left.set_title("CT slice")
        right.imshow(ct, **grey)
        shown = np.ma.masked_less_equal(heat, 0.0)
        vmax = float(heat.max()) if heat.max() > 0 else 1.0
        im = right.imshow(shown, cmap=FEEDBACK_CMAP, vmin=0.0, vmax=vmax, alpha=0.8, extent=extent)
        right.set_title("Decision feedback")
        fig.colorbar(im, ax=right, label="mm² × weight per pixel", shrink=0.85)
        for ax in (left, right):
            ax.set_xlabel("mm")
        left.set_ylabel("mm")
        return to_data_uri(fig)


QC_WINDOW_HU = (-200.0, 800.0)
"""Grey-level window of the scan QC pictures (HU; W 1000 / L 300): soft tissue grey,
calcium white."""
QC_LABEL_COLORS: dict[str, str] = {
    "LAD": "#e6194b",
    "LM": "#f58231",
    "LCX": "#4363d8",
    "RCA": "#3cb44b",
    "AV": "#911eb4",
    "MV": "#f032e6",
    "TAC": "#9a6324",
    "OTHER": "#808080",
}
"""Overlay colour of each :class:`cacflow.conventions.Label` (LM drawn with the LAD's
neighbour orange; non-coronary labels purple, magenta, brown, grey)."""
QC_HEART_COLOR = "#ffe119"
QC_REFERENCE_COLOR = "#42d4f4"
QC_ZOOM_MARGIN_MM = 25.0
"""Margin (mm) kept around the slice's calcium (the heart when it has none) in the zoomed
panel."""
QC_DPI = 80


def zoom_box(calcium: np.ndarray, heart: np.ndarray, margin_px: int) -> tuple[slice, slice]:
    """Rows and columns around ``calcium`` plus ``margin_px``; around ``heart`` when the
    slice has no calcium; the whole slice when both are empty."""
    target = calcium if calcium.any() else heart
    return crop_box(target.astype(np.uint8), margin_px)


def qc_figure(
    ct: np.ndarray,
    heart: np.ndarray | None,
    labels: np.ndarray | None,
    reference: np.ndarray | None,
    pixel_mm: tuple[float, float],
) -> str:
    """One axial slice as a scan QC picture (data URI).

    ``ct``: HU (y, x); ``heart``: heart-region mask of the slice (None: no heart found);
    ``labels``: the method's label mask (:class:`cacflow.conventions.Label` values) and
    ``reference``: the reference's, of the same slice (None: none); ``pixel_mm``: (column,
    row) spacing. Left: the whole slice with the heart outline (yellow); right: the same
    zoomed to the calcium (:data:`QC_ZOOM_MARGIN_MM` around it; to the heart when the slice
    has none; its box drawn on the left), the method's voxels coloured by label
    (:data:`QC_LABEL_COLORS`) and the reference's voxels outlined (cyan).
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    from cacflow.conventions import Label

    aspect = pixel_mm[1] / pixel_mm[0]
    grey = {"cmap": "gray", "vmin": QC_WINDOW_HU[0], "vmax": QC_WINDOW_HU[1], "aspect": aspect}
    empty = np.zeros(ct.shape, dtype=bool)
    h = heart.astype(bool) if heart is not None else empty
    lab = labels.astype(np.int16) if labels is not None else np.zeros(ct.shape, np.int16)
    ref = reference > 0 if reference is not None else empty
    margin = int(round(QC_ZOOM_MARGIN_MM / min(pixel_mm)))
    rows, cols = zoom_box((lab > 0) | ref, h, margin)
    codes = sorted(int(v) for v in np.unique(lab) if v > 0 and v in Label._value2member_map_)
    cmap = ListedColormap([QC_LABEL_COLORS[Label(v).name] for v in Label])

    def outline(ax, mask: np.ndarray, color: str, style: str) -> None:
        if mask.any() and not mask.all():
            ax.contour(
                mask.astype(float), levels=[0.5], colors=color, linewidths=1.4, linestyles=style
            )

    with rc_context({"font.size": FONT_SIZE - 1}):
        fig = Figure(figsize=(FIGURE_WIDTH_IN * 0.8, 4.0), layout="constrained")
        left, right = fig.subplots(1, 2)
        left.imshow(ct, **grey)
        outline(left, h, QC_HEART_COLOR, "-")
        left.add_patch(
            Rectangle(
                (cols.start - 0.5, rows.start - 0.5),
                cols.stop - cols.start,
                rows.stop - rows.start,
                fill=False,
                edgecolor="white",
                lw=0.8,
                ls=":",
            )
        )
        left.set_title("Axial slice, heart region")
        zoom_ct = ct[rows, cols]
        right.imshow(zoom_ct, **grey)
        shown = np.ma.masked_equal(lab[rows, cols], 0)
        right.imshow(
            shown,
            cmap=cmap,
            vmin=0.5,
            vmax=len(Label) + 0.5,
            alpha=0.75,
            interpolation="nearest",
            aspect=aspect,
        )
        outline(right, h[rows, cols], QC_HEART_COLOR, "-")
        outline(right, ref[rows, cols], QC_REFERENCE_COLOR, "--")
        right.set_title("Zoomed: calcium overlay")
        for ax in (left, right):
            ax.set_xticks([])
            ax.set_yticks([])
        handles = [
            Patch(color=QC_LABEL_COLORS[Label(v).name], label=f"method {Label(v).name}")
            for v in codes
        ]
        handles.append(Line2D([], [], color=QC_HEART_COLOR, lw=1.4, label="heart region"))
        if reference is not None:
            handles.append(
                Line2D([], [], color=QC_REFERENCE_COLOR, lw=1.4, ls="--", label="reference calcium")
            )
        if not codes:
            none = "no method labels" if labels is None else "no method calcium on this slice"
            handles.append(Patch(color="none", label=none))
        right.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        return to_data_uri(fig, QC_DPI)
