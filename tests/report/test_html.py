"""The HTML report: self-contained, complete, correct numbers, no identifiers."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cacflow.conventions import DEFAULT_SCHEMES, Closure, Scheme
from cacflow.report import render_report
from cacflow.report.html import flatten, fmt, fmt_ci
from cacflow.stats import agreement_table, confusion_table, scores_from_confusion

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Collector(HTMLParser):
    """Tags, attributes and text of a page, and the cells of its tables."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Collector:
    c = Collector()
    c.feed(html)
    return c


@pytest.fixture(scope="module")
def html(report_inputs: dict[str, Any]) -> str:
    return render_report(**report_inputs)


def test_page_is_self_contained(html: str) -> None:
    page = parse(html)
    tags = {t for t, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed"}
    for _, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("data:image/png;base64,", "#")), value[:40]
    assert "url(" not in html and "@import" not in html


def test_figures_are_embedded_pngs(html: str, report_inputs: dict[str, Any]) -> None:
    images = [a["src"] for t, a in parse(html).tags if t == "img"]
    methods = [m for m in pd.unique(report_inputs["scores"]["method"]) if m != "reference"]
    assert len(images) == len(methods)  # one scatter + Bland-Altman figure per method
    for src in images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_SIGNATURE


def test_sections_and_headings(html: str) -> None:
    text = " ".join(parse(html).text)
    for heading in (
        "Cohort",
        "Excluded series by reason",
        "Agreement with the reference",
        "Risk categories",
        "Per artery",
        "Plots per method",
        "Subgroups",
        "Lesion detection",
        "Ruling out calcium (score 0)",
        "Annotation points",
        "Conventions used",
        "Glossary",
    ):
        assert heading in text, heading


def test_every_convention_is_printed(html: str, report_inputs: dict[str, Any]) -> None:
    text = parse(html).text
    for key, value in flatten(report_inputs["conventions"]):
        assert key in text and value in text, key
    assert "statistics.icc_form" in text


def test_cohort_flow_counts(html: str) -> None:
    text = [t.strip() for t in parse(html).text if t.strip()]
    # 64 series found, 4 excluded: gap 2, localizer 1, too_few_slices 1; 12 non-DICOM files
    assert "7,712" in text and "64" in text
    assert "12 not DICOM" in text
    assert "1 non-image DICOM (e.g. DICOMDIR); 3 duplicate copies" in text
    assert not any("unreadable" in t for t in text)  # zero counts are not shown
    i = text.index("gap")
    assert text[i + 2] == "2"  # reason, meaning, count
    assert text[text.index("localizer") + 2] == "1"
    assert "4 excluded (table below)" in text


def test_annotation_point_summary(html: str) -> None:
    text = [t.strip() for t in parse(html).text if t.strip()]
    i = text.index("Scans with such points")
    rows = text[i + 2 :]  # after the last header cell "On a lesion with conflicting labels"
    # label, points, without calcium, scans with such points, conflicting
    assert rows[:5] == ["LAD", "3", "2", "2", "1"]
    assert rows[5:10] == ["LM", "1", "0", "0", "1"]
    assert rows[10:15] == ["RCA", "1", "1", "1", "0"]
    assert rows[15:20] == ["All", "5", "3", "2", "2"]


def test_agreement_numbers_match_the_table(html: str, report_inputs: dict[str, Any]) -> None:
    agreement = report_inputs["agreement"]
    row = agreement[
        (agreement["method"] == "convnet")
        & (agreement["artery"] == "total")
        & (agreement["statistic"] == "icc")
    ].iloc[0]
    assert f"{row['value']:.3f}" in html
    assert f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]" in html
    kappa = agreement[
        (agreement["method"] == "vendor") & (agreement["statistic"] == "kappa_linear:B")
    ].iloc[0]
    assert f"{kappa['value']:.3f}" in html


def test_confusion_heatmaps_hold_the_counts(html: str, report_inputs: dict[str, Any]) -> None:
    n_tables = html.count('<table class="heat">')
    conf = report_inputs["confusion"]
    assert n_tables == conf.groupby(["method", "scheme"]).ngroups
    # first heatmap: convnet, scheme A, cells in row-major order
    first = html.split('<table class="heat">', 2)[1]
    cells = re.findall(
        r'<td style="background:#[0-9a-f]{6};color:#[0-9a-f]{6}"[^>]*>([\d,]+)</td>', first
    )
    sub = conf[(conf["method"] == "convnet") & (conf["scheme"] == "A")]
    assert [int(c.replace(",", "")) for c in cells] == sub["count"].tolist()


def test_no_identifiers_in_the_report(html: str, report_inputs: dict[str, Any]) -> None:
    scans = report_inputs["scans"]
    html = re.sub(r'src="data:[^"]*"', "", html)  # base64 images may hold any 4 letters
    for pid in scans["patient_id"]:
        assert pid not in html
    for uid in scans["series_uid"]:
        assert uid not in html
    assert "SECRET_NAME" not in html  # free-text exclusion details are not shown


def test_method_without_calcium_renders(html: str) -> None:
    text = [t.strip() for t in parse(html).text]
    i = text.index("nocalcium", text.index("Pearson r"))  # the agreement table row
    assert "–" in text[i : i + 12]  # Pearson r undefined for a constant method


def test_rendering_is_deterministic(report_inputs: dict[str, Any], html: str) -> None:
    assert render_report(**report_inputs) == html


