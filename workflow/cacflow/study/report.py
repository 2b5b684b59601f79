"""The study section of ``report.html``: selection rule and counts, exams, progression,
table 1, hazard ratios, C-index and Kaplan–Meier curves.

Rendered as one ``<section id="study">`` inserted before the report's footer, so the
report template needs no change; only aggregate numbers, never identifiers or dates.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SECTION_ID = "study"
KM_COLORS = ("#1f5fa8", "#27ae60", "#e67e22", "#c0392b", "#8e44ad", "#7f8c8d")


def _table(columns: list[str], rows: list[list[str]], note: str = "") -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows
    )
    out = f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
    out += f"<tbody>{body}</tbody></table></div>"
    return out + (f'<p class="note">{html.escape(note)}</p>' if note else "")


def _num(x: Any, digits: int = 2) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if not np.isfinite(v) else f"{v:,.{digits}f}"


def flow_html(meta: dict[str, str]) -> str:
    """Counts at each step (participants → exams → chosen series) and the rule."""
    study = json.loads(meta.get("study", "{}"))
    keys = [
        ("participants", "participants"),
        ("exams", "exams"),
        ("series_considered", "series considered"),
        ("series_usable", "usable series"),
        ("exams_with_series", "exams with a chosen series"),
        ("participants_with_followup", "participants with a follow-up exam"),
    ]
    rows = [[label, meta.get(f"count.{k}", "–")] for k, label in keys]
    rule = html.escape(study.get("selection", ""))
    src = html.escape(meta.get("exam_source", ""))
    return (
        f"<p>One series per exam, chosen by the rule: {rule}. Exams from: {src}. "
        "Dates never leave the workflow: exams carry days since the participant's first "
        "exam.</p>" + _table(["step", "count"], rows)
    )


def hr_html(outcomes: pd.DataFrame) -> str:
    hr = outcomes[outcomes["statistic"] == "hr"]
    ph = outcomes[outcomes["statistic"] == "ph_test"].set_index(["model", "term"])["p_value"]
    rows = []
    for r in hr.itertuples():
        p_ph = ph.get((r.model, r.term), np.nan)
        ci = f"{_num(r.value)} [{_num(r.ci_low)}, {_num(r.ci_high)}]"
        rows.append([r.model, r.term, ci, _num(r.p_value, 4), _num(p_ph, 3), r.n, r.n_events])
    cols = ["model", "term", "HR [95% CI]", "p", "PH test p", "n", "events"]
    note = "PH test: scaled Schoenfeld residuals vs rank of time. A model that does not "
    note += "converge (e.g. a CAC category without events) is left out."
    return _table(cols, rows, note)


def c_html(outcomes: pd.DataFrame) -> str:
    c = outcomes[outcomes["statistic"].isin(["c_index", "c_index_gain"])]
    rows = [
        [r.model, r.statistic, f"{_num(r.value, 3)} [{_num(r.ci_low, 3)}, {_num(r.ci_high, 3)}]"]
        for r in c.itertuples()
    ]
    return _table(["model", "statistic", "value [95% bootstrap CI]"], rows)


def table1_html(t1: pd.DataFrame) -> str:
    if t1.empty:
        return "<p>No clinical table.</p>"
    t1 = t1.assign(row=t1["covariate"] + np.where(t1["level"] != "", " = " + t1["level"], ""))
    wide = t1.pivot_table(
        index="row", columns="category", values="text", aggfunc="first", sort=False
    )
    cats = list(dict.fromkeys(t1["category"]))
    wide = wide.reindex(columns=cats)
    rows = [[idx, *[("–" if pd.isna(v) else v) for v in vals]] for idx, vals in wide.iterrows()]
    return _table(["", *cats], rows, "n (%) or median [IQR], by baseline CAC category.")


def progression_html(prog: pd.DataFrame) -> str:
    if prog.empty:
        return "<p>No participant has two scored exams.</p>"
    rows = []
    for artery, g in prog.groupby("artery", sort=False):
        rows.append(
            [
                artery,
                len(g),
                _num(g["annual_change"].median()),
                f"{100 * g['progression_sqrt'].mean():.1f}%",
                f"{100 * g['progression_berry'].astype(float).mean():.1f}%",
                f"{100 * g['incident'].mean():.1f}%",
            ]
        )
    cols = ["artery", "pairs", "median annual change", "Hokanson", "Berry", "incident CAC"]
    return _table(cols, rows)


def km_figure(km: pd.DataFrame) -> str:
    """Kaplan–Meier curves by category as a data URI."""
    from matplotlib.figure import Figure

    from cacflow.report.plots import to_data_uri

    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for i, (cat, g) in enumerate(km.groupby("category", sort=False)):
        color = KM_COLORS[i % len(KM_COLORS)]
        t = np.r_[0.0, g["time"].to_numpy(float)]
        s = np.r_[1.0, g["survival"].to_numpy(float)]
        ax.step(t, s, where="post", color=color, label=f"CAC {cat}")
    ax.set_xlabel("time since first exam")
    ax.set_ylabel("event-free survival")
    ax.legend(frameon=False)
    fig.tight_layout()
    return to_data_uri(fig)


def study_section(data_dir: Path) -> str:
    """The HTML section from the study tables of ``data_dir``."""
    from cacflow.provenance import read_meta
    from cacflow.tables import read_table

    meta = read_meta(data_dir / "exams.parquet")
    outcomes = read_table(data_dir / "outcomes.parquet")
    km = read_table(data_dir / "km.parquet")
    parts = [f'<section id="{SECTION_ID}">', "<h2>Study: exams, progression, outcomes</h2>"]
    parts += ["<h3>Exam selection</h3>", flow_html(meta)]
    parts += ["<h3>Progression between consecutive exams</h3>"]
    parts += [progression_html(read_table(data_dir / "progression.parquet"))]
    parts += [
        "<h3>Baseline characteristics</h3>",
        table1_html(read_table(data_dir / "table1.parquet")),
    ]
    if len(outcomes):
        parts += ["<h3>Cox proportional hazards</h3>", hr_html(outcomes)]
        parts += ["<h3>Harrell's C</h3>", c_html(outcomes)]
    else:
        parts += ["<p>No outcome models (no clinical table, or no events).</p>"]
    if len(km):
        parts += ["<h3>Kaplan–Meier by CAC category</h3>"]
        parts += [f'<figure><img src="{km_figure(km)}" alt="Kaplan-Meier curves"></figure>']
    parts.append("</section>")
    return "\n".join(parts)


def add_study_section(page: str, data_dir: Path) -> str:
    """``page`` with the study section before its footer and a link in its navigation."""
    section = study_section(data_dir)
    page = page.replace("</div></nav>", f'<a href="#{SECTION_ID}">Study</a></div></nav>', 1)
    if "<footer>" in page:
        return page.replace("<footer>", section + "\n<footer>", 1)
    return page.replace("</body>", section + "\n</body>", 1)
