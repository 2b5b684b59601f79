"""The report's CAC-negative triage section (method ``segment``, seed 003): added to the
rendered page like the study section, so the report template stays as it is."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

SECTION_ID = "triage"
ROWS = (
    ("negative_excluded_fraction", "Truly negative scans called negative (excluded)", True),
    ("false_negatives", "Scans with coronary calcium called negative (target 0)", False),
    ("false_negative_rate", "Share of scans with coronary calcium called negative", True),
    ("called_negative_fraction", "All scans called negative", True),
    ("n_negative", "Scans without coronary calcium (reference)", False),
    ("n_positive", "Scans with coronary calcium (reference)", False),
)


def _cell(value: float, low: float, high: float, share: bool) -> str:
    if not np.isfinite(value):
        return "–"
    if share:
        text = f"{100 * value:.1f} %"
        if np.isfinite(low) and np.isfinite(high):
            text += f" [{100 * low:.1f}–{100 * high:.1f}]"
        return text
    text = f"{value:.0f}"
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{low:.0f}–{high:.0f}]"
    return text


def triage_section(table: pd.DataFrame) -> str:
    """HTML of the triage section from ``triage.parquet``."""
    t = table.set_index("statistic")
    rows = []
    for stat, title, share in ROWS:
        if stat not in t.index:
            continue
        r = t.loc[stat]
        value = _cell(float(r["value"]), float(r["ci_low"]), float(r["ci_high"]), share)
        rows.append(f'<tr><td>{html.escape(title)}</td><td class="num">{value}</td></tr>')
    return (
        f'<section id="{SECTION_ID}">\n<h2>CAC-negative triage (segment)</h2>\n'
        '<p class="lead">The <code>segment</code> ensemble calls a scan CAC-negative when every '
        "model's largest coronary-calcium probability is below its operating point, chosen on "
        "its validation scans so that none with coronary calcium was called negative (seed "
        "003). 95 % bootstrap intervals in brackets.</p>\n"
        '<div class="scroll"><table><thead><tr><th></th><th class="num">value</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>\n</section>"
    )


def add_triage_section(page: str, data_dir: Path) -> str:
    """``page`` with the triage section (when ``triage.parquet`` exists) before its footer
    and a link in its navigation."""
    path = Path(data_dir) / "triage.parquet"
    if not path.is_file():
        return page
    section = triage_section(pd.read_parquet(path))
    page = page.replace("</div></nav>", f'<a href="#{SECTION_ID}">Triage</a></div></nav>', 1)
    if "<footer>" in page:
        return page.replace("<footer>", section + "\n<footer>", 1)
    return page.replace("</body>", section + "\n</body>", 1)