def test_statistics_only_dataset() -> None:
    """No DICOM: no scans table, scores from published confusion matrices."""
    matrix = np.array([[259, 0, 1, 0, 0], [9, 36, 4, 0, 0], [2, 3, 82, 2, 0], [0, 1, 2, 65, 2]])
    matrix = np.vstack([matrix, [0, 0, 0, 11, 51]])
    scores = scores_from_confusion(matrix, DEFAULT_SCHEMES["A"], method="convnet")
    schemes = {"A": DEFAULT_SCHEMES["A"]}
    agreement = agreement_table(scores, schemes, n_boot=50)
    page = render_report(
        dataset="deVos2019",
        scans=pd.DataFrame(),
        scores=scores,
        agreement=agreement,
        confusion=confusion_table(scores, schemes),
        conventions={"schemes": {"A": {"edges": [1, 10, 100, 400], "closed": "left"}}},
        date="2026-01-01",
    )
    text = " ".join(parse(page).text)
    assert "This dataset has no images" in text
    assert "0.950" in text and "93.0 %" in text  # seed 000 Table III: kappa 0.95, accuracy 0.93
    assert "Per artery" not in text  # the published table gives totals only
    assert "s000001" not in page


def test_reference_only_and_html_escaping() -> None:
    binary = Scheme("bin", (0.0,), Closure.RIGHT)
    scores = scores_from_confusion(np.eye(2, dtype=int) * 3, binary, method="<b>m</b>")
    only_ref = scores[scores["method"] == "reference"]
    empty = agreement_table(only_ref, DEFAULT_SCHEMES)
    page = render_report(
        dataset="x",
        scans=pd.DataFrame(),
        scores=only_ref,
        agreement=empty,
        confusion=confusion_table(only_ref, DEFAULT_SCHEMES),
        conventions={},
        date="2026-01-01",
    )
    assert "No method could be compared" in page
    page = render_report(
        dataset="<script>",
        scans=pd.DataFrame(),
        scores=scores,
        agreement=agreement_table(scores, {}, n_boot=0),
        confusion=confusion_table(scores, {}),
        conventions={"note": "<i>"},
        date="2026-01-01",
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>m</b>" not in page and "&lt;b&gt;m&lt;/b&gt;" in page


def test_number_formatting() -> None:
    assert fmt(np.nan) == "–"
    assert fmt(-0.0001) == "0.000"
    assert fmt(-1234.56, 1) == "-1,234.6"
    assert fmt_ci(0.5, 0.4, 0.6) == "0.500 [0.400, 0.600]"
    assert fmt_ci(0.5, np.nan, np.nan) == "0.500"


def test_tables_read_back_from_parquet(tmp_path, report_inputs: dict[str, Any]) -> None:
    """As the workflow calls it: tables from Parquet (no attrs), empty tables allowed."""
    from cacflow.provenance import write_table
    from cacflow.stats import empty_agreement, empty_confusion

    back = {}
    for name in ("scans", "scores", "agreement", "confusion", "lesions", "detection"):
        write_table(report_inputs[name], tmp_path / f"{name}.parquet")
        back[name] = pd.read_parquet(tmp_path / f"{name}.parquet")
    page = render_report(
        dataset="demo", conventions={}, subgroups=pd.DataFrame({"group_by": []}), **back
    )
    text = " ".join(parse(page).text)
    assert "statistics.icc_form" in text and "Subgroups" not in text
    assert "Lesion detection" in text
    empty = render_report(
        dataset="none",
        scans=back["scans"],
        scores=back["scores"][back["scores"]["method"] == "reference"],
        agreement=empty_agreement(),
        confusion=empty_confusion(),
        conventions={},
        detection=empty_agreement(),
    )
    assert "No method could be compared" in empty


def test_report_says_what_data_and_training_domain_it_shows(
    report_inputs: dict[str, Any],
) -> None:
    from cacflow.report.run import provenance_rows

    settings = {"inserted": {"backgrounds": ["x"], "seeds": [1]}, "methods": ["hu-threshold"]}
    rows = provenance_rows(settings)
    assert rows[0][0] == "data" and "inserted by `cacflow insert`" in rows[0][1]
    page = render_report(**report_inputs, provenance_rows=rows)
    assert "What you are looking at" in page
    assert "no training" in page  # hu-threshold's training domain is stated
    synth = provenance_rows({"synthetic": {"domain": "v2"}, "methods": []})
    assert "domain v2" in synth[0][1] and "not patients" in synth[0][1]


def test_not_scorable_series_are_counted_apart(report_inputs: dict[str, Any]) -> None:
    scans = report_inputs["scans"].copy()
    first = scans.index[scans["status"] == "ok"][0]
    scans.loc[first, ["status", "reason"]] = ["not_scorable", "noise"]
    page = render_report(**(report_inputs | {"scans": scans}))
    assert "1 not scorable" in page
    assert "image noise above scorable.max_noise_hu" in page


def test_glossary_renders_the_runs_conventions() -> None:
    from cacflow.report.html import glossary

    default = dict(glossary({}))
    assert ">= 130 HU, at least 1 mm²" in default["Agatston score"]
    assert "LAD counts LAD, LM" in default["Arteries"]
    custom = {"scoring": {"threshold_hu": 150, "artery_groups": {"LAD": ["LAD"]}}}
    text = dict(glossary(custom))
    assert ">= 150 HU" in text["Agatston score"]
    assert "LAD counts LAD;" not in text["Arteries"] and "LAD counts LAD" in text["Arteries"]
