"""Screenshot of the rendered report with headless Chromium (skipped without Chromium, except
where CACFLOW_REQUIRE_CHROMIUM=1: .ci/run installs Debian's chromium and sets it)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from PIL import Image

from cacflow.report import find_chromium, render_report, screenshot


def test_screenshot_skips_without_chromium(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on this PATH
    html = tmp_path / "r.html"
    html.write_text("<html><body>x</body></html>")
    assert screenshot(html, tmp_path / "r.png") is False
    assert not (tmp_path / "r.png").exists()


REQUIRE_CHROMIUM = os.environ.get("CACFLOW_REQUIRE_CHROMIUM") == "1"


@pytest.mark.slow
@pytest.mark.skipif(
    find_chromium() is None and not REQUIRE_CHROMIUM, reason="chromium is not installed"
)
def test_report_screenshot(tmp_path, report_inputs: dict[str, Any]) -> None:
    html = tmp_path / "report.html"
    html.write_text(render_report(**report_inputs), encoding="utf-8")
    png = tmp_path / "report.png"
    assert screenshot(html, png, window_size=(1200, 2000)) is True
    with Image.open(png) as im:
        assert im.size == (1200, 2000)
        # the page rendered: the header band is the accent colour, not blank
        r, g, b = im.convert("RGB").getpixel((600, 20))
        assert b > r + 60
